//! The test application (a server with functions and triggers) and shared setup, with the
//! imports the tests share.

pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use crate::support::{Services, TestApp, TokenSpec};
pub use axum::http::{Method, StatusCode};
pub use ferrobase::host::ServiceHost;
pub use ferrobase::server::Foundation;
pub use ferrobase_core::auth::Role;
pub use ferrobase_core::{ManualClock, Namespace};
pub use ferrobase_functions::pool::PoolConfig;
pub use ferrobase_functions::triggers::{TriggerConfig, TriggerService};
pub use ferrobase_functions::{FunctionService, FunctionsConfig};
pub use ferrobase_kv::{KvEngine, KvLimits, KvRecordStore, MemoryEngine};
pub use serde_json::{Value, json};

pub struct App {
    pub app: TestApp,
}

impl App {
    pub async fn new() -> App {
        let services = Services::roomy();
        App {
            app: TestApp::with_services(services).await,
        }
    }

    pub fn token(&self, role: Role) -> String {
        self.app.mint(TokenSpec::new(role, Some("shop")).sub("t"))
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(Role::Service, method, uri, body).await
    }

    pub async fn call_as(
        &self,
        role: Role,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let call = self.app.request(method, uri).token(&self.token(role));
        let resp = match body {
            Some(value) => call.json(&value).await,
            None => call.send().await,
        };
        (
            resp.status,
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
        )
    }

    pub async fn deploy(&self, name: &str, code: &str) {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/v1/functions/shop/{name}"),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn put(&self, uri: &str, body: Value) {
        let (status, reply) = self.call(Method::PUT, uri, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {reply}");
    }

    pub async fn kv_put(&self, key: &str, value: &str) {
        let resp = self
            .app
            .put(&format!("/v1/kv/shop/{key}"))
            .token(&self.token(Role::Service))
            .body(value.to_owned())
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    }

    pub async fn kv_get(&self, key: &str) -> Option<String> {
        let resp = self
            .app
            .get(&format!("/v1/kv/shop/{key}"))
            .token(&self.token(Role::Service))
            .send()
            .await;
        (resp.status == StatusCode::OK).then(|| String::from_utf8_lossy(&resp.body).into_owned())
    }

    /// Polls until `key` exists (deliveries are asynchronous).
    pub async fn eventually(&self, key: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = self.kv_get(key).await {
                return value;
            }
            assert!(Instant::now() < deadline, "{key} never appeared");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn dead_letters(&self) -> Vec<Value> {
        let (_, body) = self.call(Method::GET, "/v1/dlq/shop", None).await;
        body["dead_letters"].as_array().cloned().unwrap_or_default()
    }

    pub async fn eventually_dead_letters(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let letters = self.dead_letters().await;
            if letters.len() >= count {
                return letters;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} dead letters, have {}",
                letters.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Records each event it gets under `seen/{subject}` (a KV write of its own).
pub const RECORDER: &str = "import { kv } from 'ferrobase';\nexport default async (event) => { await kv.put('seen/' + event.subject, event.type); return 'ok'; };";

/// KV, records and functions without a trigger service, for tests that start and stop trigger
/// services themselves (restarts). The directory holds the functions' queue and objects.
pub fn standalone_services() -> (
    Arc<dyn KvEngine>,
    Arc<KvRecordStore>,
    Arc<FunctionService>,
    tempfile::TempDir,
) {
    let clock = ManualClock::starting_now();
    let kv: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new(clock.clone(), KvLimits::default()));
    let dir = tempfile::tempdir().unwrap();
    let engines = Foundation::embedded(kv.clone(), dir.path(), clock, Default::default()).unwrap();
    let records = Arc::new(KvRecordStore::new(kv.clone()));
    let functions = FunctionService::start(
        records.clone(),
        Arc::new(ServiceHost::new(
            kv.clone(),
            engines.queue,
            engines.storage,
            Arc::new(ferrobase_functions::FetchPolicy::default()),
        )),
        FunctionsConfig {
            pool: PoolConfig {
                threads: 1,
                stems_per_thread: 0,
                ..PoolConfig::default()
            },
            ..FunctionsConfig::default()
        },
    )
    .unwrap();
    (kv, records, functions, dir)
}
