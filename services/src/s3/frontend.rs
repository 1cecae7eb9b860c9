//! The S3 operations, over [`Storage`], for the `s3s` protocol layer.
//!
//! `s3s` parses requests, checks SigV4 signatures (headers and presigned URLs, with the secret
//! from [`super::keys::AccessKeys`]) and writes XML; this file maps each operation onto the
//! storage API after authorising it with the namespace policy, exactly like the HTTP API.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use ferrobase_core::auth::Claims;
use ferrobase_core::event::Causation;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_core::{ErrorCode, Namespace};
use ferrobase_storage::model::MAX_LIST_KEYS;
use ferrobase_storage::{
    ByteRange, ByteStream, CompletedPart, GetOptions, ListQuery, PutOptions, ReadConditions,
    Storage, StorageError, WriteConditions,
};
use futures::{StreamExt, TryStreamExt};
use s3s::dto::{self, ETag, ETagCondition, StreamingBlob, Timestamp};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::SyncStream;
use super::keys::AccessKeys;
use crate::auth::{Authorizer, Identity};
use crate::state::AppState;

/// The S3 operations of one server.
#[derive(Debug, Clone)]
pub struct S3Frontend {
    state: AppState,
    storage: Arc<Storage>,
    keys: Arc<AccessKeys>,
}

impl S3Frontend {
    pub fn new(state: AppState, storage: Arc<Storage>, keys: Arc<AccessKeys>) -> Self {
        S3Frontend {
            state,
            storage,
            keys,
        }
    }

    /// The namespace of the request's access key, once the policy allows `action` on `path`.
    async fn authorize<T>(
        &self,
        req: &S3Request<T>,
        action: Action,
        path: &str,
    ) -> S3Result<Namespace> {
        let credentials = req
            .credentials
            .as_ref()
            .ok_or_else(|| s3_error!(AccessDenied, "anonymous requests are not allowed"))?;
        let key = self
            .keys
            .get(&credentials.access_key)
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
        let claims = Claims {
            sub: key.access_key_id.clone(),
            exp: u64::MAX,
            iat: None,
            ns: Some(key.ns.clone()),
            role: key.role,
            scopes: None,
        };
        let identity = Identity(claims);
        let authorizer = Authorizer::for_namespace(&self.state, &identity, &key.ns)
            .await
            .map_err(api_to_s3)?;
        authorizer
            .require(action, Resource::new(Service::Storage, path))
            .map_err(api_to_s3)?;
        Ok(key.ns)
    }
}

fn api_to_s3(error: crate::error::ApiError) -> S3Error {
    match error.code {
        ErrorCode::PermissionDenied | ErrorCode::Unauthenticated => {
            S3Error::with_message(S3ErrorCode::AccessDenied, error.message)
        }
        _ => S3Error::with_message(S3ErrorCode::InternalError, "internal error"),
    }
}

/// The one mapping from storage errors to S3 error codes.
pub fn storage_to_s3(error: StorageError) -> S3Error {
    let code = match &error {
        StorageError::InvalidBucketName { .. } => S3ErrorCode::InvalidBucketName,
        StorageError::InvalidKey(_) | StorageError::InvalidArgument(_) => {
            S3ErrorCode::InvalidArgument
        }
        StorageError::KeyTooLong { .. } => S3ErrorCode::KeyTooLongError,
        StorageError::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
        StorageError::NoSuchKey { .. } => S3ErrorCode::NoSuchKey,
        StorageError::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
        StorageError::BucketAlreadyExists(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
        StorageError::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
        StorageError::PreconditionFailed(_) => S3ErrorCode::PreconditionFailed,
        StorageError::NotModified { .. } => S3ErrorCode::NotModified,
        StorageError::InvalidRange { .. } => S3ErrorCode::InvalidRange,
        StorageError::BadDigest => S3ErrorCode::BadDigest,
        StorageError::InvalidPart(_) => S3ErrorCode::InvalidPart,
        StorageError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        StorageError::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
        StorageError::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
        StorageError::Backend(_) | StorageError::Records(_) => {
            tracing::error!(%error, "storage failure");
            return S3Error::with_message(S3ErrorCode::InternalError, "internal error");
        }
    };
    let mut s3_error = S3Error::with_message(code, error.to_string());
    if let StorageError::NotModified { etag, .. } = &error {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
            headers.insert(http::header::ETAG, value);
        }
        s3_error.set_headers(headers);
    }
    s3_error
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn millis(ts: &Timestamp) -> u64 {
    let time: time::OffsetDateTime = ts.clone().into();
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}

fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn condition_text(condition: &ETagCondition) -> String {
    match condition {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(tag) => tag.value().to_owned(),
    }
}

fn body_stream(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(blob) => blob.map_err(std::io::Error::other).boxed(),
        None => futures::stream::empty().boxed(),
    }
}

fn blob(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream::new(stream))
}

fn content_md5(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    value
        .map(|text| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
                .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5"))
        })
        .transpose()
}

fn metadata(map: Option<dto::Metadata>) -> std::collections::BTreeMap<String, String> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}

fn out_metadata(map: &std::collections::BTreeMap<String, String>) -> Option<dto::Metadata> {
    (!map.is_empty()).then(|| map.clone().into_iter().collect())
}

fn range(range: Option<dto::Range>) -> Option<ByteRange> {
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

fn read_conditions(
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

fn write_conditions(
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

#[async_trait::async_trait]
impl S3 for S3Frontend {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        let ns = self.authorize(&req, Action::Read, "").await?;
        let buckets = self
            .storage
            .list_buckets(&ns)
            .await
            .map_err(storage_to_s3)?;
        let buckets = buckets
            .into_iter()
            .map(|bucket| dto::Bucket {
                creation_date: Some(timestamp(bucket.created_ms)),
                name: Some(bucket.name),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(dto::ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(dto::Owner {
                display_name: Some(ns.to_string()),
                id: Some(ns.to_string()),
            }),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        let bucket = req.input.bucket.clone();
        let ns = self.authorize(&req, Action::Write, &bucket).await?;
        self.storage
            .create_bucket(&ns, &bucket)
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        let bucket = req.input.bucket.clone();
        let ns = self.authorize(&req, Action::Read, &bucket).await?;
        self.storage
            .head_bucket(&ns, &bucket)
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        let bucket = req.input.bucket.clone();
        let ns = self.authorize(&req, Action::Read, &bucket).await?;
        self.storage
            .head_bucket(&ns, &bucket)
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        let bucket = req.input.bucket.clone();
        let ns = self.authorize(&req, Action::Write, &bucket).await?;
        self.storage
            .delete_bucket(&ns, &bucket)
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::DeleteBucketOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Write, &path).await?;
        let input = req.input;
        let options = PutOptions {
            content_type: input.content_type,
            metadata: metadata(input.metadata),
            content_md5: content_md5(input.content_md5.as_deref())?,
            conditions: write_conditions(input.if_match.as_ref(), input.if_none_match.as_ref())?,
            causation: Causation::default(),
        };
        let info = self
            .storage
            .put_object(
                &ns,
                &input.bucket,
                &input.key,
                body_stream(input.body),
                options,
            )
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::PutObjectOutput {
            e_tag: Some(etag(&info.etag)),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Read, &path).await?;
        let input = req.input;
        let options = GetOptions {
            range: range(input.range),
            conditions: read_conditions(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
                input.if_unmodified_since.as_ref(),
            ),
        };
        let object = self
            .storage
            .get_object(&ns, &input.bucket, &input.key, &options)
            .await
            .map_err(storage_to_s3)?;
        let info = &object.info;
        let (content_length, content_range) = match &object.range {
            Some(span) => (
                span.end - span.start,
                Some(format!(
                    "bytes {}-{}/{}",
                    span.start,
                    span.end - 1,
                    info.size
                )),
            ),
            None => (info.size, None),
        };
        Ok(S3Response::new(dto::GetObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(content_length as i64),
            content_range,
            content_type: Some(info.content_type.clone()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            metadata: out_metadata(&info.metadata),
            parts_count: info.parts.map(|n| n as i32),
            body: Some(blob(object.body)),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Read, &path).await?;
        let input = req.input;
        let options = GetOptions {
            range: None,
            conditions: read_conditions(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
                input.if_unmodified_since.as_ref(),
            ),
        };
        let info = self
            .storage
            .head_object(&ns, &input.bucket, &input.key, &options)
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(info.size as i64),
            content_type: Some(info.content_type.clone()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            metadata: out_metadata(&info.metadata),
            parts_count: info.parts.map(|n| n as i32),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Write, &path).await?;
        self.storage
            .delete_object(&ns, &req.input.bucket, &req.input.key, Causation::default())
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let ns = self.authorize(&req, Action::Write, &bucket).await?;
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in &req.input.delete.objects {
            let path = format!("{bucket}/{}", object.key);
            let outcome = match self.authorize(&req, Action::Write, &path).await {
                Ok(_) => self
                    .storage
                    .delete_object(&ns, &bucket, &object.key, Causation::default())
                    .await
                    .map_err(storage_to_s3),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(_) => {
                    if !quiet {
                        deleted.push(dto::DeletedObject {
                            key: Some(object.key.clone()),
                            ..Default::default()
                        });
                    }
                }
                Err(error) => errors.push(dto::Error {
                    code: Some(error.code().as_str().to_owned()),
                    key: Some(object.key.clone()),
                    message: error.message().map(str::to_owned),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(dto::DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        let (source_bucket, source_key) = match &req.input.copy_source {
            dto::CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
            dto::CopySource::AccessPoint { .. } | dto::CopySource::Outpost { .. } => {
                return Err(s3_error!(NotImplemented, "access points are not supported"));
            }
        };
        let ns = self
            .authorize(&req, Action::Read, &format!("{source_bucket}/{source_key}"))
            .await?;
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        self.authorize(&req, Action::Write, &path).await?;
        let input = req.input;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|directive| directive.as_str() == dto::MetadataDirective::REPLACE);
        let replace = replace.then(|| PutOptions {
            content_type: input.content_type.clone(),
            metadata: metadata(input.metadata.clone()),
            ..PutOptions::default()
        });
        let conditions = read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let info = self
            .storage
            .copy_object(
                &ns,
                &source_bucket,
                &source_key,
                &conditions,
                &input.bucket,
                &input.key,
                replace,
                Causation::default(),
            )
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::CopyObjectOutput {
            copy_object_result: Some(dto::CopyObjectResult {
                e_tag: Some(etag(&info.etag)),
                last_modified: Some(timestamp(info.last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let ns = self.authorize(&req, Action::Read, &bucket).await?;
        let input = req.input;
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => Some(decode_token(token)?),
            (None, Some(start)) if !start.is_empty() => Some(start.clone()),
            _ => None,
        };
        let max = max_keys(input.max_keys);
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            after,
            max_keys: max.max(1),
        };
        let page = if max == 0 {
            ferrobase_storage::ListPage::default()
        } else {
            self.storage
                .list_objects(&ns, &bucket, &query)
                .await
                .map_err(storage_to_s3)?
        };
        let key_count = page.objects.len() + page.common_prefixes.len();
        let contents: Vec<dto::Object> = page
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
        let common_prefixes: Vec<dto::CommonPrefix> = page
            .common_prefixes
            .into_iter()
            .map(|prefix| dto::CommonPrefix {
                prefix: Some(prefix),
            })
            .collect();
        Ok(S3Response::new(dto::ListObjectsV2Output {
            name: Some(bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            max_keys: Some(max as i32),
            key_count: Some(key_count as i32),
            is_truncated: Some(page.next.is_some()),
            continuation_token: input.continuation_token,
            next_continuation_token: page.next.as_deref().map(encode_token),
            start_after: input.start_after,
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Write, &path).await?;
        let input = req.input;
        let options = PutOptions {
            content_type: input.content_type,
            metadata: metadata(input.metadata),
            ..PutOptions::default()
        };
        let upload_id = self
            .storage
            .create_multipart(&ns, &input.bucket, &input.key, options)
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Write, &path).await?;
        let input = req.input;
        let number = u32::try_from(input.part_number)
            .map_err(|_| s3_error!(InvalidArgument, "invalid part number"))?;
        let part = self
            .storage
            .upload_part(
                &ns,
                &input.bucket,
                &input.key,
                &input.upload_id,
                number,
                body_stream(input.body),
                content_md5(input.content_md5.as_deref())?,
            )
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::UploadPartOutput {
            e_tag: Some(etag(&part.etag)),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Write, &path).await?;
        let input = req.input;
        let parts = input
            .multipart_upload
            .and_then(|upload| upload.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|part| {
                Ok(CompletedPart {
                    part_number: part
                        .part_number
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| s3_error!(InvalidPart, "a part has no part number"))?,
                    etag: part
                        .e_tag
                        .map(ETag::into_value)
                        .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?,
                })
            })
            .collect::<S3Result<Vec<_>>>()?;
        let conditions = write_conditions(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let info = self
            .storage
            .complete_multipart(
                &ns,
                &input.bucket,
                &input.key,
                &input.upload_id,
                &parts,
                &conditions,
                Causation::default(),
            )
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::CompleteMultipartUploadOutput {
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(etag(&info.etag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Write, &path).await?;
        self.storage
            .abort_multipart(&ns, &req.input.bucket, &req.input.key, &req.input.upload_id)
            .await
            .map_err(storage_to_s3)?;
        Ok(S3Response::new(dto::AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        let path = format!("{}/{}", req.input.bucket, req.input.key);
        let ns = self.authorize(&req, Action::Read, &path).await?;
        let input = req.input;
        let max = input
            .max_parts
            .map(|n| usize::try_from(n).unwrap_or(0).clamp(1, 1000))
            .unwrap_or(1000);
        let after = input
            .part_number_marker
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0);
        let (parts, truncated) = self
            .storage
            .list_parts(&ns, &input.bucket, &input.key, &input.upload_id, after, max)
            .await
            .map_err(storage_to_s3)?;
        let next = parts.last().map(|part| part.part_number as i32);
        let parts = parts
            .into_iter()
            .map(|part| dto::Part {
                e_tag: Some(etag(&part.etag)),
                last_modified: Some(timestamp(part.last_modified_ms)),
                part_number: Some(part.part_number as i32),
                size: Some(part.size as i64),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        let bucket = req.input.bucket.clone();
        let ns = self.authorize(&req, Action::Read, &bucket).await?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let uploads = self
            .storage
            .list_uploads(&ns, &bucket, &prefix)
            .await
            .map_err(storage_to_s3)?;
        let uploads = uploads
            .into_iter()
            .map(|upload| dto::MultipartUpload {
                initiated: Some(timestamp(upload.initiated_ms)),
                key: Some(upload.key),
                upload_id: Some(upload.upload_id),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListMultipartUploadsOutput {
            bucket: Some(bucket),
            prefix: req.input.prefix,
            is_truncated: Some(false),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
