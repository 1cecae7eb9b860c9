//! Browser access: the bucket CORS operations (Put/Get/DeleteBucketCors), and the answers a
//! browser gets from a bucket's rules — a preflight (`OPTIONS`, which carries no signature)
//! and the `Access-Control-*` headers of the actual response.
//!
//! Bucket names are per namespace, so a request names its bucket's namespace by the access
//! key it is signed with. A preflight of a presigned URL carries that key in the URL
//! (`X-Amz-Credential` or `AWSAccessKeyId`), which is what a browser uploading to a presigned
//! URL sends; a preflight of a header-signed request carries no key and is refused.

use ferrobase_core::Namespace;
use ferrobase_core::policy::Action;
use ferrobase_storage::{CorsRule, Storage, matching_rule};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use s3s::dto;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{S3Frontend, storage_to_s3};
use crate::auth::access_keys::AccessKeys;

pub(super) async fn put_bucket_cors(
    frontend: &S3Frontend,
    req: S3Request<dto::PutBucketCorsInput>,
) -> S3Result<S3Response<dto::PutBucketCorsOutput>> {
    let ns = frontend
        .authorize(&req, Action::Write, &req.input.bucket)
        .await?;
    let rules = req
        .input
        .cors_configuration
        .cors_rules
        .into_iter()
        .map(|rule| CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: rule.allowed_headers.unwrap_or_default(),
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds.and_then(|age| u32::try_from(age).ok()),
        })
        .collect();
    frontend
        .storage
        .put_bucket_cors(&ns, &req.input.bucket, Some(rules))
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::PutBucketCorsOutput::default()))
}

pub(super) async fn get_bucket_cors(
    frontend: &S3Frontend,
    req: S3Request<dto::GetBucketCorsInput>,
) -> S3Result<S3Response<dto::GetBucketCorsOutput>> {
    let ns = frontend
        .authorize(&req, Action::Read, &req.input.bucket)
        .await?;
    let rules = frontend
        .storage
        .bucket_cors(&ns, &req.input.bucket)
        .await
        .map_err(storage_to_s3)?
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::NoSuchCORSConfiguration,
                "The CORS configuration does not exist",
            )
        })?;
    let rules = rules
        .into_iter()
        .map(|rule| dto::CORSRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: Some(rule.allowed_headers).filter(|list| !list.is_empty()),
            expose_headers: Some(rule.expose_headers).filter(|list| !list.is_empty()),
            max_age_seconds: rule.max_age_seconds.and_then(|age| i32::try_from(age).ok()),
        })
        .collect();
    Ok(S3Response::new(dto::GetBucketCorsOutput {
        cors_rules: Some(rules),
    }))
}

pub(super) async fn delete_bucket_cors(
    frontend: &S3Frontend,
    req: S3Request<dto::DeleteBucketCorsInput>,
) -> S3Result<S3Response<dto::DeleteBucketCorsOutput>> {
    let ns = frontend
        .authorize(&req, Action::Write, &req.input.bucket)
        .await?;
    frontend
        .storage
        .put_bucket_cors(&ns, &req.input.bucket, None)
        .await
        .map_err(storage_to_s3)?;
    Ok(S3Response::new(dto::DeleteBucketCorsOutput::default()))
}

/// What a browser's request says about itself, read before the request goes to `s3s`.
#[derive(Debug)]
pub struct BrowserRequest {
    origin: String,
    ns: Namespace,
    bucket: String,
}

/// The bucket rules' answers to browsers.
#[derive(Debug, Clone)]
pub struct BrowserAccess {
    storage: std::sync::Arc<Storage>,
    keys: std::sync::Arc<AccessKeys>,
}

impl BrowserAccess {
    pub fn new(storage: std::sync::Arc<Storage>, keys: std::sync::Arc<AccessKeys>) -> Self {
        BrowserAccess { storage, keys }
    }

    /// The cross-origin request `parts` makes, if it is one: it has an `Origin`, a path-style
    /// bucket and an access key naming the namespace.
    pub fn browser_request(&self, parts: &http::request::Parts) -> Option<BrowserRequest> {
        let origin = parts.headers.get(header::ORIGIN)?.to_str().ok()?.to_owned();
        let bucket = parts
            .uri
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|bucket| !bucket.is_empty())?
            .to_owned();
        let key_id = access_key_id(parts)?;
        let ns = self.keys.get(&key_id)?.ns;
        Some(BrowserRequest { origin, ns, bucket })
    }

    async fn rules(&self, request: &BrowserRequest) -> Vec<CorsRule> {
        match self.storage.bucket_cors(&request.ns, &request.bucket).await {
            Ok(rules) => rules.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// The answer to a preflight (`OPTIONS`), from the bucket's rules.
    pub async fn preflight(&self, parts: &http::request::Parts) -> Result<HeaderMap, S3Error> {
        let method = parts
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|value| value.to_str().ok());
        let (Some(method), Some(_)) = (method, parts.headers.get(header::ORIGIN)) else {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "Insufficient information. Origin and Access-Control-Request-Method are needed.",
            ));
        };
        let Some(request) = self.browser_request(parts) else {
            return Err(forbidden(
                "the preflight names no access key: buckets are per namespace, so only \
                 presigned URLs can be preflighted",
            ));
        };
        let asked: Vec<String> = parts
            .headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|list| list.split(','))
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect();
        let asked_refs: Vec<&str> = asked.iter().map(String::as_str).collect();
        let rules = self.rules(&request).await;
        let Some(rule) = matching_rule(&rules, &request.origin, method, &asked_refs) else {
            return Err(forbidden("This CORS request is not allowed."));
        };
        let mut headers = allow_headers(rule, &request.origin);
        insert(
            &mut headers,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            &rule.allowed_methods.join(", "),
        );
        if !asked.is_empty() {
            insert(
                &mut headers,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                &asked.join(", "),
            );
        }
        if let Some(age) = rule.max_age_seconds {
            insert(
                &mut headers,
                header::ACCESS_CONTROL_MAX_AGE,
                &age.to_string(),
            );
        }
        headers.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Headers, Access-Control-Request-Method",
            ),
        );
        Ok(headers)
    }

    /// The `Access-Control-*` headers of an actual response to `request`, when a rule of its
    /// bucket allows its origin and method.
    pub async fn response_headers(&self, request: &BrowserRequest, method: &Method) -> HeaderMap {
        let rules = self.rules(request).await;
        match matching_rule(&rules, &request.origin, method.as_str(), &[]) {
            Some(rule) => allow_headers(rule, &request.origin),
            None => HeaderMap::new(),
        }
    }
}

fn forbidden(message: &str) -> S3Error {
    let mut error = S3Error::with_message(
        S3ErrorCode::Custom("AccessForbidden".into()),
        format!("CORSResponse: {message}"),
    );
    error.set_status_code(StatusCode::FORBIDDEN);
    error
}

/// The headers every allowed cross-origin answer carries.
fn allow_headers(rule: &CorsRule, origin: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    insert(&mut headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    if !rule.expose_headers.is_empty() {
        insert(
            &mut headers,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &rule.expose_headers.join(", "),
        );
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    headers
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The access key id a request is signed with: in the query of a presigned URL
/// (`X-Amz-Credential` of SigV4, `AWSAccessKeyId` of SigV2), or in an `Authorization` header
/// (`Credential=` of SigV4, `AWS id:signature` of SigV2). Not verified here: `s3s` verifies
/// the signature of every request but a preflight, and a preflight only reads the bucket's
/// rules.
fn access_key_id(parts: &http::request::Parts) -> Option<String> {
    let from_query = parts.uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes()).find_map(|(name, value)| match &*name {
            "X-Amz-Credential" => value.split('/').next().map(str::to_owned),
            "AWSAccessKeyId" => Some(value.into_owned()),
            _ => None,
        })
    });
    let id = from_query.or_else(|| {
        let authorization = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        match authorization.split_once("Credential=") {
            Some((_, rest)) => rest.split('/').next().map(str::to_owned),
            None => authorization
                .strip_prefix("AWS ")?
                .split(':')
                .next()
                .map(str::to_owned),
        }
    })?;
    (!id.is_empty()).then_some(id)
}
