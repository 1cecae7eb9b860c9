//! The test host, the fixture and helpers every runtime test uses (and the imports they
//! share).

pub use std::collections::HashMap;
pub use std::sync::{Arc, Mutex};
pub use std::time::{Duration, Instant};

pub use async_trait::async_trait;
pub use ferrobase_core::event::Causation;
pub use ferrobase_core::{ErrorCode, ManualClock, Namespace};
pub use ferrobase_functions::engine::FetchPolicy;
pub use ferrobase_functions::model::Cause;
pub use ferrobase_functions::pool::PoolConfig;
pub use ferrobase_functions::service::{Completed, Invocation};
pub use ferrobase_functions::{
    FunctionError, FunctionService, FunctionSpec, FunctionsConfig, HostApi, HostContext, HostError,
    HostOp, OutcomeKind, PrivateAddresses, StartKind,
};
pub use ferrobase_kv::{KvLimits, KvRecordStore, MemoryEngine};
pub use serde_json::{Value, json};
pub use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct TestHost {
    pub values: Mutex<HashMap<(String, String), String>>,
    pub calls: Mutex<Vec<(HostContext, HostOp)>>,
    pub gate: Notify,
}

#[async_trait]
impl HostApi for TestHost {
    async fn call(&self, context: &HostContext, op: HostOp) -> Result<Value, HostError> {
        self.calls
            .lock()
            .unwrap()
            .push((context.clone(), op.clone()));
        let ns = context.namespace.to_string();
        match op {
            HostOp::KvGet { key } if key == "gate" => {
                self.gate.notified().await;
                Ok(Value::Null)
            }
            HostOp::KvGet { key } => Ok(match self.values.lock().unwrap().get(&(ns, key)) {
                Some(v) => json!({"value": v, "version": 1, "content_type": "application/json"}),
                None => Value::Null,
            }),
            HostOp::KvPut { key, value, .. } => {
                self.values.lock().unwrap().insert((ns, key.clone()), value);
                Ok(json!({"key": key, "version": 1}))
            }
            HostOp::Fetch { .. } => Ok(json!({"status": 200, "headers": {}, "body": "fetched"})),
            other => Err(HostError::new(
                ErrorCode::InvalidArgument,
                format!("test host: {other:?}"),
            )),
        }
    }
}

pub struct Fixture {
    pub service: Arc<FunctionService>,
    pub host: Arc<TestHost>,
    pub ns: Namespace,
}

pub fn fixture_with(config: FunctionsConfig) -> Fixture {
    let kv = Arc::new(MemoryEngine::new(
        ManualClock::starting_now(),
        KvLimits::default(),
    ));
    let host = Arc::new(TestHost::default());
    let service =
        FunctionService::start(Arc::new(KvRecordStore::new(kv)), host.clone(), config).unwrap();
    Fixture {
        service,
        host,
        ns: Namespace::parse("shop").unwrap(),
    }
}

pub fn config() -> FunctionsConfig {
    FunctionsConfig {
        pool: PoolConfig {
            threads: 2,
            stems_per_thread: 1,
            ..PoolConfig::default()
        },
        fetch: Arc::new(FetchPolicy::new(&["api.example.com"], PrivateAddresses::Deny).unwrap()),
        ..FunctionsConfig::default()
    }
}

pub fn spec(code: &str) -> FunctionSpec {
    serde_json::from_value(json!({"code": code})).unwrap()
}

impl Fixture {
    pub async fn deploy(&self, name: &str, spec: FunctionSpec) -> u32 {
        self.service
            .deploy(&self.ns, name, spec)
            .await
            .expect("deploys")
            .version
    }

    pub async fn invoke(&self, target: &str, event: Value) -> Completed {
        self.service
            .invoke(Invocation {
                namespace: self.ns.clone(),
                target: target.to_owned(),
                event,
                cause: Cause::Request,
                causation: Causation::default(),
            })
            .await
            .expect("invocation runs")
    }
}

pub fn result(done: &Completed) -> Value {
    assert_eq!(
        done.record.outcome,
        OutcomeKind::Ok,
        "{:?}",
        done.record.error
    );
    serde_json::from_str(done.result_json.as_deref().unwrap()).unwrap()
}
