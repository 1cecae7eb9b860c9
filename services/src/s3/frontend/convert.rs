//! Conversions between `s3s` types and the storage API's.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use ferrobase_storage::{
    BodyChecks, ByteRange, ByteStream, Checksum, ChecksumAlgorithm, ChecksumCheck,
    ExpectedChecksum, ObjectHeaders, ReadConditions, WriteConditions,
};
use futures::{StreamExt, TryStreamExt};
use s3s::dto::{self, ETag, ETagCondition, StreamingBlob, Timestamp};
use s3s::{S3Result, TrailingHeaders, s3_error};

use crate::s3::SyncStream;

/// The version id of every object: buckets are unversioned, as S3 calls objects stored while
/// versioning was never enabled.
pub(super) const NULL_VERSION: &str = "null";

/// Whether a request naming `version_id` means the one version an object has.
pub(super) fn is_null_version(version_id: Option<&str>) -> bool {
    version_id.is_none_or(|id| id.is_empty() || id == NULL_VERSION)
}

/// NoSuchVersion for a read of any version but `null`.
pub(super) fn require_null_version(version_id: Option<&str>) -> S3Result<()> {
    if is_null_version(version_id) {
        Ok(())
    } else {
        Err(s3_error!(
            NoSuchVersion,
            "buckets are unversioned: the only version of an object is \"null\""
        ))
    }
}

pub(super) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

pub(super) fn millis(ts: &Timestamp) -> u64 {
    let time: time::OffsetDateTime = ts.clone().into();
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}

pub(super) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

pub(super) fn condition_text(condition: &ETagCondition) -> String {
    match condition {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(tag) => tag.value().to_owned(),
    }
}

pub(super) fn body_stream(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(blob) => blob.map_err(std::io::Error::other).boxed(),
        None => futures::stream::empty().boxed(),
    }
}

pub(super) fn blob(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream::new(stream))
}

/// What the client declared about a body: `Content-MD5`, its length (s3s gives the decoded
/// length of an `aws-chunked` body here) and an additional checksum.
pub(super) fn body_checks(
    content_md5: Option<&str>,
    content_length: Option<i64>,
    checksum: Option<ChecksumCheck>,
) -> S3Result<BodyChecks> {
    let content_md5 = content_md5
        .map(|text| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
                .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5"))
        })
        .transpose()?;
    Ok(BodyChecks {
        content_md5,
        content_length: content_length.and_then(|length| u64::try_from(length).ok()),
        checksum,
    })
}

/// The `x-amz-checksum-*` values of an upload, in the order of [`ChecksumAlgorithm::ALL`].
pub(super) type ChecksumValues<'a> = [Option<&'a str>; 5];

/// The [`ChecksumValues`] of an s3s type with the usual `checksum_*` fields.
macro_rules! checksum_values {
    ($input:expr) => {
        [
            $input.checksum_crc32.as_deref(),
            $input.checksum_crc32c.as_deref(),
            $input.checksum_crc64nvme.as_deref(),
            $input.checksum_sha1.as_deref(),
            $input.checksum_sha256.as_deref(),
        ]
    };
}
pub(super) use checksum_values;

/// [`checksum_check`] of an upload request (`$req`) whose input (`$input`, moved out of it)
/// has the usual `checksum_*` fields.
macro_rules! requested_checksum {
    ($req:expr, $input:expr) => {
        $crate::s3::frontend::convert::checksum_check(
            $crate::s3::frontend::convert::checksum_values!($input),
            $input.checksum_algorithm.as_ref(),
            &$req.headers,
            $req.trailing_headers.as_ref(),
        )
    };
}
pub(super) use requested_checksum;

/// Whether a read asked for the object's checksum (`x-amz-checksum-mode: ENABLED`).
pub(super) fn checksum_wanted(mode: Option<&dto::ChecksumMode>) -> bool {
    mode.is_some_and(|mode| {
        mode.as_str()
            .eq_ignore_ascii_case(dto::ChecksumMode::ENABLED)
    })
}

/// The additional checksum a client asked for: a value in an `x-amz-checksum-*` header, one
/// announced as a trailer (`x-amz-trailer`) of an `aws-chunked` body, or only an algorithm
/// (`x-amz-sdk-checksum-algorithm`), which is then computed and kept without a check.
pub(super) fn checksum_check(
    values: ChecksumValues<'_>,
    sdk_algorithm: Option<&dto::ChecksumAlgorithm>,
    headers: &http::HeaderMap,
    trailers: Option<&TrailingHeaders>,
) -> S3Result<Option<ChecksumCheck>> {
    let sent = Checksum::single_sent(values)
        .map_err(|_| s3_error!(InvalidRequest, "expecting a single x-amz-checksum- header"))?;
    let named = sdk_algorithm.map(checksum_algorithm).transpose()?;
    if let Some(Checksum { algorithm, value }) = sent {
        if named.is_some_and(|named| named != algorithm) {
            return Err(s3_error!(
                InvalidRequest,
                "x-amz-sdk-checksum-algorithm names another algorithm than the x-amz-checksum- header"
            ));
        }
        return Ok(Some(ChecksumCheck {
            algorithm,
            expected: ExpectedChecksum::Value(value),
        }));
    }
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|value| value.to_str().ok())
        .and_then(|name| {
            name.trim()
                .to_ascii_lowercase()
                .strip_prefix("x-amz-checksum-")
                .map(str::to_owned)
        });
    if let Some(name) = trailer {
        let algorithm = ChecksumAlgorithm::parse(&name).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "unknown checksum trailer x-amz-checksum-{}",
                crate::routes::extract::bounded(&name)
            )
        })?;
        let trailers = trailers
            .cloned()
            .ok_or_else(|| s3_error!(InvalidRequest, "x-amz-trailer needs an aws-chunked body"))?;
        let header = algorithm.header_name();
        let read = move || {
            trailers
                .read(|headers| {
                    headers
                        .get(header.as_str())
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned)
                })
                .flatten()
        };
        return Ok(Some(ChecksumCheck {
            algorithm,
            expected: ExpectedChecksum::AfterBody(Arc::new(read)),
        }));
    }
    Ok(named.map(|algorithm| ChecksumCheck {
        algorithm,
        expected: ExpectedChecksum::Unknown,
    }))
}

/// The checksum type S3 reports: `COMPOSITE` for a multipart object's `…-N` checksum.
pub(super) fn checksum_type(checksum: Option<&Checksum>) -> Option<dto::ChecksumType> {
    checksum.map(|checksum| {
        dto::ChecksumType::from_static(if checksum.value.contains('-') {
            dto::ChecksumType::COMPOSITE
        } else {
            dto::ChecksumType::FULL_OBJECT
        })
    })
}

/// A checksum algorithm as an S3 request names it.
pub(super) fn checksum_algorithm(name: &dto::ChecksumAlgorithm) -> S3Result<ChecksumAlgorithm> {
    ChecksumAlgorithm::parse(name.as_str()).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "unknown checksum algorithm {:?}",
            crate::routes::extract::bounded(name.as_str())
        )
    })
}

/// The checksum a CompleteMultipartUpload names for a part, if any.
pub(super) fn part_checksum(part: &dto::CompletedPart) -> S3Result<Option<Checksum>> {
    Checksum::single_sent(checksum_values!(part))
        .map_err(|_| s3_error!(InvalidPart, "a part names more than one checksum"))
}

/// Sets the `checksum_*` fields of an s3s output (see [`checksum_fields`]).
macro_rules! set_checksum_fields {
    ($output:expr, $checksum:expr) => {{
        let [crc32, crc32c, crc64nvme, sha1, sha256] =
            $crate::s3::frontend::convert::checksum_fields($checksum);
        $output.checksum_crc32 = crc32;
        $output.checksum_crc32c = crc32c;
        $output.checksum_crc64nvme = crc64nvme;
        $output.checksum_sha1 = sha1;
        $output.checksum_sha256 = sha256;
    }};
}
pub(super) use set_checksum_fields;

/// The response fields `checksum_crc32` ... `checksum_sha256` (in the order of
/// [`ChecksumAlgorithm::ALL`]), the one of `checksum`'s algorithm set.
pub(super) fn checksum_fields(checksum: Option<&Checksum>) -> [Option<String>; 5] {
    let mut fields: [Option<String>; 5] = Default::default();
    if let Some(checksum) = checksum {
        let index = ChecksumAlgorithm::ALL
            .iter()
            .position(|algorithm| *algorithm == checksum.algorithm)
            .unwrap_or_default();
        fields[index] = Some(checksum.value.clone());
    }
    fields
}

pub(super) fn metadata(map: Option<dto::Metadata>) -> std::collections::BTreeMap<String, String> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}

pub(super) fn out_metadata(
    map: &std::collections::BTreeMap<String, String>,
) -> Option<dto::Metadata> {
    (!map.is_empty()).then(|| map.clone().into_iter().collect())
}

pub(super) fn range(range: Option<dto::Range>) -> Option<ByteRange> {
    range.map(|range| match range {
        dto::Range::Int {
            first,
            last: Some(last),
        } => ByteRange::Bounded {
            start: first,
            end: last,
        },
        dto::Range::Int { first, last: None } => ByteRange::From(first),
        dto::Range::Suffix { length } => ByteRange::Suffix(length),
    })
}

pub(super) fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(condition_text),
        if_none_match: if_none_match.map(condition_text),
        if_modified_since_ms: if_modified_since.map(millis),
        if_unmodified_since_ms: if_unmodified_since.map(millis),
    }
}

pub(super) fn write_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> WriteConditions {
    WriteConditions {
        if_match: if_match.map(condition_text),
        if_none_match: if_none_match.map(condition_text),
    }
}

/// The kept headers of a write (`$input`: an s3s input with the usual `cache_control`,
/// `content_disposition`, `content_encoding`, `content_language` and `expires` fields).
macro_rules! requested_headers {
    ($input:expr) => {
        $crate::s3::frontend::convert::object_headers(
            $input.cache_control,
            $input.content_disposition,
            $input.content_encoding,
            $input.content_language,
            $input.expires.as_ref(),
        )
    };
}
pub(super) use requested_headers;

pub(super) fn object_headers(
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<&Timestamp>,
) -> ObjectHeaders {
    ObjectHeaders {
        cache_control,
        content_disposition,
        content_encoding: content_encoding.and_then(|value| stored_encoding(&value)),
        content_language,
        expires: expires.and_then(http_date),
    }
}

/// A Content-Encoding as kept: `aws-chunked` says how the request body was framed, not how
/// the object is encoded, so it is dropped (as S3 does), and with it an encoding of nothing else.
fn stored_encoding(value: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

fn http_date(ts: &Timestamp) -> Option<String> {
    let mut text = Vec::new();
    ts.format(dto::TimestampFormat::HttpDate, &mut text).ok()?;
    String::from_utf8(text).ok()
}

/// A kept Expires as a timestamp; one that is not an HTTP date (the REST API keeps what it
/// is sent) is not returned through S3, whose clients parse it as a date.
fn expires_timestamp(value: &str) -> Option<Timestamp> {
    Timestamp::parse(dto::TimestampFormat::HttpDate, value).ok()
}

/// Sets the kept headers of a GET or HEAD output, each replaced by its `response-*` query
/// override if the request (`$input`) has one.
macro_rules! set_object_headers {
    ($output:expr, $headers:expr, $input:expr) => {{
        let headers: &ferrobase_storage::ObjectHeaders = $headers;
        $output.cache_control = $input
            .response_cache_control
            .clone()
            .or_else(|| headers.cache_control.clone());
        $output.content_disposition = $input
            .response_content_disposition
            .clone()
            .or_else(|| headers.content_disposition.clone());
        $output.content_encoding = $input
            .response_content_encoding
            .clone()
            .or_else(|| headers.content_encoding.clone());
        $output.content_language = $input
            .response_content_language
            .clone()
            .or_else(|| headers.content_language.clone());
        $output.expires = $crate::s3::frontend::convert::expires_or(
            $input.response_expires.as_ref(),
            headers.expires.as_deref(),
        );
        if let Some(content_type) = $input.response_content_type.clone() {
            $output.content_type = Some(content_type);
        }
    }};
}
pub(super) use set_object_headers;

pub(super) fn expires_or(overridden: Option<&Timestamp>, kept: Option<&str>) -> Option<Timestamp> {
    overridden
        .cloned()
        .or_else(|| kept.and_then(expires_timestamp))
}
