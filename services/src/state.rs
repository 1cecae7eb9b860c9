//! The state every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrobase_core::ChangeLog;
use ferrobase_kv::KvEngine;
use tokio::sync::watch;

use crate::auth::TokenVerifier;
use crate::metrics::Metrics;
use crate::policies::PolicyStore;

/// Request-size limits of the HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_value_bytes: usize,
    pub max_txn_bytes: usize,
}

/// Cheap to clone: everything is behind `Arc`s.
#[derive(Debug, Clone)]
pub struct AppState {
    pub kv: Arc<dyn KvEngine>,
    pub changelog: Arc<dyn ChangeLog>,
    pub verifier: Arc<TokenVerifier>,
    pub policies: Arc<PolicyStore>,
    pub metrics: Arc<Metrics>,
    pub limits: HttpLimits,
    /// The function runtime; `None` when the server runs without functions.
    pub functions: Option<Arc<ferrobase_functions::FunctionService>>,
    /// Triggers and rules; `None` when the server runs without them.
    pub triggers: Option<Arc<ferrobase_functions::triggers::TriggerService>>,
    lifecycle: Arc<Lifecycle>,
}

/// Whether the server is shutting down, for readiness and for long-lived streams.
#[derive(Debug)]
struct Lifecycle {
    draining: AtomicBool,
    shutdown: watch::Sender<bool>,
}

impl AppState {
    pub fn new(kv: Arc<dyn KvEngine>, verifier: Arc<TokenVerifier>, limits: HttpLimits) -> Self {
        AppState {
            changelog: kv.clone(),
            policies: Arc::new(PolicyStore::new(kv.clone())),
            kv,
            verifier,
            metrics: Arc::new(Metrics::default()),
            limits,
            functions: None,
            triggers: None,
            lifecycle: Arc::new(Lifecycle {
                draining: AtomicBool::new(false),
                shutdown: watch::channel(false).0,
            }),
        }
    }

    /// The same state with `functions` as its function runtime.
    pub fn with_functions(mut self, functions: Arc<ferrobase_functions::FunctionService>) -> Self {
        self.functions = Some(functions);
        self
    }

    /// The same state with `triggers` delivering events to functions.
    pub fn with_triggers(
        mut self,
        triggers: Arc<ferrobase_functions::triggers::TriggerService>,
    ) -> Self {
        self.triggers = Some(triggers);
        self
    }

    /// Marks the server as shutting down: `/readyz` fails and event streams end, so that
    /// in-flight requests can finish without long-lived ones holding shutdown forever.
    pub fn begin_shutdown(&self) {
        self.lifecycle.draining.store(true, Ordering::SeqCst);
        self.lifecycle.shutdown.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        self.lifecycle.draining.load(Ordering::SeqCst)
    }

    /// Resolves when shutdown begins.
    pub async fn shutdown_signal(&self) {
        let mut shutdown = self.lifecycle.shutdown.subscribe();
        // An error means the sender is gone, which only happens when the state is dropped.
        let _ = shutdown.wait_for(|down| *down).await;
    }
}
