//! The test harness shared by the in-process API suites: one server per test, driven with
//! `tower::ServiceExt::oneshot`.
//!
//! The server runs on the in-memory KV engine with a manual clock (tests move time instead of
//! sleeping) and verifies tokens with a fixed HS256 secret. It runs every service (the embedded
//! queue and local object storage in a temporary directory), with small KV limits by default so
//! that tests can cross them cheaply; [`TestApp::with_services`] sets other limits.
//!
//! Each suite uses part of it, so unused helpers are expected.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, header};
use ferrobase::auth::TokenVerifier;
use ferrobase::config::AuthConfig;
use ferrobase::config::CorsConfig;
use ferrobase::server::{Foundation, start_services};
use ferrobase::state::{AppState, HttpLimits};
use ferrobase_core::auth::{Claims, Role};
use ferrobase_core::{ManualClock, Namespace};
use ferrobase_functions::FunctionsConfig;
use ferrobase_functions::pool::PoolConfig;
use ferrobase_kv::{KvLimits, MemoryEngine};
use ferrobase_queue::QueueLimits;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt as _;

/// The HS256 secret every test server verifies tokens with.
pub const SECRET: &str = "ferrobase-api-tests-secret-0123456789abcdef";
/// Largest value accepted, by the HTTP layer and the engine alike.
pub const MAX_VALUE: usize = 1024;
/// Largest transaction body accepted.
pub const MAX_TXN: usize = 4096;

/// A server under test and the handles tests use to steer it.
#[derive(Debug)]
pub struct TestApp {
    router: Router,
    pub clock: Arc<ManualClock>,
    pub engine: Arc<MemoryEngine>,
    verifier: Arc<TokenVerifier>,
    _data_dir: TempDir,
}

/// The limits and CORS settings of a test server (every server runs every service).
#[derive(Debug, Clone)]
pub struct Services {
    pub cors: CorsConfig,
    /// Largest KV value, by the HTTP layer and the engine alike.
    pub max_value: usize,
    /// Largest transaction body.
    pub max_txn: usize,
    /// The embedded queue engine's limits.
    pub queue: QueueLimits,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            cors: CorsConfig::default(),
            max_value: MAX_VALUE,
            max_txn: MAX_TXN,
            queue: QueueLimits::default(),
        }
    }
}

impl Services {
    /// The server's own limits (1 MiB values, 4 MiB transactions), for suites that do not
    /// test limits.
    pub fn roomy() -> Self {
        Services {
            max_value: 1 << 20,
            max_txn: 4 << 20,
            ..Services::default()
        }
    }
}

/// The parts a test server is made of.
struct Base {
    clock: Arc<ManualClock>,
    engine: Arc<MemoryEngine>,
    verifier: Arc<TokenVerifier>,
    data_dir: TempDir,
    state: AppState,
}

impl Base {
    /// Every service, on the memory KV engine and the embedded queue and local storage in a
    /// temporary directory, as a production server wires them.
    async fn new(services: &Services) -> Base {
        let clock = ManualClock::starting_now();
        let engine = Arc::new(MemoryEngine::new(
            clock.clone(),
            KvLimits {
                max_value_bytes: services.max_value,
            },
        ));
        let data_dir = tempfile::tempdir().expect("temp dir");
        let verifier = Arc::new(verifier_with_secret(SECRET, &data_dir));
        let mut foundation = Foundation::embedded(
            engine.clone(),
            data_dir.path(),
            clock.clone(),
            services.queue,
        )
        .expect("engines open");
        foundation.functions = FunctionsConfig {
            pool: PoolConfig {
                threads: 2,
                stems_per_thread: 1,
                ..PoolConfig::default()
            },
            ..FunctionsConfig::default()
        };
        let parts = start_services(foundation).await.expect("services start");
        let state = AppState::new(
            engine.clone(),
            verifier.clone(),
            HttpLimits {
                max_value_bytes: services.max_value,
                max_txn_bytes: services.max_txn,
            },
            parts,
        );
        Base {
            clock,
            engine,
            verifier,
            data_dir,
            state,
        }
    }

    fn finish(self, cors: &CorsConfig) -> TestApp {
        TestApp {
            router: ferrobase::routes::router(self.state, cors).expect("router"),
            clock: self.clock,
            engine: self.engine,
            verifier: self.verifier,
            _data_dir: self.data_dir,
        }
    }
}

impl TestApp {
    /// A server with small KV limits and without CORS.
    pub async fn new() -> Self {
        TestApp::with_cors(&CorsConfig::default()).await
    }

    /// A server with small KV limits and `cors`.
    pub async fn with_cors(cors: &CorsConfig) -> Self {
        Base::new(&Services::default()).await.finish(cors)
    }

    /// A server with `services`' limits and CORS.
    pub async fn with_services(services: Services) -> Self {
        Base::new(&services).await.finish(&services.cors)
    }

    // ---- tokens ----

    /// Signs `spec` with the server's secret.
    pub fn mint(&self, spec: TokenSpec) -> String {
        self.verifier.mint(&spec.claims()).expect("mint token")
    }

    /// An admin token for every namespace.
    pub fn admin(&self) -> String {
        self.mint(TokenSpec::new(Role::Admin, None))
    }

    pub fn service(&self, ns: &str) -> String {
        self.mint(TokenSpec::new(Role::Service, Some(ns)))
    }

    pub fn user(&self, ns: &str, sub: &str) -> String {
        self.mint(TokenSpec::new(Role::User, Some(ns)).sub(sub))
    }

    // ---- requests ----

    pub fn request(&self, method: Method, uri: &str) -> Call<'_> {
        Call {
            app: self,
            builder: Request::builder().method(method).uri(uri),
        }
    }

    pub fn get(&self, uri: &str) -> Call<'_> {
        self.request(Method::GET, uri)
    }

    pub fn put(&self, uri: &str) -> Call<'_> {
        self.request(Method::PUT, uri)
    }

    pub fn post(&self, uri: &str) -> Call<'_> {
        self.request(Method::POST, uri)
    }

    pub fn delete(&self, uri: &str) -> Call<'_> {
        self.request(Method::DELETE, uri)
    }

    /// Sends `request` and returns the response unread (for streams).
    pub async fn send_raw(&self, request: Request<Body>) -> Response<Body> {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
    }

    // ---- reading state back as an admin, to check what a request left behind ----

    /// `PUT /v1/kv/{ns}/{key}` as admin, asserting success; returns the new version.
    pub async fn put_value(&self, ns: &str, key: &str, value: &str) -> u64 {
        let resp = self
            .put(&format!("/v1/kv/{ns}/{key}"))
            .token(&self.admin())
            .body(value.to_owned())
            .await;
        assert_eq!(resp.status, StatusCode::OK, "put {key}: {resp:?}");
        resp.json()["version"].as_u64().expect("version")
    }

    /// The value under `key` read as admin, or `None` on 404.
    pub async fn value_of(&self, ns: &str, key: &str) -> Option<Bytes> {
        let resp = self
            .get(&format!("/v1/kv/{ns}/{key}"))
            .token(&self.admin())
            .send()
            .await;
        match resp.status {
            StatusCode::OK => Some(resp.body),
            StatusCode::NOT_FOUND => None,
            other => panic!("unexpected status {other} reading {key}: {resp:?}"),
        }
    }

    /// Every event of `ns` (the test logs are short), read as admin.
    pub async fn events(&self, ns: &str) -> Vec<Value> {
        let resp = self
            .get(&format!("/v1/events/{ns}?limit=1000"))
            .token(&self.admin())
            .send()
            .await;
        assert_eq!(resp.status, StatusCode::OK, "events of {ns}: {resp:?}");
        resp.json()["events"].as_array().expect("events").clone()
    }

    /// Asserts that `ns` holds no key and has no event: what a refused write must leave.
    pub async fn assert_untouched(&self, ns: &str) {
        assert_eq!(self.events(ns).await, Vec::<Value>::new(), "events of {ns}");
        let resp = self
            .get(&format!("/v1/kv/{ns}"))
            .token(&self.admin())
            .send()
            .await;
        assert_eq!(resp.json()["items"], serde_json::json!([]), "keys of {ns}");
    }

    /// Advances the server's clock.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// A verifier with `secret`, loaded like the server loads its own.
pub fn verifier_with_secret(secret: &str, data_dir: &TempDir) -> TokenVerifier {
    TokenVerifier::load(
        &AuthConfig {
            hs256_secret: Some(secret.to_owned()),
            ..AuthConfig::default()
        },
        data_dir.path(),
    )
    .expect("verifier")
}

/// Seconds since the epoch by the real clock, which is what token expiry is checked against.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
}

/// The claims of a test token; valid for an hour unless told otherwise.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    role: Role,
    ns: Option<String>,
    sub: String,
    exp: u64,
    scopes: Option<Vec<String>>,
}

impl TokenSpec {
    pub fn new(role: Role, ns: Option<&str>) -> Self {
        TokenSpec {
            role,
            ns: ns.map(str::to_owned),
            sub: format!("test-{}", role.as_str()),
            exp: unix_now() + 3600,
            scopes: None,
        }
    }

    pub fn sub(mut self, sub: &str) -> Self {
        self.sub = sub.to_owned();
        self
    }

    /// Expiry as an absolute time in seconds since the epoch.
    pub fn exp(mut self, exp: u64) -> Self {
        self.exp = exp;
        self
    }

    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn claims(&self) -> Claims {
        Claims {
            sub: self.sub.clone(),
            exp: self.exp,
            iat: Some(unix_now()),
            ns: self
                .ns
                .as_deref()
                .map(|ns| Namespace::parse(ns).expect("valid test namespace")),
            role: self.role,
            scopes: self.scopes.clone(),
        }
    }
}

/// A request being built; finish it with [`Call::send`], [`Call::body`], [`Call::json`] or
/// [`Call::stream`].
#[derive(Debug)]
pub struct Call<'a> {
    app: &'a TestApp,
    builder: axum::http::request::Builder,
}

impl Call<'_> {
    /// `Authorization: Bearer {token}`.
    pub fn token(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION.as_str(), &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sends the request without a body.
    pub async fn send(self) -> Resp {
        self.finish(Body::empty()).await
    }

    /// Sends `body` with its `Content-Length`, as HTTP clients do for fixed bodies.
    pub async fn body(self, body: impl Into<Bytes>) -> Resp {
        let body = body.into();
        let call = self.header(header::CONTENT_LENGTH.as_str(), &body.len().to_string());
        call.finish(Body::from(body)).await
    }

    /// Sends `value` as a JSON body.
    pub async fn json(self, value: &Value) -> Resp {
        self.header(header::CONTENT_TYPE.as_str(), "application/json")
            .body(serde_json::to_vec(value).expect("json"))
            .await
    }

    /// Sends `chunks` as a streamed body without `Content-Length` (chunked encoding).
    pub async fn stream(self, chunks: Vec<Bytes>) -> Resp {
        let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        self.finish(Body::from_stream(stream)).await
    }

    pub fn build(self, body: Body) -> Request<Body> {
        self.builder.body(body).expect("valid request")
    }

    async fn finish(self, body: Body) -> Resp {
        let app = self.app;
        let response = app.send_raw(self.build(body)).await;
        Resp::read(response).await
    }
}

/// A response read in full.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body parsed, when the response says it is JSON.
    pub json: Option<Value>,
}

impl std::fmt::Debug for Resp {
    // The body as text makes failed assertions readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resp")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Resp {
    async fn read(response: Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("read body").to_bytes();
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        // HEAD responses announce JSON without carrying it.
        let json = if is_json && !body.is_empty() {
            Some(serde_json::from_slice(&body).expect("a JSON response parses"))
        } else {
            None
        };
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
            json,
        }
    }

    /// The JSON body; panics when the response is not JSON.
    #[track_caller]
    pub fn json(&self) -> &Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("expected a JSON body: {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("text header"))
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// Asserts a JSON error response `{"error":{"code":..,"message":..}}` with `status` and
    /// `code`, and the `WWW-Authenticate` challenge exactly on 401s.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let json = self.json();
        assert_eq!(json["error"]["code"], code, "{self:?}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "error without a message: {self:?}");
        let challenge = self.header("www-authenticate");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(challenge, Some("Bearer"), "{self:?}");
        } else {
            assert_eq!(challenge, None, "{self:?}");
        }
    }
}
