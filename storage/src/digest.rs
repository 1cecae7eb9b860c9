//! What an object's ETag is made of, and the hashing of bodies that produces it.
//!
//! S3 clients expect the ETag of an object stored by one PUT to be the MD5 of its body, and
//! some check it. But MD5 is sequential: one core hashes 500–600 MB/s, so for large bodies it,
//! not the disk, bounds how fast a PUT can be (a profile of 64 MiB PUTs put 55% of the
//! server's CPU in MD5). S3 itself gives up MD5 ETags where speed matters: multipart objects
//! have `{md5 of part md5s}-{parts}`, and S3 Express One Zone's ETags are not MD5 at all.
//!
//! So the rule here, per body, is:
//! - the client sent `Content-MD5`: the body is hashed with MD5, checked, and the ETag is the
//!   MD5 (a client that sends it can check the ETag);
//! - otherwise a body of at most [`EtagPolicy::md5_max_bytes`] (default 8 MiB, the size above
//!   which aws-cli and boto3 switch to multipart uploads anyway) gets its MD5 as ETag;
//! - a larger body gets `{first 16 bytes of its BLAKE3 hash, in hex}-1`. BLAKE3 hashes several
//!   GB/s on one core; the `-1` suffix is the form of a multipart ETag, which clients
//!   (rclone, the AWS SDKs) know not to compare with an MD5.
//!
//! [`EtagPolicy::always_md5`] gives every body an MD5 ETag, for clients that check the ETag
//! of large single-part uploads without sending `Content-MD5`.
//!
//! The ETag depends only on the body, its size and whether `Content-MD5` came with it, so
//! the same upload gets the same ETag on either backend.
//!
//! Integrity is what S3's additional checksums are for (`x-amz-checksum-crc32` and the like,
//! which current AWS SDKs send with every upload): a body is hashed with the algorithm the
//! client names, checked against the value it sent, and the checksum is kept with the object
//! so that clients can check what they read back. A multipart object's checksum is S3's
//! composite one, the checksum of its parts' checksums (`composite_checksum`).

use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::StorageError;

/// Bodies up to this size get an MD5 ETag by default.
pub const DEFAULT_MD5_ETAG_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Which bodies get an MD5 ETag (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtagPolicy {
    /// Bodies larger than this, sent without `Content-MD5`, get a BLAKE3-based ETag.
    pub md5_max_bytes: u64,
}

impl EtagPolicy {
    /// Every body gets an MD5 ETag, whatever its size.
    pub fn always_md5() -> EtagPolicy {
        EtagPolicy {
            md5_max_bytes: u64::MAX,
        }
    }

    /// How far to hash a body with MD5: all of it when the client sent `Content-MD5`.
    pub(crate) fn md5_limit(&self, content_md5_sent: bool) -> u64 {
        if content_md5_sent {
            u64::MAX
        } else {
            self.md5_max_bytes
        }
    }
}

impl Default for EtagPolicy {
    fn default() -> Self {
        EtagPolicy {
            md5_max_bytes: DEFAULT_MD5_ETAG_MAX_BYTES,
        }
    }
}

/// The digest a stored body's ETag is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyDigest {
    Md5([u8; 16]),
    /// The first 16 bytes of the body's BLAKE3 hash.
    Blake3([u8; 16]),
}

impl BodyDigest {
    /// The ETag, without quotes.
    pub(crate) fn etag(&self) -> String {
        match self {
            BodyDigest::Md5(md5) => hex::encode(md5),
            BodyDigest::Blake3(hash) => format!("{}-1", hex::encode(hash)),
        }
    }

    /// The body's MD5, when it was hashed whole with MD5.
    pub(crate) fn md5(&self) -> Option<[u8; 16]> {
        match self {
            BodyDigest::Md5(md5) => Some(*md5),
            BodyDigest::Blake3(_) => None,
        }
    }
}

/// An additional checksum algorithm of S3 (`x-amz-checksum-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// As S3 names it (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// Parses an S3 name, in any case.
    pub fn parse(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name))
    }

    /// The header (or trailer) that carries such a checksum: `x-amz-checksum-crc32`, ...
    pub fn header_name(self) -> String {
        format!("x-amz-checksum-{}", self.name().to_ascii_lowercase())
    }
}

/// A body's checksum as S3 shows it: the algorithm and the base64 of the digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: String,
}

impl Checksum {
    /// The one checksum a client sent among `values`, given per algorithm in the order of
    /// [`ChecksumAlgorithm::ALL`]; sending more than one is an error.
    pub fn single_sent(values: [Option<&str>; 5]) -> Result<Option<Checksum>, StorageError> {
        let mut sent =
            ChecksumAlgorithm::ALL
                .into_iter()
                .zip(values)
                .filter_map(|(algorithm, value)| {
                    Some(Checksum {
                        algorithm,
                        value: value?.to_owned(),
                    })
                });
        let checksum = sent.next();
        if sent.next().is_some() {
            return Err(StorageError::InvalidArgument(
                "send at most one x-amz-checksum-* value".to_owned(),
            ));
        }
        Ok(checksum)
    }
}

/// Computes one additional checksum as a body streams past.
enum ChecksumHasher {
    Crc {
        algorithm: ChecksumAlgorithm,
        digest: crc_fast::Digest,
    },
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl ChecksumHasher {
    fn new(algorithm: ChecksumAlgorithm) -> ChecksumHasher {
        let crc = |kind| ChecksumHasher::Crc {
            algorithm,
            digest: crc_fast::Digest::new(kind),
        };
        match algorithm {
            ChecksumAlgorithm::Crc32 => crc(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            ChecksumAlgorithm::Crc32c => crc(crc_fast::CrcAlgorithm::Crc32Iscsi),
            ChecksumAlgorithm::Crc64Nvme => crc(crc_fast::CrcAlgorithm::Crc64Nvme),
            ChecksumAlgorithm::Sha1 => ChecksumHasher::Sha1(sha1::Sha1::default()),
            ChecksumAlgorithm::Sha256 => ChecksumHasher::Sha256(sha2::Sha256::default()),
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        match self {
            ChecksumHasher::Crc { digest, .. } => digest.update(chunk),
            ChecksumHasher::Sha1(sha1) => sha1::Digest::update(sha1, chunk),
            ChecksumHasher::Sha256(sha256) => sha2::Digest::update(sha256, chunk),
        }
    }

    fn finish(self) -> Checksum {
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let (algorithm, value) = match self {
            // S3 shows CRCs as big-endian bytes of their width.
            ChecksumHasher::Crc { algorithm, digest } => {
                let crc = digest.finalize();
                let value = if algorithm == ChecksumAlgorithm::Crc64Nvme {
                    encode(&crc.to_be_bytes())
                } else {
                    encode(&(crc as u32).to_be_bytes())
                };
                (algorithm, value)
            }
            ChecksumHasher::Sha1(sha1) => (
                ChecksumAlgorithm::Sha1,
                encode(&sha1::Digest::finalize(sha1)),
            ),
            ChecksumHasher::Sha256(sha256) => (
                ChecksumAlgorithm::Sha256,
                encode(&sha2::Digest::finalize(sha256)),
            ),
        };
        Checksum { algorithm, value }
    }
}

/// S3's composite checksum of a multipart object: the checksum, with the parts' algorithm, of
/// their decoded checksums one after the other, then `-{parts}`. `None` when a part has no
/// checksum of that algorithm, or for CRC64NVME, which S3 combines into a full-object CRC
/// instead (not done here).
pub(crate) fn composite_checksum(
    algorithm: ChecksumAlgorithm,
    parts: &[Option<&Checksum>],
) -> Option<Checksum> {
    if algorithm == ChecksumAlgorithm::Crc64Nvme {
        return None;
    }
    let mut hasher = ChecksumHasher::new(algorithm);
    for part in parts {
        let part = part.filter(|part| part.algorithm == algorithm)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&part.value)
            .ok()?;
        hasher.update(&raw);
    }
    let whole = hasher.finish();
    Some(Checksum {
        algorithm,
        value: format!("{}-{}", whole.value, parts.len()),
    })
}

/// The 16 digest bytes of a part's ETag, which a multipart ETag hashes together.
pub(crate) fn etag_digest_bytes(etag: &str) -> Option<[u8; 16]> {
    let hex_part = etag.strip_suffix("-1").unwrap_or(etag);
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(hex_part, &mut bytes).ok()?;
    Some(bytes)
}

/// Hashes a body as it streams past: MD5 over the first `md5_limit` bytes (dropped once the
/// body is longer, since its ETag will not be the MD5 then, and not started at all when the
/// declared length is longer), BLAKE3 over all of it unless the ETag will be the MD5 anyway
/// (every byte must be hashed with MD5, or the declared length is within the limit), and the
/// additional checksum the client asked for.
pub(crate) struct BodyHasher {
    md5: Option<Md5>,
    blake3: Option<Box<blake3::Hasher>>,
    checksum: Option<ChecksumHasher>,
    md5_limit: u64,
    hashed: u64,
}

impl BodyHasher {
    pub(crate) fn new(
        md5_limit: u64,
        declared_length: Option<u64>,
        checksum: Option<ChecksumAlgorithm>,
    ) -> BodyHasher {
        // A body that ends at another length than declared is rejected by the caller, so
        // trusting the declared length here never decides an ETag that is kept.
        let md5_needed = declared_length.is_none_or(|length| length <= md5_limit);
        // Likewise a body declared no longer than the limit will not need BLAKE3.
        let blake3_needed =
            md5_limit != u64::MAX && declared_length.is_none_or(|length| length > md5_limit);
        BodyHasher {
            md5: md5_needed.then(Md5::new),
            blake3: blake3_needed.then(|| Box::new(blake3::Hasher::new())),
            checksum: checksum.map(ChecksumHasher::new),
            md5_limit,
            hashed: 0,
        }
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.hashed += chunk.len() as u64;
        // Past the limit MD5 is dropped, unless it is the only hash (the body is then longer
        // than declared, which the caller rejects).
        if self.hashed > self.md5_limit && self.blake3.is_some() {
            self.md5 = None;
        } else if let Some(md5) = &mut self.md5 {
            md5.update(chunk);
        }
        if let Some(blake3) = &mut self.blake3 {
            // BLAKE3 hashes large inputs with SIMD over several 1 KiB chunks at once; groups
            // here are up to 1 MiB, so the single-threaded `update` is already fast.
            blake3.update(chunk);
        }
        if let Some(checksum) = &mut self.checksum {
            checksum.update(chunk);
        }
    }

    /// The digest the ETag is made of, and the additional checksum if one was asked for.
    pub(crate) fn finish(self) -> (BodyDigest, Option<Checksum>) {
        let checksum = self.checksum.map(ChecksumHasher::finish);
        let digest = match (self.md5, self.blake3) {
            (Some(md5), _) => BodyDigest::Md5(md5.finalize().into()),
            (None, Some(blake3)) => {
                let mut first = [0u8; 16];
                first.copy_from_slice(&blake3.finalize().as_bytes()[..16]);
                BodyDigest::Blake3(first)
            }
            (None, None) => unreachable!("MD5 is left out or dropped only when BLAKE3 runs"),
        };
        (digest, checksum)
    }
}

/// Checks a body held whole in memory (a request body such as DeleteObjects' XML) against
/// what the client declared, as a stored body is checked: its length, `Content-MD5`
/// (BadDigest) and the additional checksum (BadChecksum).
pub fn check_body(body: &[u8], checks: &crate::BodyChecks) -> Result<(), StorageError> {
    if let Some(declared) = checks
        .content_length
        .filter(|&declared| declared != body.len() as u64)
    {
        return Err(StorageError::IncompleteBody(format!(
            "the body was {} bytes, not the {declared} declared",
            body.len()
        )));
    }
    let algorithm = checks.checksum.as_ref().map(|check| check.algorithm);
    let mut hasher = BodyHasher::new(u64::MAX, None, algorithm);
    hasher.update(body);
    let (digest, computed) = hasher.finish();
    if checks
        .content_md5
        .is_some_and(|md5| Some(md5) != digest.md5())
    {
        return Err(StorageError::BadDigest);
    }
    let expected = match checks.checksum.as_ref().map(|check| &check.expected) {
        Some(crate::ExpectedChecksum::Value(value)) => Some(value.clone()),
        Some(crate::ExpectedChecksum::AfterBody(read)) => read(),
        Some(crate::ExpectedChecksum::Unknown) | None => None,
    };
    match expected.zip(computed) {
        Some((expected, computed)) if expected.trim() != computed.value => {
            Err(StorageError::BadChecksum {
                algorithm: computed.algorithm.name().to_ascii_lowercase(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(limit: u64, chunks: &[&[u8]]) -> BodyDigest {
        let mut hasher = BodyHasher::new(limit, None, None);
        for chunk in chunks {
            hasher.update(chunk);
        }
        hasher.finish().0
    }

    /// Known values for the body `hello world`: CRC32, SHA1 and SHA256 as botocore computes
    /// them; CRC32C and CRC64NVME from a bitwise reference implementation that gives the
    /// published check values of both CRCs.
    #[test]
    fn checksums_are_what_s3_clients_compute() {
        let expected = [
            (ChecksumAlgorithm::Crc32, "DUoRhQ=="),
            (ChecksumAlgorithm::Crc32c, "yZRlqg=="),
            (ChecksumAlgorithm::Crc64Nvme, "jSnVw/bqjr4="),
            (ChecksumAlgorithm::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            (
                ChecksumAlgorithm::Sha256,
                "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
            ),
        ];
        for (algorithm, value) in expected {
            let mut hasher = BodyHasher::new(u64::MAX, None, Some(algorithm));
            hasher.update(b"hello ");
            hasher.update(b"world");
            let (_, checksum) = hasher.finish();
            assert_eq!(
                checksum,
                Some(Checksum {
                    algorithm,
                    value: value.to_owned()
                }),
                "{}",
                algorithm.name()
            );
            assert_eq!(
                ChecksumAlgorithm::parse(&algorithm.name().to_lowercase()),
                Some(algorithm)
            );
        }
    }

    #[test]
    fn whole_bodies_are_checked_like_stored_ones() {
        use crate::{BodyChecks, ChecksumCheck, ExpectedChecksum};
        let md5: [u8; 16] = Md5::digest(b"hello world").into();
        let crc32 = |value: &str| ChecksumCheck {
            algorithm: ChecksumAlgorithm::Crc32,
            expected: ExpectedChecksum::Value(value.to_owned()),
        };
        let check = |checks: BodyChecks| check_body(b"hello world", &checks);
        assert!(check(BodyChecks::default()).is_ok());
        assert!(
            check(BodyChecks {
                content_md5: Some(md5),
                content_length: Some(11),
                checksum: Some(crc32("DUoRhQ==")),
            })
            .is_ok()
        );
        assert!(matches!(
            check(BodyChecks {
                content_md5: Some([0; 16]),
                ..BodyChecks::default()
            }),
            Err(StorageError::BadDigest)
        ));
        assert!(matches!(
            check(BodyChecks {
                checksum: Some(crc32("AAAAAA==")),
                ..BodyChecks::default()
            }),
            Err(StorageError::BadChecksum { .. })
        ));
        assert!(matches!(
            check(BodyChecks {
                content_length: Some(3),
                ..BodyChecks::default()
            }),
            Err(StorageError::IncompleteBody(_))
        ));
    }

    #[test]
    fn bodies_up_to_the_limit_get_their_md5() {
        let md5: [u8; 16] = Md5::digest(b"hello world").into();
        assert_eq!(digest(11, &[b"hello ", b"world"]), BodyDigest::Md5(md5));
        assert_eq!(digest(u64::MAX, &[b"hello world"]), BodyDigest::Md5(md5));
        assert_eq!(digest(11, &[b"hello world"]).etag(), hex::encode(md5));
    }

    #[test]
    fn longer_bodies_get_a_blake3_etag_that_does_not_depend_on_chunking() {
        let whole = digest(10, &[b"hello world"]);
        assert_eq!(whole, digest(10, &[b"hello", b" ", b"world"]));
        let hash = blake3::hash(b"hello world");
        assert_eq!(
            whole.etag(),
            format!("{}-1", hex::encode(&hash.as_bytes()[..16]))
        );
        assert_eq!(whole.md5(), None);
        assert_ne!(whole, digest(10, &[b"hello worle"]));
    }

    #[test]
    fn a_declared_length_over_the_limit_skips_md5_and_gives_the_same_etag() {
        let mut hasher = BodyHasher::new(10, Some(11), None);
        hasher.update(b"hello world");
        assert!(hasher.md5.is_none(), "MD5 is never started");
        assert_eq!(hasher.finish().0, digest(10, &[b"hello world"]));
        let mut hasher = BodyHasher::new(11, Some(11), None);
        assert!(
            hasher.blake3.is_none(),
            "a body declared within the limit needs no BLAKE3"
        );
        hasher.update(b"hello world");
        assert_eq!(hasher.finish().0, digest(11, &[b"hello world"]));
        // Longer than declared: still a digest (the caller rejects the body for its length).
        let mut hasher = BodyHasher::new(5, Some(5), None);
        hasher.update(b"hello world");
        assert!(matches!(hasher.finish().0, BodyDigest::Md5(_)));
    }

    #[test]
    fn part_etags_give_back_their_digest_bytes() {
        let md5: [u8; 16] = Md5::digest(b"x").into();
        assert_eq!(etag_digest_bytes(&hex::encode(md5)), Some(md5));
        assert_eq!(
            etag_digest_bytes(&format!("{}-1", hex::encode(md5))),
            Some(md5)
        );
        assert_eq!(etag_digest_bytes("not hex"), None);
        assert_eq!(etag_digest_bytes(&format!("{}-2", hex::encode(md5))), None);
    }
}
