//! Listings: the objects of a bucket and its multipart uploads in progress, showing only
//! what the caller may read, by the rules of `auth::listing` that the HTTP API follows too.

use base64::Engine as _;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_storage::model::MAX_LIST_KEYS;
use ferrobase_storage::{ObjectInfo, UploadMarker, UploadQuery};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::convert::{NULL_VERSION, etag, timestamp};
use super::{S3Frontend, api_to_s3, storage_to_s3};
use crate::auth::Authorizer;
use crate::auth::listing::{Resume, VisiblePage, is_sealed};
use crate::routes::storage::list_visible_objects;

/// One page of objects the caller may read, for every listing of objects.
struct ObjectsPage {
    objects: Vec<ObjectInfo>,
    common_prefixes: Vec<dto::CommonPrefix>,
    /// Where a truncated page continues: the last key or common prefix shown, or a sealed
    /// cursor (`auth::listing`).
    next: Option<String>,
}

impl ObjectsPage {
    fn key_count(&self) -> usize {
        self.objects.len() + self.common_prefixes.len()
    }

    /// The common prefixes, encoded as asked.
    fn prefixes(&self, encode: Encoding) -> Vec<dto::CommonPrefix> {
        self.common_prefixes
            .iter()
            .map(|prefix| dto::CommonPrefix {
                prefix: prefix.prefix.as_deref().map(|p| encode.apply(p)),
            })
            .collect()
    }

    /// Whether the page ends with an object rather than a common prefix.
    fn ends_with_object(&self) -> bool {
        let object = self.objects.last().map(|o| o.key.as_str());
        let prefix = self
            .common_prefixes
            .last()
            .and_then(|p| p.prefix.as_deref());
        object.is_some() && object > prefix
    }

    /// The objects as ListObjects (both versions) writes them, with their owner when asked.
    fn contents(&self, encode: Encoding, owner: Option<&dto::Owner>) -> Vec<dto::Object> {
        self.objects
            .iter()
            .map(|object| dto::Object {
                e_tag: Some(etag(&object.etag)),
                key: Some(encode.apply(&object.key)),
                owner: owner.cloned(),
                last_modified: Some(timestamp(object.last_modified_ms)),
                size: Some(object.size as i64),
                storage_class: Some(dto::ObjectStorageClass::from_static(
                    dto::ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect()
    }
}

/// Lists up to `max` keys and common prefixes the caller may read, from `resume` (none when
/// `max` is 0, which S3 allows), through the listing rules the HTTP API follows.
#[allow(clippy::too_many_arguments)]
async fn objects_page(
    frontend: &S3Frontend,
    authorizer: &Authorizer,
    bucket: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    resume: Resume<'_>,
    max: usize,
) -> S3Result<ObjectsPage> {
    let ns = authorizer.namespace();
    // Answered first so a missing bucket is NoSuchBucket whatever the caller may read.
    frontend
        .storage
        .head_bucket(ns, bucket)
        .await
        .map_err(storage_to_s3)?;
    let page = if max == 0 {
        authorizer
            .require_scope(Service::Storage, Action::Read)
            .map_err(api_to_s3)?;
        VisiblePage {
            items: Vec::new(),
            prefixes: Vec::new(),
            next: None,
        }
    } else {
        list_visible_objects(
            &frontend.state,
            authorizer,
            ns,
            bucket,
            prefix.unwrap_or_default(),
            delimiter,
            resume,
            max,
        )
        .await
        .map_err(api_to_s3)?
    };
    let common_prefixes = page
        .prefixes
        .into_iter()
        .map(|prefix| dto::CommonPrefix {
            prefix: Some(prefix),
        })
        .collect();
    Ok(ObjectsPage {
        objects: page.items,
        common_prefixes,
        next: page.next,
    })
}

/// ListObjectsV2. Continuation tokens are sealed cursors as the listing hands them out, or
/// the base64 of a plain one (the last key or prefix, for callers who read everything).
pub(super) async fn list_objects_v2(
    frontend: &S3Frontend,
    req: S3Request<dto::ListObjectsV2Input>,
) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
    let authorizer = frontend.authorizer(&req).await?;
    let input = req.input;
    let encode = Encoding::of(input.encoding_type.as_ref())?;
    let token = input
        .continuation_token
        .as_deref()
        .map(decode_token)
        .transpose()?;
    let resume = match (&token, &input.start_after) {
        (Some(Token::Sealed(cursor)), _) => Resume::Cursor(cursor),
        (Some(Token::Key(key)), _) => Resume::Key(key),
        (None, Some(start)) => Resume::Key(start),
        (None, None) => Resume::Beginning,
    };
    let max = max_keys(input.max_keys);
    let page = objects_page(
        frontend,
        &authorizer,
        &input.bucket,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        resume,
        max,
    )
    .await?;
    let owner = input
        .fetch_owner
        .unwrap_or(false)
        .then(|| owner(&authorizer));
    Ok(S3Response::new(dto::ListObjectsV2Output {
        key_count: Some(page.key_count() as i32),
        is_truncated: Some(page.next.is_some()),
        next_continuation_token: page.next.as_deref().map(encode_token),
        contents: Some(page.contents(encode, owner.as_ref())),
        common_prefixes: Some(page.prefixes(encode)),
        name: Some(input.bucket),
        prefix: encode.option(input.prefix),
        delimiter: encode.option(input.delimiter.filter(|d| !d.is_empty())),
        max_keys: Some(max as i32),
        continuation_token: input.continuation_token,
        start_after: encode.option(input.start_after),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// ListObjects, the first version, which some clients still use: pages continue after
/// `marker` (a key or common prefix). As in S3, `NextMarker` is given only with a delimiter,
/// and clients otherwise continue from the last key of the page, except to callers who may
/// not read every key: a page of theirs may end on keys they do not see (or show none), so
/// they always get a `NextMarker`, sealed.
pub(super) async fn list_objects(
    frontend: &S3Frontend,
    req: S3Request<dto::ListObjectsInput>,
) -> S3Result<S3Response<dto::ListObjectsOutput>> {
    let authorizer = frontend.authorizer(&req).await?;
    let input = req.input;
    let encode = Encoding::of(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys);
    let resume = input
        .marker
        .as_deref()
        .map_or(Resume::Beginning, Resume::CursorOrKey);
    let delimited = input.delimiter.as_deref().is_some_and(|d| !d.is_empty());
    let page = objects_page(
        frontend,
        &authorizer,
        &input.bucket,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        resume,
        max,
    )
    .await?;
    let marked = delimited || page.next.as_deref().is_some_and(is_sealed);
    // The first version always names the owner, as S3's does.
    let contents = page.contents(encode, Some(&owner(&authorizer)));
    let common_prefixes = page.prefixes(encode);
    Ok(S3Response::new(dto::ListObjectsOutput {
        is_truncated: Some(page.next.is_some()),
        next_marker: page.next.filter(|_| marked).map(|next| encode.apply(&next)),
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        name: Some(input.bucket),
        prefix: encode.option(input.prefix),
        // S3 always answers the marker it was given, empty for the first page.
        marker: Some(encode.apply(&input.marker.unwrap_or_default())),
        delimiter: encode.option(input.delimiter.filter(|d| !d.is_empty())),
        max_keys: Some(max as i32),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// ListObjectVersions of an unversioned bucket: every object once, as version `null` and
/// the latest, and never a delete marker, so version-aware tools work. Pages resume after
/// `key-marker` (a key, common prefix or sealed cursor, as ListObjects' `marker`); the only
/// version there is to resume after is `null`, so `version-id-marker` must be that or empty.
pub(super) async fn list_object_versions(
    frontend: &S3Frontend,
    req: S3Request<dto::ListObjectVersionsInput>,
) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
    let authorizer = frontend.authorizer(&req).await?;
    let input = req.input;
    let encode = Encoding::of(input.encoding_type.as_ref())?;
    let owner = owner(&authorizer);
    let key_marker = input.key_marker.as_deref().filter(|key| !key.is_empty());
    match (key_marker, input.version_id_marker.as_deref()) {
        (_, None | Some("")) | (Some(_), Some(NULL_VERSION)) => {}
        (None, Some(_)) => {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        (Some(_), Some(_)) => {
            return Err(s3_error!(InvalidArgument, "Invalid version id specified"));
        }
    }
    let max = max_keys(input.max_keys);
    let resume = key_marker.map_or(Resume::Beginning, Resume::CursorOrKey);
    let page = objects_page(
        frontend,
        &authorizer,
        &input.bucket,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        resume,
        max,
    )
    .await?;
    let next_version_id_marker =
        (page.next.is_some() && page.ends_with_object()).then(|| NULL_VERSION.to_owned());
    let versions = page
        .objects
        .iter()
        .map(|object| dto::ObjectVersion {
            e_tag: Some(etag(&object.etag)),
            is_latest: Some(true),
            key: Some(encode.apply(&object.key)),
            owner: Some(owner.clone()),
            last_modified: Some(timestamp(object.last_modified_ms)),
            size: Some(object.size as i64),
            storage_class: Some(dto::ObjectVersionStorageClass::from_static(
                dto::ObjectVersionStorageClass::STANDARD,
            )),
            version_id: Some(NULL_VERSION.to_owned()),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(dto::ListObjectVersionsOutput {
        is_truncated: Some(page.next.is_some()),
        next_key_marker: page.next.as_deref().map(|next| encode.apply(next)),
        next_version_id_marker,
        versions: Some(versions),
        common_prefixes: Some(page.prefixes(encode)),
        name: Some(input.bucket),
        prefix: encode.option(input.prefix),
        delimiter: encode.option(input.delimiter.filter(|d| !d.is_empty())),
        encoding_type: input.encoding_type,
        key_marker: Some(encode.apply(&input.key_marker.unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(max as i32),
        ..Default::default()
    }))
}

/// ListMultipartUploads, in pages: by key, then upload id (which grows with initiation time,
/// as S3 orders them), resuming after `key-marker` and `upload-id-marker`. Only uploads of
/// keys the caller may read are listed or rolled up, so the markers, which are the last
/// upload or prefix shown, name nothing else.
pub(super) async fn list_multipart_uploads(
    frontend: &S3Frontend,
    req: S3Request<dto::ListMultipartUploadsInput>,
) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
    let authorizer = frontend.authorizer(&req).await?;
    authorizer
        .require_scope(Service::Storage, Action::Read)
        .map_err(api_to_s3)?;
    let reads_all = authorizer.reads_all(Service::Storage);
    let ns = authorizer.namespace();
    let bucket = req.input.bucket.clone();
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
        .list_uploads_page(ns, &bucket, &query, |key| {
            reads_all
                || authorizer.allows(
                    Action::Read,
                    Resource::new(Service::Storage, &format!("{bucket}/{key}")),
                )
        })
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
        delimiter: input.delimiter.filter(|d| !d.is_empty()),
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

/// How names are written in a listing: as they are, or with `encoding-type=url` URL-encoded
/// (form encoding, as S3's: a space is `+`), which keeps keys XML cannot carry intact and
/// tells a `+` from a space for clients that decode what they asked to be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    Url,
}

impl Encoding {
    fn of(encoding_type: Option<&dto::EncodingType>) -> S3Result<Encoding> {
        match encoding_type.map(|e| e.as_str()) {
            None => Ok(Encoding::Raw),
            Some(dto::EncodingType::URL) => Ok(Encoding::Url),
            Some(_) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request"
            )),
        }
    }

    fn apply(self, name: &str) -> String {
        match self {
            Encoding::Raw => name.to_owned(),
            Encoding::Url => form_urlencoded::byte_serialize(name.as_bytes()).collect(),
        }
    }

    fn option(self, name: Option<String>) -> Option<String> {
        name.map(|name| self.apply(&name))
    }
}

/// The owner of every object: the namespace.
fn owner(authorizer: &Authorizer) -> dto::Owner {
    let ns = authorizer.namespace().to_string();
    dto::Owner {
        display_name: Some(ns.clone()),
        id: Some(ns),
    }
}

/// A decoded continuation token.
enum Token {
    Sealed(String),
    Key(String),
}

fn encode_token(next: &str) -> String {
    if is_sealed(next) {
        next.to_owned()
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next)
    }
}

fn decode_token(token: &str) -> S3Result<Token> {
    if is_sealed(token) {
        return Ok(Token::Sealed(token.to_owned()));
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Token::Key)
        .ok_or_else(|| s3_error!(InvalidArgument, "invalid continuation token"))
}

fn max_keys(value: Option<i32>) -> usize {
    value
        .map(|n| usize::try_from(n).unwrap_or(0).min(MAX_LIST_KEYS))
        .unwrap_or(MAX_LIST_KEYS)
}
