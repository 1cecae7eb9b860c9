//! The S3 operations, over [`Storage`], for the `s3s` protocol layer.
//!
//! `s3s` parses requests, checks SigV4 signatures (headers and presigned URLs, with the secret
//! from [`crate::auth::access_keys::AccessKeys`]) and writes XML; this module maps each
//! operation onto the storage API after authorising it with the namespace policy, exactly like
//! the HTTP API; listings show only what the caller may read, through `auth::listing` as the
//! HTTP API's do. Errors become S3 codes in two places only, [`storage_to_s3`] and `api_to_s3`,
//! which bound the user input a message echoes.
//!
//! The [`S3`] trait must be implemented in one block, so it lives here and hands each
//! operation to the module of its concept: `buckets`, `objects`, `multipart`,
//! `listing`, `acl` and `cors` (with the answers to browsers); `convert` holds the conversions between `s3s` and storage types.

mod acl;
mod buckets;
mod convert;
pub mod cors;
mod listing;
mod multipart;
mod objects;

use std::sync::{Arc, Mutex, PoisonError};

use ferrobase_core::auth::Claims;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_core::{ErrorCode, Namespace};
use ferrobase_storage::{Storage, StorageError};
use s3s::dto;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::auth::access_keys::AccessKeys;
use crate::auth::{Authorizer, Identity};
use crate::routes::extract::bounded;
use crate::state::AppState;

/// The body of a request that `s3s` reads whole, as it arrived, recorded by [`Recording`]
/// while `s3s` reads it (after verifying the request), for operations that check it against
/// the digests the client sent.
#[derive(Debug, Clone, Default)]
pub struct WholeBody(Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
struct Recorded {
    chunks: Vec<bytes::Bytes>,
    size: usize,
    complete: bool,
}

impl WholeBody {
    /// The body, once it has been read to its end.
    pub fn bytes(&self) -> Option<bytes::Bytes> {
        let recorded = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (recorded.complete && recorded.size <= crate::s3::XML_BODY_MAX)
            .then(|| recorded.chunks.concat().into())
    }
}

/// A request body that records what passes through it into a [`WholeBody`], up to a little
/// over [`crate::s3::XML_BODY_MAX`] (the reader stops there).
#[derive(Debug)]
pub struct Recording<B> {
    inner: B,
    whole: WholeBody,
}

impl<B> Recording<B> {
    pub fn new(inner: B, whole: WholeBody) -> Self {
        Recording { inner, whole }
    }
}

impl<B> http_body::Body for Recording<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        let ended = self.inner.is_end_stream();
        let mut recorded = self.whole.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    recorded.size = recorded.size.saturating_add(data.len());
                    if recorded.size <= crate::s3::XML_BODY_MAX {
                        recorded.chunks.push(data.clone());
                    }
                }
                recorded.complete |= ended;
            }
            std::task::Poll::Ready(None) => recorded.complete = true,
            std::task::Poll::Ready(Some(Err(_))) | std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

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
        let authorizer = self.authorizer(req).await?;
        authorizer
            .require(action, Resource::new(Service::Storage, path))
            .map_err(api_to_s3)?;
        Ok(authorizer.namespace().clone())
    }

    /// The decisions for the request's access key in its namespace, for operations that
    /// decide about many resources (listings).
    async fn authorizer<T>(&self, req: &S3Request<T>) -> S3Result<Authorizer> {
        let credentials = req
            .credentials
            .as_ref()
            .ok_or_else(|| s3_error!(AccessDenied, "anonymous requests are not allowed"))?;
        let key = self
            .keys
            .get(&credentials.access_key)
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
        let claims = Claims {
            sub: key.subject().to_owned(),
            exp: u64::MAX,
            iat: None,
            ns: Some(key.ns.clone()),
            role: key.role,
            scopes: None,
        };
        Authorizer::for_namespace(&self.state, &Identity(claims), &key.ns)
            .await
            .map_err(api_to_s3)
    }
}

/// The one mapping from the HTTP API's errors (authorisation, listings) to S3 error codes.
fn api_to_s3(error: crate::error::ApiError) -> S3Error {
    let code = match error.code {
        ErrorCode::PermissionDenied | ErrorCode::Unauthenticated => S3ErrorCode::AccessDenied,
        ErrorCode::InvalidArgument => S3ErrorCode::InvalidArgument,
        // A listing meets no other missing thing than its bucket.
        ErrorCode::NotFound => S3ErrorCode::NoSuchBucket,
        ErrorCode::Conflict
        | ErrorCode::PreconditionFailed
        | ErrorCode::TooLarge
        | ErrorCode::ResourceExhausted
        | ErrorCode::Internal
        | ErrorCode::Unavailable
        | ErrorCode::FunctionError
        | ErrorCode::Timeout
        | ErrorCode::Oom => {
            tracing::error!(code = error.code.as_str(), message = %error.message, "S3 request failed");
            return S3Error::with_message(S3ErrorCode::InternalError, "internal error");
        }
    };
    S3Error::with_message(code, bounded(&error.message))
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
        StorageError::BucketBusy(_) => S3ErrorCode::OperationAborted,
        StorageError::PreconditionFailed(_) => S3ErrorCode::PreconditionFailed,
        StorageError::NotModified { .. } => S3ErrorCode::NotModified,
        StorageError::InvalidRange { .. } => S3ErrorCode::InvalidRange,
        StorageError::BadDigest | StorageError::BadChecksum { .. } => S3ErrorCode::BadDigest,
        StorageError::InvalidPart(_) => S3ErrorCode::InvalidPart,
        StorageError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        StorageError::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
        StorageError::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
        StorageError::Backend(_) | StorageError::Records(_) => {
            tracing::error!(%error, "storage failure");
            return S3Error::with_message(S3ErrorCode::InternalError, "internal error");
        }
    };
    let mut s3_error = S3Error::with_message(code, bounded(&error.to_string()));
    if let StorageError::NotModified { etag, .. } = &error {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
            headers.insert(http::header::ETAG, value);
        }
        s3_error.set_headers(headers);
    }
    s3_error
}

#[async_trait::async_trait]
impl S3 for S3Frontend {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        buckets::list_buckets(self, req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        buckets::create_bucket(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        buckets::head_bucket(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        buckets::get_bucket_location(self, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        buckets::delete_bucket(self, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        buckets::get_bucket_versioning(self, req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<dto::PutBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
        buckets::put_bucket_versioning(self, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        objects::put_object(self, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        objects::get_object(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        objects::head_object(self, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        objects::delete_object(self, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        objects::delete_objects(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        objects::copy_object(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        listing::list_objects(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        listing::list_objects_v2(self, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<dto::ListObjectVersionsInput>,
    ) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
        listing::list_object_versions(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        listing::list_multipart_uploads(self, req).await
    }

    async fn get_object_acl(
        &self,
        req: S3Request<dto::GetObjectAclInput>,
    ) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
        acl::get_object_acl(self, req).await
    }

    async fn put_object_acl(
        &self,
        req: S3Request<dto::PutObjectAclInput>,
    ) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
        acl::put_object_acl(self, req).await
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<dto::GetBucketAclInput>,
    ) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
        acl::get_bucket_acl(self, req).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<dto::PutBucketAclInput>,
    ) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
        acl::put_bucket_acl(self, req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<dto::GetObjectAttributesInput>,
    ) -> S3Result<S3Response<dto::GetObjectAttributesOutput>> {
        objects::get_object_attributes(self, req).await
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<dto::PutBucketCorsInput>,
    ) -> S3Result<S3Response<dto::PutBucketCorsOutput>> {
        cors::put_bucket_cors(self, req).await
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<dto::GetBucketCorsInput>,
    ) -> S3Result<S3Response<dto::GetBucketCorsOutput>> {
        cors::get_bucket_cors(self, req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<dto::DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketCorsOutput>> {
        cors::delete_bucket_cors(self, req).await
    }
}
