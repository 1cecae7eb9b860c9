//! Names, the records kept beside the bodies, and the public types of the storage API.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::digest::{Checksum, ChecksumAlgorithm};

/// Longest object key accepted, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;
/// Every multipart part but the last must be at least this large (S3's rule).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// Part numbers run from 1 to this (S3's rule).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Most keys one listing page returns.
pub const MAX_LIST_KEYS: usize = 1000;

/// Checks an S3 bucket name: 3 to 63 characters of `a-z`, `0-9`, `.` and `-`, starting and
/// ending with a letter or digit.
pub fn validate_bucket(name: &str) -> Result<(), StorageError> {
    let invalid = |reason| StorageError::InvalidBucketName {
        name: name.to_owned(),
        reason,
    };
    if !(3..=63).contains(&name.len()) {
        return Err(invalid("must be 3 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(invalid("may only contain a-z, 0-9, '.' and '-'"));
    }
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge_ok(name.as_bytes()[0]) || !edge_ok(name.as_bytes()[name.len() - 1]) {
        return Err(invalid("must start and end with a letter or digit"));
    }
    if name.contains("..") {
        return Err(invalid("must not contain two adjacent periods"));
    }
    Ok(())
}

/// Checks an object key: 1 to [`MAX_KEY_BYTES`] bytes, no control characters (the metadata
/// store reserves them).
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("the key is empty".to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(StorageError::InvalidKey(format!(
            "the key contains the control character U+{:04X}",
            c as u32
        )));
    }
    Ok(())
}

/// Strips the quotes and weak marker of an ETag as sent in headers.
pub fn bare_etag(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"')
}

/// One stored body in the backend. Objects made by a multipart upload have several, read in
/// order; the others have one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Blob {
    pub id: String,
    pub size: u64,
}

/// The metadata record of a visible object: its existence makes the object visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "ObjectHeaders::is_empty")]
    pub headers: ObjectHeaders,
    pub last_modified_ms: u64,
    pub blobs: Vec<Blob>,
    #[serde(default)]
    pub parts: Option<u32>,
    /// The additional checksum the body was stored with (single-part bodies only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// The multipart upload that made this object, so that a retried completion of it with
    /// the same parts answers the same result (as S3 does) rather than NoSuchUpload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_from: Option<Completion>,
}

/// Which upload completed into an object, and with which parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Completion {
    pub upload_id: String,
    /// Hex MD5 of the part numbers and ETags named on completion.
    pub parts: String,
}

impl Completion {
    pub(crate) fn new(upload_id: &str, parts: &[CompletedPart]) -> Self {
        use md5::{Digest, Md5};
        let mut digest = Md5::new();
        for part in parts {
            digest.update(format!("{}:{}\n", part.part_number, bare_etag(&part.etag)));
        }
        Completion {
            upload_id: upload_id.to_owned(),
            parts: hex::encode(digest.finalize()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BucketRecord {
    pub created_ms: u64,
    /// Set while a delete checks that the bucket is empty. Writes that add an object or an
    /// upload commit only against an unmarked version of this record, so none can slip in
    /// between that check and the delete (see [`crate::Storage::delete_bucket`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_since_ms: Option<u64>,
    /// The bucket's CORS rules (see [`crate::cors`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Vec<crate::cors::CorsRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    pub key: String,
    pub content_type: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "ObjectHeaders::is_empty")]
    pub headers: ObjectHeaders,
    pub initiated_ms: u64,
    /// The checksum algorithm the upload was created with: every part gets one, and the
    /// object a composite of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub etag: String,
    pub size: u64,
    pub blob: String,
    pub last_modified_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

/// A bucket as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: u64,
}

/// Everything about an object but its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Without quotes: the hex MD5 of the body, `{blake3}-1` for large bodies sent without
    /// Content-MD5 (see [`crate::digest`]), or `{md5 of part digests}-N` for multipart objects.
    pub etag: String,
    pub content_type: String,
    /// User metadata (`x-amz-meta-*` without the prefix, names in lowercase).
    pub metadata: BTreeMap<String, String>,
    /// The standard headers the writer set, returned with the body.
    #[serde(default, skip_serializing_if = "ObjectHeaders::is_empty")]
    pub headers: ObjectHeaders,
    pub last_modified_ms: u64,
    /// Number of parts for objects made by a multipart upload.
    pub parts: Option<u32>,
    /// The additional checksum (`x-amz-checksum-*`) the body was stored with, if the client
    /// asked for one; multipart objects have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

impl ObjectInfo {
    pub(crate) fn from_record(bucket: &str, key: &str, record: &ObjectRecord) -> Self {
        ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: record.size,
            etag: record.etag.clone(),
            content_type: record.content_type.clone(),
            metadata: record.metadata.clone(),
            headers: record.headers.clone(),
            last_modified_ms: record.last_modified_ms,
            parts: record.parts,
            checksum: record.checksum.clone(),
        }
    }
}

/// The standard response headers an object keeps as its writer set them, and every read
/// returns (S3's system metadata that a client controls): what browsers and caches need to
/// serve a stored file (static hosting, downloads with a file name, pre-compressed bodies).
/// Values are kept as sent; `expires` is an HTTP date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl ObjectHeaders {
    pub fn is_empty(&self) -> bool {
        self == &ObjectHeaders::default()
    }

    /// Each header as its HTTP name and value, in a fixed order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("cache-control", &self.cache_control),
            ("content-disposition", &self.content_disposition),
            ("content-encoding", &self.content_encoding),
            ("content-language", &self.content_language),
            ("expires", &self.expires),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|value| (name, value)))
    }
}

/// What a write stores besides the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Default `application/octet-stream`.
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Standard headers kept with the object and returned on reads.
    pub headers: ObjectHeaders,
    /// What the client declared about the body.
    pub checks: BodyChecks,
    pub conditions: WriteConditions,
    /// Who caused the write (functions), carried into the event.
    pub causation: ferrobase_core::event::Causation,
}

/// What the client declared about a body, checked as it is stored; a body that fails a check
/// leaves nothing behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyChecks {
    /// `Content-MD5`: a body with another MD5 is rejected (BadDigest).
    pub content_md5: Option<[u8; 16]>,
    /// The declared length (`Content-Length`): a body of another length is rejected
    /// (IncompleteBody). Known up front, it also spares hashing with MD5 a body too large
    /// for an MD5 ETag (see [`crate::digest`]).
    pub content_length: Option<u64>,
    /// An additional checksum (`x-amz-checksum-*`): computed as the body streams, checked
    /// when the client sent a value (BadChecksum), and kept with the object.
    pub checksum: Option<ChecksumCheck>,
}

/// An additional checksum to compute, and what the client said it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumCheck {
    pub algorithm: ChecksumAlgorithm,
    pub expected: ExpectedChecksum,
}

/// The value a client sent for a body's checksum (base64, as in `x-amz-checksum-*`).
#[derive(Clone)]
pub enum ExpectedChecksum {
    /// None sent: the checksum is only computed and kept.
    Unknown,
    /// Sent with the request headers.
    Value(String),
    /// Sent after the body (an `aws-chunked` trailer): asked for once the body has ended.
    AfterBody(Arc<dyn Fn() -> Option<String> + Send + Sync>),
}

impl std::fmt::Debug for ExpectedChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedChecksum::Unknown => f.write_str("Unknown"),
            ExpectedChecksum::Value(value) => f.debug_tuple("Value").field(value).finish(),
            ExpectedChecksum::AfterBody(_) => f.write_str("AfterBody(..)"),
        }
    }
}

impl PartialEq for ExpectedChecksum {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ExpectedChecksum::Unknown, ExpectedChecksum::Unknown) => true,
            (ExpectedChecksum::Value(a), ExpectedChecksum::Value(b)) => a == b,
            (ExpectedChecksum::AfterBody(a), ExpectedChecksum::AfterBody(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for ExpectedChecksum {}

/// Preconditions of a write, checked atomically with the metadata commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteConditions {
    /// `If-Match`: the current ETag must be this (`*`: the object must exist).
    pub if_match: Option<String>,
    /// `If-None-Match`: the object must not exist (`*`), or its current ETag must be none of
    /// these (a comma-separated list; an absent object passes).
    pub if_none_match: Option<String>,
}

/// A byte range as a client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-end`, both inclusive.
    Bounded { start: u64, end: u64 },
    /// `bytes=start-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses an HTTP `Range` header with one range.
    pub fn parse(header: &str) -> Result<ByteRange, StorageError> {
        let invalid = || StorageError::InvalidArgument(format!("invalid Range {header:?}"));
        let spec = header.trim().strip_prefix("bytes=").ok_or_else(invalid)?;
        let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
        let number = |text: &str| text.trim().parse::<u64>().map_err(|_| invalid());
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => Ok(ByteRange::Suffix(number(last)?)),
            (false, true) => Ok(ByteRange::From(number(first)?)),
            (false, false) => {
                let (start, end) = (number(first)?, number(last)?);
                if end < start {
                    return Err(invalid());
                }
                Ok(ByteRange::Bounded { start, end })
            }
            (true, true) => Err(invalid()),
        }
    }

    /// The half-open byte span within an object of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<std::ops::Range<u64>, StorageError> {
        let span = match self {
            ByteRange::Bounded { start, end } => start..end.saturating_add(1).min(size),
            ByteRange::From(start) => start..size,
            ByteRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        if span.start >= size || span.is_empty() {
            return Err(StorageError::InvalidRange { size });
        }
        Ok(span)
    }
}

/// Preconditions of a read (S3 semantics: If-Match and If-Unmodified-Since fail with 412,
/// If-None-Match and If-Modified-Since with 304).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since_ms: Option<u64>,
    pub if_unmodified_since_ms: Option<u64>,
}

impl ReadConditions {
    pub(crate) fn check(&self, info: &ObjectInfo) -> Result<(), StorageError> {
        let matches = |list: &str| {
            list.split(',')
                .map(bare_etag)
                .any(|tag| tag == "*" || tag == info.etag)
        };
        // HTTP dates have second precision.
        let modified_s = info.last_modified_ms / 1000;
        if let Some(list) = &self.if_match {
            if !matches(list) {
                return Err(StorageError::PreconditionFailed(
                    "If-Match does not match the ETag".to_owned(),
                ));
            }
        } else if let Some(since) = self.if_unmodified_since_ms
            && modified_s > since / 1000
        {
            return Err(StorageError::PreconditionFailed(
                "the object was modified since If-Unmodified-Since".to_owned(),
            ));
        }
        let not_modified = || StorageError::NotModified {
            etag: info.etag.clone(),
            last_modified_ms: info.last_modified_ms,
        };
        if let Some(list) = &self.if_none_match {
            if matches(list) {
                return Err(not_modified());
            }
        } else if let Some(since) = self.if_modified_since_ms
            && modified_s <= since / 1000
        {
            return Err(not_modified());
        }
        Ok(())
    }
}

/// What a read asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    pub range: Option<ByteRange>,
    pub conditions: ReadConditions,
}

/// A listing request (ListObjectsV2 semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Only keys (and common prefixes) after this one: S3's `start-after`, or the cursor of
    /// the previous page.
    pub after: Option<String>,
    /// 1 to [`MAX_LIST_KEYS`]; keys and common prefixes count alike.
    pub max_keys: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            prefix: String::new(),
            delimiter: None,
            after: None,
            max_keys: MAX_LIST_KEYS,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    /// Where the next page starts (pass it back as `after`); `None` on the last page.
    pub next: Option<String>,
}

/// A part as uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartInfo {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: u64,
    /// The part's additional checksum, if the client asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadInfo {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
}

/// Where a listing of uploads resumes: after this key, or, with an upload id, after that
/// upload of this key (S3's `key-marker` and `upload-id-marker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadMarker {
    pub key: String,
    pub upload_id: Option<String>,
}

/// A listing request of the multipart uploads in progress (ListMultipartUploads semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub after: Option<UploadMarker>,
    /// 1 to [`MAX_LIST_KEYS`]; uploads and common prefixes count alike.
    pub max_uploads: usize,
}

impl Default for UploadQuery {
    fn default() -> Self {
        UploadQuery {
            prefix: String::new(),
            delimiter: None,
            after: None,
            max_uploads: MAX_LIST_KEYS,
        }
    }
}

/// One page of uploads, by key then upload id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UploadPage {
    pub uploads: Vec<UploadInfo>,
    pub common_prefixes: Vec<String>,
    /// Where the next page starts (pass it back as `after`); `None` on the last page. Its
    /// upload id is unset when the page ended with a common prefix.
    pub next: Option<UploadMarker>,
}

/// Where UploadPartCopy takes a part's bytes from: an object, or a span of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartSource {
    pub bucket: String,
    pub key: String,
    /// The source's read conditions (`x-amz-copy-source-if-*`); an unchanged source fails
    /// with PreconditionFailed rather than NotModified, as in S3.
    pub conditions: ReadConditions,
    /// `x-amz-copy-source-range`: first and last byte, both inside the source.
    pub range: Option<(u64, u64)>,
}

/// A part named in CompleteMultipartUpload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// The part's checksum as the client knows it; it must be the stored one.
    pub checksum: Option<Checksum>,
}

/// What an orphan sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub blobs_deleted: u64,
    pub bytes_deleted: u64,
    /// Multipart uploads aborted for being older than the storage's upload lifetime.
    pub uploads_aborted: u64,
}
