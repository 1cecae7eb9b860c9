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

/// The services behind the API besides KV. Every server runs all of them (tests too, on the
/// memory engines), so handlers never meet a missing service.
#[derive(Debug, Clone)]
pub struct Services {
    pub queue: Arc<dyn Queue>,
    pub storage: Arc<ferrobase_storage::Storage>,
    pub functions: Arc<ferrobase_functions::FunctionService>,
    pub triggers: Arc<ferrobase_functions::triggers::TriggerService>,
    pub accounts: Arc<crate::auth::accounts::Accounts>,
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
    pub queue: Arc<dyn Queue>,
    pub functions: Arc<ferrobase_functions::FunctionService>,
    pub triggers: Arc<ferrobase_functions::triggers::TriggerService>,
    pub storage: Arc<ferrobase_storage::Storage>,
    /// The built-in auth service.
    pub accounts: Arc<crate::auth::accounts::Accounts>,
    /// Signs presigned URLs for the S3 endpoint; `None` while that endpoint is off
    /// (`s3_listen = "off"`), when presigning answers 503.
    pub presigner: Option<Arc<crate::auth::presign::Presigner>>,
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
    pub fn new(
        kv: Arc<dyn KvEngine>,
        verifier: Arc<TokenVerifier>,
        limits: HttpLimits,
        services: Services,
    ) -> Self {
        let Services {
            queue,
            storage,
            functions,
            triggers,
            accounts,
        } = services;
        AppState {
            changelog: kv.clone(),
            policies: Arc::new(PolicyStore::new(kv.clone())),
            kv,
            verifier,
            metrics: Arc::new(Metrics::default()),
            limits,
            queue,
            functions,
            triggers,
            storage,
            accounts,
            presigner: None,
            cursors: Arc::new(crate::auth::listing::CursorSealer::random()),
            lifecycle: Arc::new(Lifecycle {
                draining: AtomicBool::new(false),
                shutdown: watch::channel(false).0,
            }),
        }
    }

    /// The same state with `presigner` signing presigned URLs.
    pub fn with_presigner(mut self, presigner: Arc<crate::auth::presign::Presigner>) -> Self {
        self.presigner = Some(presigner);
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
