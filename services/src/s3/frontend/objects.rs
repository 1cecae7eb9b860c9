//! Object operations: put, get, head, delete (one or many) and copy.

use ferrobase_core::event::Causation;
use ferrobase_core::policy::Action;
use ferrobase_storage::{BodyChecks, ChecksumAlgorithm, GetOptions, PutOptions, check_body};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::acl::require_private_canned;
use super::convert::{
    blob, body_checks, body_stream, checksum_check, checksum_type, checksum_wanted, etag,
    is_null_version, metadata, object_headers, out_metadata, range, read_conditions,
    requested_checksum, requested_headers, require_null_version, set_checksum_fields,
    set_object_headers, timestamp, write_conditions,
};
use super::{S3Frontend, WholeBody, storage_to_s3};

pub(super) async fn put_object(
    frontend: &S3Frontend,
    req: S3Request<dto::PutObjectInput>,
) -> S3Result<S3Response<dto::PutObjectOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Write, &path).await?;
    let input = req.input;
    require_private_canned("PutObject", input.acl.as_ref().map(|acl| acl.as_str()))?;
    let checksum = requested_checksum!(req, input)?;
    let options = PutOptions {
        content_type: input.content_type,
        metadata: metadata(input.metadata),
        headers: requested_headers!(input),
        checks: body_checks(input.content_md5.as_deref(), input.content_length, checksum)?,
        conditions: write_conditions(input.if_match.as_ref(), input.if_none_match.as_ref()),
        causation: Causation::default(),
    };
    let info = frontend
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
    let mut output = dto::PutObjectOutput {
        e_tag: Some(etag(&info.etag)),
        checksum_type: checksum_type(info.checksum.as_ref()),
        ..Default::default()
    };
    set_checksum_fields!(output, info.checksum.as_ref());
    Ok(S3Response::new(output))
}

pub(super) async fn get_object(
    frontend: &S3Frontend,
    req: S3Request<dto::GetObjectInput>,
) -> S3Result<S3Response<dto::GetObjectOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Read, &path).await?;
    let input = req.input;
    require_null_version(input.version_id.as_deref())?;
    let options = GetOptions {
        range: range(input.range),
        conditions: read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        ),
    };
    let object = frontend
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
    // A checksum covers the whole body, so a range is sent without it (as S3 does).
    let checksum = info
        .checksum
        .as_ref()
        .filter(|_| checksum_wanted(input.checksum_mode.as_ref()) && object.range.is_none());
    let mut output = dto::GetObjectOutput {
        checksum_type: checksum_type(checksum),
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
    };
    set_checksum_fields!(output, checksum);
    set_object_headers!(output, &info.headers, input);
    Ok(S3Response::new(output))
}

pub(super) async fn head_object(
    frontend: &S3Frontend,
    req: S3Request<dto::HeadObjectInput>,
) -> S3Result<S3Response<dto::HeadObjectOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Read, &path).await?;
    let input = req.input;
    require_null_version(input.version_id.as_deref())?;
    let options = GetOptions {
        range: None,
        conditions: read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        ),
    };
    let info = frontend
        .storage
        .head_object(&ns, &input.bucket, &input.key, &options)
        .await
        .map_err(storage_to_s3)?;
    let checksum = info
        .checksum
        .as_ref()
        .filter(|_| checksum_wanted(input.checksum_mode.as_ref()));
    let mut output = dto::HeadObjectOutput {
        checksum_type: checksum_type(checksum),
        accept_ranges: Some("bytes".to_owned()),
        content_length: Some(info.size as i64),
        content_type: Some(info.content_type.clone()),
        e_tag: Some(etag(&info.etag)),
        last_modified: Some(timestamp(info.last_modified_ms)),
        metadata: out_metadata(&info.metadata),
        parts_count: info.parts.map(|n| n as i32),
        ..Default::default()
    };
    set_checksum_fields!(output, checksum);
    set_object_headers!(output, &info.headers, input);
    Ok(S3Response::new(output))
}

pub(super) async fn delete_object(
    frontend: &S3Frontend,
    req: S3Request<dto::DeleteObjectInput>,
) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Write, &path).await?;
    // Any other version does not exist, and deleting what does not exist succeeds (as in S3).
    if is_null_version(req.input.version_id.as_deref()) {
        frontend
            .storage
            .delete_object(&ns, &req.input.bucket, &req.input.key, Causation::default())
            .await
            .map_err(storage_to_s3)?;
    }
    Ok(S3Response::new(dto::DeleteObjectOutput::default()))
}

pub(super) async fn delete_objects(
    frontend: &S3Frontend,
    req: S3Request<dto::DeleteObjectsInput>,
) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
    let bucket = req.input.bucket.clone();
    let ns = frontend.authorize(&req, Action::Write, &bucket).await?;
    check_delete_body(&req)?;
    if req.input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "a DeleteObjects request names at most {MAX_DELETE_KEYS} keys"
        ));
    }
    let quiet = req.input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in &req.input.delete.objects {
        let path = format!("{bucket}/{}", object.key);
        let outcome = match frontend.authorize(&req, Action::Write, &path).await {
            Ok(_) if !is_null_version(object.version_id.as_deref()) => Ok(false),
            Ok(_) => frontend
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
                        version_id: object.version_id.clone(),
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

/// The bucket and key of a copy source (version `null` only; no access points).
pub(super) fn copy_source(source: &dto::CopySource) -> S3Result<(String, String)> {
    match source {
        dto::CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            require_null_version(version_id.as_deref())?;
            Ok((bucket.to_string(), key.to_string()))
        }
        dto::CopySource::AccessPoint { .. } | dto::CopySource::Outpost { .. } => {
            Err(s3_error!(NotImplemented, "access points are not supported"))
        }
    }
}

/// Most keys one DeleteObjects request may name, as in S3.
const MAX_DELETE_KEYS: usize = 1000;

/// Checks the body of a DeleteObjects request against its `Content-MD5` and
/// `x-amz-checksum-*` headers, before anything is deleted.
fn check_delete_body(req: &S3Request<dto::DeleteObjectsInput>) -> S3Result<()> {
    let header = |name: &str| {
        req.headers
            .get(name)
            .map(|value| value.to_str().unwrap_or_default())
    };
    let names = ChecksumAlgorithm::ALL.map(ChecksumAlgorithm::header_name);
    let values = [0, 1, 2, 3, 4].map(|i| header(&names[i]));
    let checksum = checksum_check(
        values,
        req.input.checksum_algorithm.as_ref(),
        &req.headers,
        req.trailing_headers.as_ref(),
    )?;
    let checks = body_checks(header("content-md5"), None, checksum)?;
    match req.extensions.get::<WholeBody>().and_then(WholeBody::bytes) {
        Some(body) => check_body(&body, &checks).map_err(storage_to_s3),
        None if checks == BodyChecks::default() => Ok(()),
        // Only an `aws-chunked` body is not kept, and S3 clients do not send DeleteObjects so.
        None => Err(s3_error!(
            NotImplemented,
            "digests of an aws-chunked DeleteObjects body are not checked; send the body whole"
        )),
    }
}

pub(super) async fn copy_object(
    frontend: &S3Frontend,
    req: S3Request<dto::CopyObjectInput>,
) -> S3Result<S3Response<dto::CopyObjectOutput>> {
    let (source_bucket, source_key) = copy_source(&req.input.copy_source)?;
    let ns = frontend
        .authorize(&req, Action::Read, &format!("{source_bucket}/{source_key}"))
        .await?;
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    frontend.authorize(&req, Action::Write, &path).await?;
    let input = req.input;
    require_private_canned("CopyObject", input.acl.as_ref().map(|acl| acl.as_str()))?;
    let replace = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
        None | Some(dto::MetadataDirective::COPY) => false,
        Some(dto::MetadataDirective::REPLACE) => true,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "Unknown metadata directive: x-amz-metadata-directive must be COPY or REPLACE"
            ));
        }
    };
    // As in S3: with nothing else to change here, a copy onto itself must replace the
    // metadata, or it would be a costly no-op.
    if !replace && source_bucket == input.bucket && source_key == input.key {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location \
             or encryption attributes."
        ));
    }
    let replace = replace.then(|| PutOptions {
        content_type: input.content_type.clone(),
        metadata: metadata(input.metadata.clone()),
        headers: object_headers(
            input.cache_control.clone(),
            input.content_disposition.clone(),
            input.content_encoding.clone(),
            input.content_language.clone(),
            input.expires.as_ref(),
        ),
        ..PutOptions::default()
    });
    let conditions = read_conditions(
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    );
    let info = frontend
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

/// GetObjectAttributes: the attributes asked for, of what HeadObject knows. Parts are
/// counted, not listed: the parts of a completed upload are not kept apart.
pub(super) async fn get_object_attributes(
    frontend: &S3Frontend,
    req: S3Request<dto::GetObjectAttributesInput>,
) -> S3Result<S3Response<dto::GetObjectAttributesOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Read, &path).await?;
    let input = req.input;
    require_null_version(input.version_id.as_deref())?;
    let info = frontend
        .storage
        .head_object(&ns, &input.bucket, &input.key, &GetOptions::default())
        .await
        .map_err(storage_to_s3)?;
    // s3s keeps the header's comma-separated list as one entry.
    let wanted = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .any(|a| a.trim() == name)
    };
    let mut output = dto::GetObjectAttributesOutput {
        last_modified: Some(timestamp(info.last_modified_ms)),
        ..Default::default()
    };
    if wanted(dto::ObjectAttributes::ETAG) {
        output.e_tag = Some(etag(&info.etag));
    }
    if wanted(dto::ObjectAttributes::OBJECT_SIZE) {
        output.object_size = Some(info.size as i64);
    }
    if wanted(dto::ObjectAttributes::STORAGE_CLASS) {
        output.storage_class = Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD));
    }
    if wanted(dto::ObjectAttributes::CHECKSUM) && info.checksum.is_some() {
        let mut checksum = dto::Checksum {
            checksum_type: checksum_type(info.checksum.as_ref()),
            ..Default::default()
        };
        set_checksum_fields!(checksum, info.checksum.as_ref());
        output.checksum = Some(checksum);
    }
    if wanted(dto::ObjectAttributes::OBJECT_PARTS)
        && let Some(parts) = info.parts
    {
        output.object_parts = Some(dto::GetObjectAttributesParts {
            total_parts_count: Some(parts as i32),
            ..Default::default()
        });
    }
    Ok(S3Response::new(output))
}
