//! The state every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrobase_core::ChangeLog;
use ferrobase_kv::KvEngine;
use ferrobase_queue::Queue;
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
    /// The queue engine; `None` when the server runs without queues (queue routes answer 503).
    pub queue: Option<Arc<dyn Queue>>,
    /// The function runtime; `None` when the server runs without functions.
    pub functions: Option<Arc<ferrobase_functions::FunctionService>>,
    /// Triggers and rules; `None` when the server runs without them.
    pub triggers: Option<Arc<ferrobase_functions::triggers::TriggerService>>,
    /// Object storage; `None` when the server runs without it (storage routes answer 503).
    pub storage: Option<Arc<ferrobase_storage::Storage>>,
    /// Signs presigned URLs for the S3 endpoint; set once that endpoint listens.
    pub presigner: Option<Arc<crate::auth::presign::Presigner>>,
    /// The built-in auth service; `None` when the server runs without it (its routes answer 503).
    pub accounts: Option<Arc<crate::auth::accounts::Accounts>>,
    /// Seals the cursors of listings filtered for the caller (see `auth::listing`).
    pub cursors: Arc<crate::auth::listing::CursorSealer>,
    lifecycle: Arc<Lifecycle>,
}

// Sub-states for extractors and middleware that need one part of the state, so that the
// modules below this one (auth, metrics) never name `AppState`.
impl axum::extract::FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<PolicyStore> {
    fn from_ref(state: &AppState) -> Self {
        state.policies.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
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
            queue: None,
            functions: None,
            triggers: None,
            storage: None,
            presigner: None,
            accounts: None,
            cursors: Arc::new(crate::auth::listing::CursorSealer::random()),
            lifecycle: Arc::new(Lifecycle {
                draining: AtomicBool::new(false),
                shutdown: watch::channel(false).0,
            }),
        }
    }

    /// The same state with `queue` as its queue engine.
    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The same state with `functions` as its function runtime.
    pub fn with_functions(mut self, functions: Arc<ferrobase_functions::FunctionService>) -> Self {
        self.functions = Some(functions);
        self
    }

    /// The same state with `storage` as its object storage.
    pub fn with_storage(mut self, storage: Arc<ferrobase_storage::Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The same state with `presigner` signing presigned URLs.
    pub fn with_presigner(mut self, presigner: Arc<crate::auth::presign::Presigner>) -> Self {
        self.presigner = Some(presigner);
        self
    }

    /// The same state with `accounts` as its auth service.
    pub fn with_accounts(mut self, accounts: Arc<crate::auth::accounts::Accounts>) -> Self {
        self.accounts = Some(accounts);
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
