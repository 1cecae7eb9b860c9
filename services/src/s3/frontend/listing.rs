//! Listings: the objects of a bucket and its multipart uploads in progress.

use base64::Engine as _;
use ferrobase_core::Namespace;
use ferrobase_core::policy::Action;
use ferrobase_storage::model::MAX_LIST_KEYS;
use ferrobase_storage::{ListQuery, UploadMarker, UploadQuery};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::convert::{etag, timestamp};
use super::{S3Frontend, storage_to_s3};

/// One page of objects as `s3s` writes them, for both versions of ListObjects.
struct ObjectsPage {
    contents: Vec<dto::Object>,
    common_prefixes: Vec<dto::CommonPrefix>,
    /// The last key or common prefix of a truncated page.
    next: Option<String>,
}

impl ObjectsPage {
    fn key_count(&self) -> usize {
        self.contents.len() + self.common_prefixes.len()
    }
}

/// Lists up to `max` keys and common prefixes after `after` (none when `max` is 0, which S3
/// allows).
async fn objects_page(
    frontend: &S3Frontend,
    ns: &Namespace,
    bucket: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    after: Option<String>,
    max: usize,
) -> S3Result<ObjectsPage> {
    let query = ListQuery {
        prefix: prefix.unwrap_or_default().to_owned(),
        delimiter: delimiter.map(str::to_owned),
        after,
        max_keys: max.max(1),
    };
    let page = if max == 0 {
        ferrobase_storage::ListPage::default()
    } else {
        frontend
            .storage
            .list_objects(ns, bucket, &query)
            .await
            .map_err(storage_to_s3)?
    };
    let contents = page
        .objects
        .into_iter()
        .map(|object| dto::Object {
            e_tag: Some(etag(&object.etag)),
            key: Some(object.key),
            last_modified: Some(timestamp(object.last_modified_ms)),
            size: Some(object.size as i64),
            storage_class: Some(dto::ObjectStorageClass::from_static(
                dto::ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let common_prefixes = page
        .common_prefixes
        .into_iter()
        .map(|prefix| dto::CommonPrefix {
            prefix: Some(prefix),
        })
        .collect();
    Ok(ObjectsPage {
        contents,
        common_prefixes,
        next: page.next,
    })
}

pub(super) async fn list_objects_v2(
    frontend: &S3Frontend,
    req: S3Request<dto::ListObjectsV2Input>,
) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Read, &bucket).await?;
    let input = req.input;
    let after = match (&input.continuation_token, &input.start_after) {
        (Some(token), _) => Some(decode_token(token)?),
        (None, Some(start)) if !start.is_empty() => Some(start.clone()),
        _ => None,
    };
    let max = max_keys(input.max_keys);
    let page = objects_page(
        frontend,
        &ns,
        &bucket,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        after,
        max,
    )
    .await?;
    Ok(S3Response::new(dto::ListObjectsV2Output {
        name: Some(bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        max_keys: Some(max as i32),
        key_count: Some(page.key_count() as i32),
        is_truncated: Some(page.next.is_some()),
        continuation_token: input.continuation_token,
        next_continuation_token: page.next.as_deref().map(encode_token),
        start_after: input.start_after,
        contents: Some(page.contents),
        common_prefixes: Some(page.common_prefixes),
        ..Default::default()
    }))
}

/// ListObjects, the first version, which some clients still use: pages continue after
/// `marker` (a key or common prefix). As in S3, `NextMarker` is given only with a delimiter;
/// without one, clients continue from the last key of the page.
pub(super) async fn list_objects(
    frontend: &S3Frontend,
    req: S3Request<dto::ListObjectsInput>,
) -> S3Result<S3Response<dto::ListObjectsOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Read, &bucket).await?;
    let input = req.input;
    let max = max_keys(input.max_keys);
    let after = input.marker.clone().filter(|marker| !marker.is_empty());
    let delimited = input.delimiter.as_deref().is_some_and(|d| !d.is_empty());
    let page = objects_page(
        frontend,
        &ns,
        &bucket,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        after,
        max,
    )
    .await?;
    Ok(S3Response::new(dto::ListObjectsOutput {
        name: Some(bucket),
        prefix: input.prefix,
        // S3 always answers the marker it was given, empty for the first page.
        marker: Some(input.marker.unwrap_or_default()),
        delimiter: input.delimiter,
        max_keys: Some(max as i32),
        is_truncated: Some(page.next.is_some()),
        next_marker: page.next.filter(|_| delimited),
        contents: Some(page.contents),
        common_prefixes: Some(page.common_prefixes),
        ..Default::default()
    }))
}

/// ListMultipartUploads, in pages: by key, then upload id (which grows with initiation time,
/// as S3 orders them), resuming after `key-marker` and `upload-id-marker`.
pub(super) async fn list_multipart_uploads(
    frontend: &S3Frontend,
    req: S3Request<dto::ListMultipartUploadsInput>,
) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Read, &bucket).await?;
    let input = req.input;
    let max = max_keys(input.max_uploads).max(1);
    // As in S3, an upload id marker means nothing without a key marker.
    let after = input
        .key_marker
        .clone()
        .filter(|key| !key.is_empty())
        .map(|key| UploadMarker {
            key,
            upload_id: input.upload_id_marker.clone().filter(|id| !id.is_empty()),
        });
    let query = UploadQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after,
        max_uploads: max,
    };
    let page = frontend
        .storage
        .list_uploads_page(&ns, &bucket, &query)
        .await
        .map_err(storage_to_s3)?;
    let uploads = page
        .uploads
        .into_iter()
        .map(|upload| dto::MultipartUpload {
            initiated: Some(timestamp(upload.initiated_ms)),
            key: Some(upload.key),
            upload_id: Some(upload.upload_id),
            ..Default::default()
        })
        .collect();
    let common_prefixes = page
        .common_prefixes
        .into_iter()
        .map(|prefix| dto::CommonPrefix {
            prefix: Some(prefix),
        })
        .collect();
    let (next_key_marker, next_upload_id_marker) = match page.next {
        Some(next) => (Some(next.key), next.upload_id),
        None => (None, None),
    };
    Ok(S3Response::new(dto::ListMultipartUploadsOutput {
        bucket: Some(bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(next_key_marker.is_some()),
        next_key_marker,
        next_upload_id_marker,
        uploads: Some(uploads),
        common_prefixes: Some(common_prefixes),
        ..Default::default()
    }))
}

/// Continuation tokens are the base64 of the last key (or prefix) returned.
fn encode_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "invalid continuation token"))
}

fn max_keys(value: Option<i32>) -> usize {
    value
        .map(|n| usize::try_from(n).unwrap_or(0).min(MAX_LIST_KEYS))
        .unwrap_or(MAX_LIST_KEYS)
}
