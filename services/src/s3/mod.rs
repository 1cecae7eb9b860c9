//! The S3 protocol endpoint, on a listener of its own (default `127.0.0.1:9000`).
//!
//! The protocol layer is the `s3s` crate: it routes path-style requests, verifies SigV4
//! signatures in headers and presigned URLs, decodes `aws-chunked` bodies and writes S3 XML
//! and errors. [`frontend`] maps its operations onto [`ferrobase_storage::Storage`] after the
//! same policy check as the HTTP API. The access keys it verifies signatures with
//! ([`crate::auth::access_keys`]) and the presigned URLs the HTTP API hands out
//! ([`crate::auth::presign`]) belong to [`crate::auth`], below both.

pub mod frontend;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Result, s3_error};
use tokio::net::TcpListener;

use crate::auth::access_keys::AccessKeys;
use crate::auth::presign::Presigner;
use crate::config::Config;
use crate::state::AppState;
use frontend::S3Frontend;

/// Where the server writes the S3 endpoint's address, for scripts and test harnesses that
/// start it on port 0 (it is printed on stdout too).
pub fn address_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("s3").join("address")
}

/// Secrets for `s3s`'s signature checks.
#[derive(Debug)]
struct KeyAuth(Arc<AccessKeys>);

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0
            .get(access_key)
            .map(|key| SecretKey::from(key.secret_access_key))
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))
    }
}

/// The S3 service over `state`'s storage.
/// Most bytes of an XML request body s3s reads whole (CompleteMultipartUpload,
/// DeleteObjects, ...): room for CompleteMultipartUpload's 10,000 parts, each with an ETag
/// and every checksum field at up to 1 KiB, which also holds DeleteObjects' 1,000 keys of up to
/// 1,024 bytes each escaped. Larger bodies are refused with MaxMessageLengthExceeded before
/// they are read.
pub const XML_BODY_MAX: usize = 10_000 * 1024;

pub fn service(state: &AppState, keys: Arc<AccessKeys>) -> anyhow::Result<S3Service> {
    let storage = state.storage.clone();
    let mut builder = S3ServiceBuilder::new(S3Frontend::new(state.clone(), storage, keys.clone()));
    builder.set_auth(KeyAuth(keys));
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = XML_BODY_MAX;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    Ok(builder.build())
}

/// What the endpoint's one handler needs: the `s3s` service, and the bucket rules' answers to
/// browsers, which come before it (a preflight carries no signature) and after it.
#[derive(Clone)]
struct Endpoint {
    service: S3Service,
    browsers: frontend::cors::BrowserAccess,
}

async fn handle(State(endpoint): State<Endpoint>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == axum::http::Method::OPTIONS {
        return match endpoint.browsers.preflight(&parts).await {
            Ok(headers) => (headers, axum::http::StatusCode::OK).into_response(),
            Err(error) => error_response(error),
        };
    }
    let browser = endpoint.browsers.browser_request(&parts);
    let method = parts.method.clone();
    let request = Request::from_parts(parts, body);
    let mut response = answer_s3(&endpoint.service, request).await;
    if let Some(browser) = browser {
        let headers = endpoint.browsers.response_headers(&browser, &method).await;
        response.headers_mut().extend(headers);
    }
    response
}

async fn answer_s3(service: &S3Service, request: Request) -> Response {
    use axum::http::header;
    let has_body = request.headers().contains_key(header::EXPECT)
        || request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length != "0");
    let mut response = match prepare(request) {
        Ok(request) => answer(service.call(request).await),
        Err(error) => error_response(error),
    };
    // A request refused before its body was read (a failed precondition, a bad signature)
    // leaves that body, or a client's `Expect: 100-continue` exchange, unfinished on the
    // connection; botocore then misreads the next response on it. Close such connections.
    if has_body && !response.status().is_success() {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The request as s3s takes it. The XML bodies of DeleteObjects and
/// CompleteMultipartUpload, which s3s reads whole once it has verified the request, are
/// recorded as it reads them into a [`frontend::WholeBody`], for the checks of `Content-MD5`
/// and `x-amz-checksum-*` that s3s does not make. One declared longer than [`XML_BODY_MAX`]
/// is refused before it is read (s3s refuses one of no declared length). An `aws-chunked`
/// body, which s3s decodes, is not recorded.
fn prepare(request: Request) -> Result<s3s::HttpRequest, s3s::S3Error> {
    use axum::http::header;
    let (mut parts, body) = request.into_parts();
    let text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let xml = parts.method == axum::http::Method::POST
        && parts.uri.query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| matches!(pair.split('=').next(), Some("delete") | Some("uploadId")))
        });
    let chunked = text(header::CONTENT_ENCODING).is_some_and(|value| value.contains("aws-chunked"));
    let declared = text(header::CONTENT_LENGTH).and_then(|value| value.parse::<u64>().ok());
    if !xml || chunked {
        return Ok(s3s::HttpRequest::from_parts(
            parts,
            s3s::Body::http_body_unsync(body),
        ));
    }
    if declared.is_some_and(|length| length > XML_BODY_MAX as u64) {
        return Err(too_large());
    }
    let whole = frontend::WholeBody::default();
    parts.extensions.insert(whole.clone());
    let body = frontend::Recording::new(body, whole);
    Ok(s3s::HttpRequest::from_parts(
        parts,
        s3s::Body::http_body_unsync(body),
    ))
}

fn too_large() -> s3s::S3Error {
    s3_error!(
        MaxMessageLengthExceeded,
        "the XML body is larger than {XML_BODY_MAX} bytes"
    )
}

fn error_response(error: s3s::S3Error) -> Response {
    match error.to_http_response() {
        Ok(response) => answer(Ok(response)),
        Err(error) => {
            tracing::error!(%error, "writing an S3 error failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn answer(result: Result<s3s::HttpResponse, s3s::HttpError>) -> Response {
    match result {
        Ok(response) if response.status() == axum::http::StatusCode::NOT_MODIFIED => {
            // s3s writes its XML error body even for 304, which must have none: a client
            // would read those bytes as the start of the next response on the connection.
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            parts.headers.remove(axum::http::header::CONTENT_TYPE);
            Response::from_parts(parts, axum::body::Body::empty())
        }
        Ok(response) => response.map(axum::body::Body::new).into_response(),
        Err(error) => {
            tracing::error!(?error, "S3 request failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The running S3 endpoint.
#[derive(Debug)]
pub struct S3Endpoint {
    server: tokio::task::JoinHandle<()>,
}

/// Serves the S3 endpoint on `listener` (bound to `config.storage.s3_listen`) until the
/// server begins shutting down, and reports its address (stdout and [`address_file`]).
/// Returns the state with the presigner for that address.
pub async fn start(
    state: AppState,
    config: &Config,
    listener: TcpListener,
) -> anyhow::Result<(AppState, S3Endpoint)> {
    let keys = Arc::new(AccessKeys::new(&config.data_dir));
    let endpoint = Endpoint {
        service: service(&state, keys.clone())?,
        browsers: frontend::cors::BrowserAccess::new(state.storage.clone(), keys.clone()),
    };
    let local = listener.local_addr()?;
    let file = address_file(&config.data_dir);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&file, format!("http://{local}\n"))?;
    tracing::info!(address = %local, "S3 endpoint listening");
    println!("ferrobase s3 listening on http://{local}");
    let public_url = config
        .storage
        .s3_public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let state = state.with_presigner(Arc::new(Presigner::new(keys, public_url)));

    let app = axum::Router::new().fallback(handle).with_state(endpoint);
    let server = {
        let state = state.clone();
        let limits = config.http.clone();
        tokio::spawn(crate::serving::serve(
            listener,
            app,
            limits,
            crate::serving::ErrorFormat::S3Xml,
            async move { state.shutdown_signal().await },
        ))
    };
    Ok((state, S3Endpoint { server }))
}

impl S3Endpoint {
    /// Waits until `deadline` for in-flight S3 requests after shutdown began, then stops.
    pub async fn finish_by(self, deadline: tokio::time::Instant) {
        let abort = self.server.abort_handle();
        if tokio::time::timeout_at(deadline, self.server)
            .await
            .is_err()
        {
            tracing::warn!("S3 requests did not finish within the grace period");
            abort.abort();
        }
    }
}

/// Makes a `Send` stream `Sync`, as `s3s` bodies must be: only one task polls a body, so the
/// lock is never contended.
pub(crate) struct SyncStream<S>(Mutex<S>);

impl<S> SyncStream<S> {
    pub(crate) fn new(stream: S) -> Self {
        SyncStream(Mutex::new(stream))
    }
}

impl<S: Stream + Unpin> Stream for SyncStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut inner = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Pin::new(&mut *inner).poll_next(cx)
    }
}
