//! The storage API for browsers (docs/api.md): `GET /v1/storage/{ns}` (buckets),
//! `PUT/GET/HEAD/DELETE /v1/storage/{ns}/{bucket}/{*key}`,
//! `GET /v1/storage/{ns}/{bucket}?prefix=&delimiter=&after=&limit=`,
//! `POST /v1/storage/{ns}/{bucket}/_presign`, and `PUT/DELETE /v1/storage/{ns}/{bucket}` to
//! create and delete buckets. Bodies stream in both directions; S3 clients use the S3
//! endpoint instead.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::Engine as _;
use ferrobase_core::ErrorCode;
use ferrobase_core::event::Causation;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_core::wire::Page;
use ferrobase_core::wire::storage::{BucketCreated, BucketSummary, ObjectPage, Presigned};
use ferrobase_storage::model::MAX_LIST_KEYS;
use ferrobase_storage::{
    BodyChecks, ByteRange, Checksum, ChecksumAlgorithm, ChecksumCheck, ExpectedChecksum,
    GetOptions, ListQuery, ObjectHeaders, ObjectInfo, PutOptions, ReadConditions, StorageError,
    WriteConditions,
};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

use crate::auth::Authorizer;
use crate::auth::listing::{Listing, Resume, SourceBatch, VisiblePage};
use crate::auth::presign::{MAX_EXPIRY, PresignMethod};
use crate::error::ApiError;
use crate::routes::extract::{self, Path, Query};
use crate::state::AppState;

const PRESIGN_KEY: &str = "_presign";
const META_PREFIX: &str = "x-amz-meta-";
const DEFAULT_LIST_LIMIT: usize = 100;
const DEFAULT_PRESIGN_EXPIRY: Duration = Duration::from_secs(3600);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/storage/{ns}", get(list_buckets))
        .route(
            "/v1/storage/{ns}/{bucket}",
            put(create_bucket).delete(delete_bucket).get(list),
        )
        .route(
            "/v1/storage/{ns}/{bucket}/{*key}",
            get(get_object)
                .put(put_object)
                .delete(delete_object)
                .post(post_action),
        )
        // Object bodies stream to the backend; they are not held in memory, so the
        // framework's buffered-body limit does not apply.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

fn object(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

fn resource(path: &str) -> Resource<'_> {
    Resource::new(Service::Storage, path)
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn http_date_ms(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<u64>, ApiError> {
    let Some(text) = header_text(headers, &name) else {
        return Ok(None);
    };
    chrono::DateTime::parse_from_rfc2822(&text)
        .map(|time| Some(time.timestamp_millis().max(0) as u64))
        .map_err(|_| ApiError::invalid(format!("{name} is not an HTTP date")))
}

fn http_date(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn quoted(etag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The object's `x-amz-checksum-*` header, if it was stored with a checksum.
fn checksum_header_out(info: &ObjectInfo, headers: &mut HeaderMap) {
    let Some(checksum) = &info.checksum else {
        return;
    };
    if let (Ok(name), Ok(value)) = (
        header::HeaderName::from_bytes(checksum.algorithm.header_name().as_bytes()),
        HeaderValue::from_str(&checksum.value),
    ) {
        headers.insert(name, value);
    }
}

/// Headers describing an object (ETag, type, dates, user metadata).
fn object_headers(info: &ObjectInfo, headers: &mut HeaderMap) {
    headers.insert(header::ETAG, quoted(&info.etag));
    if let Ok(value) = HeaderValue::from_str(&info.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&http_date(info.last_modified_ms)) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    for (name, value) in info.headers.pairs() {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::HeaderName::from_static(name), value);
        }
    }
    for (name, value) in &info.metadata {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(format!("{META_PREFIX}{name}").as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Storage errors with an HTTP meaning of their own (304, 416); the rest via [`ApiError`].
fn storage_error(error: StorageError) -> Response {
    match error {
        StorageError::NotModified { etag, .. } => {
            (StatusCode::NOT_MODIFIED, [(header::ETAG, quoted(&etag))]).into_response()
        }
        StorageError::InvalidRange { size } => {
            let mut response = ApiError::invalid(format!(
                "the range is not satisfiable for an object of {size} bytes"
            ))
            .into_response();
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            response
        }
        other => ApiError::from(other).into_response(),
    }
}

async fn create_bucket(
    State(state): State<AppState>,
    Path((_, bucket)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Write, resource(&bucket))?;
    state.storage.create_bucket(&ns, &bucket).await?;
    Ok(Json(BucketCreated { bucket }).into_response())
}

#[derive(Debug, Deserialize)]
struct BucketListParams {
    after: Option<String>,
    limit: Option<usize>,
}

/// Most buckets in one page (a namespace has at most a few thousand).
const MAX_BUCKET_PAGE: usize = 1000;

/// The namespace's buckets by name, for callers who may read its storage as a whole (as
/// S3's ListBuckets); a bucket's name is no secret from them, so the cursor is the last name.
async fn list_buckets(
    State(state): State<AppState>,
    Query(params): Query<BucketListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Read, resource(""))?;
    let limit = crate::routes::page_limit(params.limit, DEFAULT_LIST_LIMIT, MAX_BUCKET_PAGE)?;
    let after = params.after.unwrap_or_default();
    let mut buckets: Vec<_> = state
        .storage
        .list_buckets(&ns)
        .await?
        .into_iter()
        .filter(|bucket| bucket.name > after)
        .collect();
    let next = (buckets.len() > limit).then(|| buckets[limit - 1].name.clone());
    buckets.truncate(limit);
    let items = buckets
        .into_iter()
        .map(|bucket| BucketSummary {
            name: bucket.name,
            created_at: ferrobase_core::event::rfc3339_millis(bucket.created_ms),
        })
        .collect();
    Ok(Json(Page { items, next }).into_response())
}

async fn delete_bucket(
    State(state): State<AppState>,
    Path((_, bucket)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Write, resource(&bucket))?;
    state.storage.delete_bucket(&ns, &bucket).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn put_object(
    State(state): State<AppState>,
    Path((_, bucket, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, Response> {
    let ns = authorizer.namespace().clone();
    authorizer
        .require(Action::Write, resource(&object(&bucket, &key)))
        .map_err(IntoResponse::into_response)?;
    let options = put_options(&headers).map_err(IntoResponse::into_response)?;
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    let info = state
        .storage
        .put_object(&ns, &bucket, &key, stream, options)
        .await
        .map_err(storage_error)?;
    Ok(([(header::ETAG, quoted(&info.etag))], Json(info)).into_response())
}

/// An `x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}` header, as S3 takes it: the body
/// must match it, and the checksum is kept with the object.
fn checksum_header(headers: &HeaderMap) -> Result<Option<ChecksumCheck>, ApiError> {
    let values = ChecksumAlgorithm::ALL
        .map(|algorithm| header_text(headers, algorithm.header_name().as_str()));
    let sent = Checksum::single_sent(values.each_ref().map(Option::as_deref))?;
    Ok(sent.map(|Checksum { algorithm, value }| ChecksumCheck {
        algorithm,
        expected: ExpectedChecksum::Value(value),
    }))
}

fn put_options(headers: &HeaderMap) -> Result<PutOptions, ApiError> {
    let content_md5 = header_text(headers, "content-md5")
        .map(|text| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
                .ok_or_else(|| ApiError::invalid("Content-MD5 must be the base64 of an MD5"))
        })
        .transpose()?;
    let metadata: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix(META_PREFIX)?;
            Some((name.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let content_length = header_text(headers, header::CONTENT_LENGTH)
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("Content-Length must be a byte count"))
        })
        .transpose()?;
    Ok(PutOptions {
        content_type: header_text(headers, header::CONTENT_TYPE),
        metadata,
        headers: ObjectHeaders {
            cache_control: header_text(headers, header::CACHE_CONTROL),
            content_disposition: header_text(headers, header::CONTENT_DISPOSITION),
            content_encoding: header_text(headers, header::CONTENT_ENCODING),
            content_language: header_text(headers, header::CONTENT_LANGUAGE),
            expires: header_text(headers, header::EXPIRES),
        },
        checks: BodyChecks {
            content_md5,
            content_length,
            checksum: checksum_header(headers)?,
        },
        conditions: WriteConditions {
            if_match: header_text(headers, header::IF_MATCH),
            if_none_match: header_text(headers, header::IF_NONE_MATCH),
        },
        causation: Causation::default(),
    })
}

async fn get_object(
    State(state): State<AppState>,
    Path((_, bucket, key)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    authorizer: Authorizer,
) -> Result<Response, Response> {
    let ns = authorizer.namespace().clone();
    authorizer
        .require(Action::Read, resource(&object(&bucket, &key)))
        .map_err(IntoResponse::into_response)?;
    let options = get_options(&headers).map_err(IntoResponse::into_response)?;
    let storage = &state.storage;
    if method == Method::HEAD {
        let info = storage
            .head_object(&ns, &bucket, &key, &options)
            .await
            .map_err(storage_error)?;
        let mut response = Response::new(Body::empty());
        object_headers(&info, response.headers_mut());
        checksum_header_out(&info, response.headers_mut());
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
        return Ok(response);
    }
    let object = storage
        .get_object(&ns, &bucket, &key, &options)
        .await
        .map_err(storage_error)?;
    let mut response = Response::new(Body::from_stream(object.body));
    object_headers(&object.info, response.headers_mut());
    let length = match &object.range {
        Some(span) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let range = format!("bytes {}-{}/{}", span.start, span.end - 1, object.info.size);
            if let Ok(value) = HeaderValue::from_str(&range) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            span.end - span.start
        }
        None => {
            // A checksum covers the whole body, so only a whole body carries it.
            checksum_header_out(&object.info, response.headers_mut());
            object.info.size
        }
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

fn get_options(headers: &HeaderMap) -> Result<GetOptions, ApiError> {
    let range = header_text(headers, header::RANGE)
        .map(|text| ByteRange::parse(&text))
        .transpose()?;
    Ok(GetOptions {
        range,
        conditions: ReadConditions {
            if_match: header_text(headers, header::IF_MATCH),
            if_none_match: header_text(headers, header::IF_NONE_MATCH),
            if_modified_since_ms: http_date_ms(headers, header::IF_MODIFIED_SINCE)?,
            if_unmodified_since_ms: http_date_ms(headers, header::IF_UNMODIFIED_SINCE)?,
        },
    })
}

async fn delete_object(
    State(state): State<AppState>,
    Path((_, bucket, key)): Path<(String, String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Write, resource(&object(&bucket, &key)))?;
    let existed = state
        .storage
        .delete_object(&ns, &bucket, &key, Causation::default())
        .await?;
    if existed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "object {key:?} not found in bucket {bucket:?}"
        )))
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(default)]
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    Path((_, bucket)): Path<(String, String)>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    let limit = crate::routes::page_limit(params.limit, DEFAULT_LIST_LIMIT, MAX_LIST_KEYS)?;
    let page = list_visible_objects(
        &state,
        &authorizer,
        &ns,
        &bucket,
        &params.prefix,
        params.delimiter.as_deref(),
        params
            .after
            .as_deref()
            .map_or(Resume::Beginning, Resume::Cursor),
        limit,
    )
    .await?;
    Ok(Json(ObjectPage {
        items: page.items,
        prefixes: page.prefixes,
        next: page.next,
    })
    .into_response())
}

/// The objects and common prefixes of `bucket` the caller may read, through the shared
/// listing rules (`auth::listing`); the S3 endpoint lists through this too.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn list_visible_objects(
    state: &AppState,
    authorizer: &Authorizer,
    ns: &ferrobase_core::Namespace,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Resume<'_>,
    limit: usize,
) -> Result<VisiblePage<ObjectInfo>, ApiError> {
    let storage = &state.storage;
    let listing = Listing::new(
        authorizer,
        &state.cursors,
        Service::Storage,
        &format!("objects/{bucket}"),
        prefix,
        delimiter,
        limit,
    )?;
    let start = listing.resume(after)?;
    // The listing rolls up common prefixes itself, from readable keys only, so the source
    // is asked for plain keys.
    let fetch = |after: Option<String>, max: usize| {
        let query = ListQuery {
            prefix: prefix.to_owned(),
            delimiter: None,
            after,
            max_keys: max.min(MAX_LIST_KEYS),
        };
        async move {
            let page = storage.list_objects(ns, bucket, &query).await?;
            Ok(SourceBatch {
                exhausted: page.next.is_none(),
                entries: page
                    .objects
                    .into_iter()
                    .map(|info| (info.key.clone(), info))
                    .collect(),
            })
        }
    };
    listing
        .run(start, fetch, |key, _| {
            authorizer.allows(Action::Read, resource(&object(bucket, key)))
        })
        .await
}

/// The JSON body of `POST .../_presign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresignRequest {
    /// `GET` (download) or `PUT` (upload).
    method: String,
    key: String,
    /// Lifetime in seconds; default 3600, at most 7 days.
    expires: Option<u64>,
}

async fn post_action(
    State(state): State<AppState>,
    Path((_, bucket, action)): Path<(String, String, String)>,
    authorizer: Authorizer,
    extract::Json(request): extract::Json<PresignRequest>,
) -> Result<Response, ApiError> {
    if action != PRESIGN_KEY {
        return Err(ApiError::invalid(
            "POST is only for /v1/storage/{ns}/{bucket}/_presign; use PUT to upload",
        ));
    }
    let ns = authorizer.namespace().clone();
    let (method, needed) = match request.method.to_ascii_uppercase().as_str() {
        "GET" => (PresignMethod::Get, Action::Read),
        "PUT" => (PresignMethod::Put, Action::Write),
        _ => return Err(ApiError::invalid("method must be \"GET\" or \"PUT\"")),
    };
    authorizer.require(needed, resource(&object(&bucket, &request.key)))?;
    ferrobase_storage::model::validate_bucket(&bucket)?;
    ferrobase_storage::model::validate_key(&request.key)?;
    let expires = request
        .expires
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_PRESIGN_EXPIRY);
    if expires.is_zero() || expires > MAX_EXPIRY {
        return Err(ApiError::invalid(format!(
            "expires must be between 1 and {} seconds",
            MAX_EXPIRY.as_secs()
        )));
    }
    let presigner = state
        .presigner
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "the S3 endpoint is not running"))?;
    let now = SystemTime::now();
    let url = presigner
        .presign(&ns, method, &bucket, &request.key, expires, now)
        .map_err(ApiError::internal)?;
    let expires_at = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(ApiError::internal)?
        + expires;
    Ok(Json(Presigned {
        url,
        method: request.method.to_ascii_uppercase(),
        expires_at: ferrobase_core::event::rfc3339_millis(expires_at.as_millis() as u64),
    })
    .into_response())
}
