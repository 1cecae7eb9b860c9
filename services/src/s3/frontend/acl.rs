//! Access control lists, of which only the canned `private` one exists: a namespace owns its
//! buckets and objects, and who may do what is the namespace policy's to say, not an ACL's.
//! Reads answer the owner's FULL_CONTROL grant; writes of `private` (as a canned ACL, or as
//! a policy granting the owner FULL_CONTROL and nothing else) are accepted and change
//! nothing; any other ACL is refused with NotImplemented naming the operation, so that a
//! client asking for public access learns it did not get it.

use ferrobase_core::Namespace;
use ferrobase_core::policy::Action;
use ferrobase_storage::GetOptions;
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::convert::require_null_version;
use super::{S3Frontend, storage_to_s3};

fn owner(ns: &Namespace) -> dto::Owner {
    dto::Owner {
        display_name: Some(ns.to_string()),
        id: Some(ns.to_string()),
    }
}

fn owner_grant(ns: &Namespace) -> dto::Grant {
    dto::Grant {
        grantee: Some(dto::Grantee {
            display_name: Some(ns.to_string()),
            email_address: None,
            id: Some(ns.to_string()),
            type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(dto::Permission::from_static(dto::Permission::FULL_CONTROL)),
    }
}

/// The grant headers of an ACL write (`x-amz-grant-*`).
pub(super) struct GrantHeaders<'a> {
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
}

fn refused(operation: &str) -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "{operation}: only the canned ACL \"private\" is supported; access is granted by the \
         namespace policy"
    )
}

/// Whether a canned ACL name means the owner alone has access.
fn is_private(canned: &str) -> bool {
    // With one owner per namespace, the bucket owner is the object owner.
    matches!(canned, "private" | "bucket-owner-full-control")
}

/// Refuses a canned ACL other than `private` on a write that sets one (PutObject,
/// CreateMultipartUpload, CopyObject, CreateBucket).
pub(super) fn require_private_canned(operation: &str, canned: Option<&str>) -> S3Result<()> {
    match canned {
        Some(canned) if !is_private(canned) => Err(refused(operation)),
        _ => Ok(()),
    }
}

/// Refuses an ACL write that is not `private`, whichever way it is given.
fn require_private(
    operation: &str,
    ns: &Namespace,
    canned: Option<&str>,
    grants: &GrantHeaders<'_>,
    policy: Option<&dto::AccessControlPolicy>,
) -> S3Result<()> {
    require_private_canned(operation, canned)?;
    let any_grant_header = [
        grants.full_control,
        grants.read,
        grants.read_acp,
        grants.write,
        grants.write_acp,
    ]
    .iter()
    .any(Option::is_some);
    let own = ns.to_string();
    let owner_full_control = grants.full_control.is_some_and(|value| {
        value.trim() == format!("id=\"{own}\"") || value.trim() == format!("id={own}")
    });
    let only_owner_header = owner_full_control
        && [grants.read, grants.read_acp, grants.write, grants.write_acp]
            .iter()
            .all(Option::is_none);
    if any_grant_header && !only_owner_header {
        return Err(refused(operation));
    }
    if let Some(policy) = policy {
        let grants = policy.grants.as_deref().unwrap_or_default();
        let only_owner = grants.iter().all(|grant| {
            grant
                .grantee
                .as_ref()
                .is_some_and(|grantee| grantee.id.as_deref() == Some(own.as_str()))
                && grant.permission.as_ref().map(|p| p.as_str())
                    == Some(dto::Permission::FULL_CONTROL)
        });
        if !only_owner {
            return Err(refused(operation));
        }
    }
    Ok(())
}

pub(super) async fn get_object_acl(
    frontend: &S3Frontend,
    req: S3Request<dto::GetObjectAclInput>,
) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Read, &path).await?;
    require_null_version(req.input.version_id.as_deref())?;
    frontend
        .storage
        .head_object(
            &ns,
            &req.input.bucket,
            &req.input.key,
            &GetOptions::default(),
        )
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::GetObjectAclOutput {
        grants: Some(vec![owner_grant(&ns)]),
        owner: Some(owner(&ns)),
        ..Default::default()
    }))
}

pub(super) async fn put_object_acl(
    frontend: &S3Frontend,
    req: S3Request<dto::PutObjectAclInput>,
) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Write, &path).await?;
    let input = &req.input;
    require_null_version(input.version_id.as_deref())?;
    frontend
        .storage
        .head_object(&ns, &input.bucket, &input.key, &GetOptions::default())
        .await
        .map_err(storage_to_s3)?;
    let grants = GrantHeaders {
        full_control: input.grant_full_control.as_deref(),
        read: input.grant_read.as_deref(),
        read_acp: input.grant_read_acp.as_deref(),
        write: input.grant_write.as_deref(),
        write_acp: input.grant_write_acp.as_deref(),
    };
    require_private(
        "PutObjectAcl",
        &ns,
        input.acl.as_ref().map(|acl| acl.as_str()),
        &grants,
        input.access_control_policy.as_ref(),
    )?;
    Ok(S3Response::new(dto::PutObjectAclOutput::default()))
}

pub(super) async fn get_bucket_acl(
    frontend: &S3Frontend,
    req: S3Request<dto::GetBucketAclInput>,
) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Read, &bucket).await?;
    frontend
        .storage
        .head_bucket(&ns, &bucket)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::GetBucketAclOutput {
        grants: Some(vec![owner_grant(&ns)]),
        owner: Some(owner(&ns)),
    }))
}

pub(super) async fn put_bucket_acl(
    frontend: &S3Frontend,
    req: S3Request<dto::PutBucketAclInput>,
) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Write, &bucket).await?;
    frontend
        .storage
        .head_bucket(&ns, &bucket)
        .await
        .map_err(storage_to_s3)?;
    let input = &req.input;
    let grants = GrantHeaders {
        full_control: input.grant_full_control.as_deref(),
        read: input.grant_read.as_deref(),
        read_acp: input.grant_read_acp.as_deref(),
        write: input.grant_write.as_deref(),
        write_acp: input.grant_write_acp.as_deref(),
    };
    require_private(
        "PutBucketAcl",
        &ns,
        input.acl.as_ref().map(|acl| acl.as_str()),
        &grants,
        input.access_control_policy.as_ref(),
    )?;
    Ok(S3Response::new(dto::PutBucketAclOutput::default()))
}
