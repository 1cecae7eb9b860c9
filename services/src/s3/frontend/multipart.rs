//! Multipart uploads: create, upload a part (or copy one), complete, abort and list the parts.

use ferrobase_core::event::Causation;
use ferrobase_core::policy::Action;
use ferrobase_storage::{
    BodyChecks, ByteRange, ChecksumCheck, CompletedPart, ExpectedChecksum, PartSource, PutOptions,
};
use s3s::dto::{self, ETag};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::acl::require_private_canned;
use super::convert::{
    body_checks, body_stream, checksum_algorithm, checksum_type, etag, metadata, part_checksum,
    read_conditions, requested_checksum, requested_headers, set_checksum_fields, timestamp,
    write_conditions,
};
use super::objects::copy_source;
use super::{S3Frontend, storage_to_s3};

pub(super) async fn create_multipart_upload(
    frontend: &S3Frontend,
    req: S3Request<dto::CreateMultipartUploadInput>,
) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Write, &path).await?;
    let input = req.input;
    require_private_canned(
        "CreateMultipartUpload",
        input.acl.as_ref().map(|acl| acl.as_str()),
    )?;
    let algorithm = input
        .checksum_algorithm
        .as_ref()
        .map(checksum_algorithm)
        .transpose()?;
    let options = PutOptions {
        content_type: input.content_type,
        metadata: metadata(input.metadata),
        headers: requested_headers!(input),
        checks: BodyChecks {
            checksum: algorithm.map(|algorithm| ChecksumCheck {
                algorithm,
                expected: ExpectedChecksum::Unknown,
            }),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    };
    let upload_id = frontend
        .storage
        .create_multipart(&ns, &input.bucket, &input.key, options)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        checksum_algorithm: input.checksum_algorithm,
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    frontend: &S3Frontend,
    req: S3Request<dto::UploadPartInput>,
) -> S3Result<S3Response<dto::UploadPartOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Write, &path).await?;
    let input = req.input;
    let number = u32::try_from(input.part_number)
        .map_err(|_| s3_error!(InvalidArgument, "invalid part number"))?;
    let checksum = requested_checksum!(req, input)?;
    let part = frontend
        .storage
        .upload_part(
            &ns,
            &input.bucket,
            &input.key,
            &input.upload_id,
            number,
            body_stream(input.body),
            body_checks(input.content_md5.as_deref(), input.content_length, checksum)?,
        )
        .await
        .map_err(storage_to_s3)?;
    let mut output = dto::UploadPartOutput {
        e_tag: Some(etag(&part.etag)),
        ..Default::default()
    };
    set_checksum_fields!(output, part.checksum.as_ref());
    Ok(S3Response::new(output))
}

pub(super) async fn complete_multipart_upload(
    frontend: &S3Frontend,
    req: S3Request<dto::CompleteMultipartUploadInput>,
) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Write, &path).await?;
    let input = req.input;
    let parts = input
        .multipart_upload
        .and_then(|upload| upload.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|part| {
            let checksum = part_checksum(&part)?;
            Ok(CompletedPart {
                part_number: part
                    .part_number
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no part number"))?,
                etag: part
                    .e_tag
                    .map(ETag::into_value)
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?,
                checksum,
            })
        })
        .collect::<S3Result<Vec<_>>>()?;
    let conditions = write_conditions(input.if_match.as_ref(), input.if_none_match.as_ref());
    let info = frontend
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
    let mut output = dto::CompleteMultipartUploadOutput {
        checksum_type: checksum_type(info.checksum.as_ref()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(etag(&info.etag)),
        ..Default::default()
    };
    set_checksum_fields!(output, info.checksum.as_ref());
    Ok(S3Response::new(output))
}

pub(super) async fn abort_multipart_upload(
    frontend: &S3Frontend,
    req: S3Request<dto::AbortMultipartUploadInput>,
) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Write, &path).await?;
    frontend
        .storage
        .abort_multipart(&ns, &req.input.bucket, &req.input.key, &req.input.upload_id)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(
    frontend: &S3Frontend,
    req: S3Request<dto::ListPartsInput>,
) -> S3Result<S3Response<dto::ListPartsOutput>> {
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    let ns = frontend.authorize(&req, Action::Read, &path).await?;
    let input = req.input;
    let max = input
        .max_parts
        .map(|n| usize::try_from(n).unwrap_or(0).clamp(1, 1000))
        .unwrap_or(1000);
    let after = input
        .part_number_marker
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0);
    let (parts, truncated) = frontend
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

/// UploadPartCopy: a part made of another object's bytes, or of the span
/// `x-amz-copy-source-range: bytes=first-last` of them.
pub(super) async fn upload_part_copy(
    frontend: &S3Frontend,
    req: S3Request<dto::UploadPartCopyInput>,
) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
    let (source_bucket, source_key) = copy_source(&req.input.copy_source)?;
    let ns = frontend
        .authorize(&req, Action::Read, &format!("{source_bucket}/{source_key}"))
        .await?;
    let path = format!("{}/{}", req.input.bucket, req.input.key);
    frontend.authorize(&req, Action::Write, &path).await?;
    let input = req.input;
    let number = u32::try_from(input.part_number)
        .map_err(|_| s3_error!(InvalidArgument, "invalid part number"))?;
    let range = input
        .copy_source_range
        .as_deref()
        .map(|text| match ByteRange::parse(text) {
            Ok(ByteRange::Bounded { start, end }) => Ok((start, end)),
            _ => Err(s3_error!(
                InvalidArgument,
                "x-amz-copy-source-range must be bytes=first-last"
            )),
        })
        .transpose()?;
    let source = PartSource {
        bucket: source_bucket,
        key: source_key,
        conditions: read_conditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        ),
        range,
    };
    let part = frontend
        .storage
        .upload_part_copy(
            &ns,
            &source,
            &input.bucket,
            &input.key,
            &input.upload_id,
            number,
        )
        .await
        .map_err(storage_to_s3)?;
    let mut result = dto::CopyPartResult {
        e_tag: Some(etag(&part.etag)),
        last_modified: Some(timestamp(part.last_modified_ms)),
        ..Default::default()
    };
    set_checksum_fields!(result, part.checksum.as_ref());
    Ok(S3Response::new(dto::UploadPartCopyOutput {
        copy_part_result: Some(result),
        ..Default::default()
    }))
}
