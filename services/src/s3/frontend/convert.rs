//! Conversions between `s3s` types and the storage API's.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use ferrobase_storage::{BodyChecks, ByteRange, ByteStream, ReadConditions, WriteConditions};
use futures::{StreamExt, TryStreamExt};
use s3s::dto::{self, ETag, ETagCondition, StreamingBlob, Timestamp};
use s3s::{S3Result, s3_error};

use crate::s3::SyncStream;

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

/// What the client declared about a body: `Content-MD5`, and its length (s3s gives the
/// decoded length of an `aws-chunked` body here).
pub(super) fn body_checks(
    content_md5: Option<&str>,
    content_length: Option<i64>,
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
    })
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
) -> S3Result<WriteConditions> {
    let if_none_match_any = match if_none_match {
        None => false,
        Some(ETagCondition::Any) => true,
        Some(ETagCondition::ETag(_)) => {
            return Err(s3_error!(
                NotImplemented,
                "on writes, If-None-Match only supports \"*\""
            ));
        }
    };
    Ok(WriteConditions {
        if_match: if_match.map(condition_text),
        if_none_match_any,
    })
}
