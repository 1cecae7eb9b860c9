//! Bucket operations: list, create, head, location and delete.

use ferrobase_core::policy::Action;
use ferrobase_storage::StorageError;
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::convert::timestamp;
use super::{S3Frontend, storage_to_s3};

/// Most buckets one ListBuckets page holds when `max-buckets` is given (S3's bound).
const MAX_BUCKETS_PAGE: i32 = 10_000;

/// ListBuckets, by name: all at once, or in pages of `max-buckets` continued by the token.
pub(super) async fn list_buckets(
    frontend: &S3Frontend,
    req: S3Request<dto::ListBucketsInput>,
) -> S3Result<S3Response<dto::ListBucketsOutput>> {
    let ns = frontend.authorize(&req, Action::Read, "").await?;
    let input = &req.input;
    let max = match input.max_buckets {
        None => usize::MAX,
        Some(n @ 1..=MAX_BUCKETS_PAGE) => n as usize,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and {MAX_BUCKETS_PAGE}"
            ));
        }
    };
    let prefix = input.prefix.as_deref().unwrap_or_default();
    // The token is the last bucket name of the previous page: a bucket's name is no secret
    // from a caller who may list the namespace's buckets.
    let after = input.continuation_token.as_deref().unwrap_or_default();
    let mut buckets: Vec<_> = frontend
        .storage
        .list_buckets(&ns)
        .await
        .map_err(storage_to_s3)?
        .into_iter()
        .filter(|bucket| bucket.name.starts_with(prefix) && bucket.name.as_str() > after)
        .collect();
    let next = (buckets.len() > max).then(|| buckets[max - 1].name.clone());
    buckets.truncate(max);
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
        continuation_token: next,
        prefix: req.input.prefix,
        owner: Some(dto::Owner {
            display_name: Some(ns.to_string()),
            id: Some(ns.to_string()),
        }),
    }))
}

pub(super) async fn create_bucket(
    frontend: &S3Frontend,
    req: S3Request<dto::CreateBucketInput>,
) -> S3Result<S3Response<dto::CreateBucketOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Write, &bucket).await?;
    super::acl::require_private_canned(
        "CreateBucket",
        req.input.acl.as_ref().map(|acl| acl.as_str()),
    )?;
    // Bucket names are per namespace, and the namespace owns all of its buckets: creating one
    // it already has succeeds, as S3 answers in us-east-1.
    match frontend.storage.create_bucket(&ns, &bucket).await {
        Ok(()) | Err(StorageError::BucketAlreadyExists(_)) => {}
        Err(error) => return Err(storage_to_s3(error)),
    }
    Ok(S3Response::new(dto::CreateBucketOutput {
        location: Some(format!("/{bucket}")),
    }))
}

pub(super) async fn head_bucket(
    frontend: &S3Frontend,
    req: S3Request<dto::HeadBucketInput>,
) -> S3Result<S3Response<dto::HeadBucketOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Read, &bucket).await?;
    frontend
        .storage
        .head_bucket(&ns, &bucket)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::HeadBucketOutput::default()))
}

pub(super) async fn get_bucket_location(
    frontend: &S3Frontend,
    req: S3Request<dto::GetBucketLocationInput>,
) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Read, &bucket).await?;
    frontend
        .storage
        .head_bucket(&ns, &bucket)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::GetBucketLocationOutput::default()))
}

pub(super) async fn delete_bucket(
    frontend: &S3Frontend,
    req: S3Request<dto::DeleteBucketInput>,
) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Write, &bucket).await?;
    frontend
        .storage
        .delete_bucket(&ns, &bucket)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::DeleteBucketOutput::default()))
}

/// Buckets are unversioned and stay so: the answer has no status, as for a bucket whose
/// versioning was never enabled.
pub(super) async fn get_bucket_versioning(
    frontend: &S3Frontend,
    req: S3Request<dto::GetBucketVersioningInput>,
) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Read, &bucket).await?;
    frontend
        .storage
        .head_bucket(&ns, &bucket)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::GetBucketVersioningOutput::default()))
}

/// Enabling versioning (or MFA delete) is refused with NotImplemented; `Suspended` is
/// accepted and changes nothing, since an unversioned bucket already behaves as a suspended
/// one does (each write replaces version `null`). GetBucketVersioning still answers no status.
pub(super) async fn put_bucket_versioning(
    frontend: &S3Frontend,
    req: S3Request<dto::PutBucketVersioningInput>,
) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Write, &bucket).await?;
    frontend
        .storage
        .head_bucket(&ns, &bucket)
        .await
        .map_err(storage_to_s3)?;
    let configuration = &req.input.versioning_configuration;
    let enables = configuration
        .status
        .as_ref()
        .is_some_and(|status| status.as_str() != dto::BucketVersioningStatus::SUSPENDED);
    let mfa_delete = configuration
        .mfa_delete
        .as_ref()
        .is_some_and(|mfa| mfa.as_str() != dto::MFADelete::DISABLED);
    if enables || mfa_delete {
        return Err(s3_error!(
            NotImplemented,
            "PutBucketVersioning: bucket versioning is not supported; buckets stay unversioned \
             (only Status Suspended is accepted)"
        ));
    }
    Ok(S3Response::new(dto::PutBucketVersioningOutput::default()))
}
