//! The boundary between functions and the services they call (docs/architecture.md: functions talk to
//! services only through a `HostApi` of their own). `services` implements it over the real
//! engines; the engine here only parses SDK calls into [`HostOp`]s and hands them over.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferrobase_core::event::Causation;
use ferrobase_core::{ErrorCode, Namespace};
use serde::{Deserialize, Serialize};

/// Who is calling: the activation whose SDK call this is. Writes carry its causation so that
/// the events they produce can be traced to the activation (loop protection).
#[derive(Debug, Clone)]
pub struct HostContext {
    pub namespace: Namespace,
    pub function: String,
    pub activation_id: String,
    pub causation: Causation,
    /// Set while handling an event: SDK writes then carry idempotency keys (in
    /// `causation.write_key`, see [`HostContext::for_call`]).
    pub idempotency: Option<Idempotency>,
}

impl HostContext {
    /// The context of one SDK call: a write made while handling an event takes the next
    /// idempotency key. The engine calls this synchronously, in the order the function makes
    /// its calls, so the keys do not depend on how the host schedules the calls it runs
    /// concurrently (`Promise.all` over several writes gets the same keys on every attempt).
    pub fn for_call(&self, op: &HostOp) -> HostContext {
        let mut context = self.clone();
        context.causation.write_key = if op.is_write() {
            self.idempotency.as_ref().map(Idempotency::next_key)
        } else {
            None
        };
        context
    }
}

/// Idempotency keys for the writes of an activation that handles an event: the event id, the
/// function, and the write's position in the activation. A retry of the same event by the same
/// function makes the same writes in the same order, so each gets the key its earlier attempt
/// used, and a write that already happened is not applied again.
#[derive(Debug, Clone)]
pub struct Idempotency {
    base: String,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Idempotency {
    pub fn new(event_id: &str, function: &str) -> Self {
        Idempotency {
            base: format!("{event_id}/{function}"),
            next: Default::default(),
        }
    }

    fn next_key(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("{}/{n}", self.base)
    }
}

/// One SDK call, as the in-isolate SDK sends it (`{"op": "kv.get", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", deny_unknown_fields)]
pub enum HostOp {
    #[serde(rename = "kv.get")]
    KvGet { key: String },
    #[serde(rename = "kv.put")]
    KvPut {
        key: String,
        value: String,
        content_type: String,
        #[serde(default)]
        ttl: Option<u64>,
        #[serde(default)]
        if_version: Option<u64>,
        #[serde(default)]
        if_absent: bool,
    },
    #[serde(rename = "kv.delete")]
    KvDelete {
        key: String,
        #[serde(default)]
        if_version: Option<u64>,
    },
    #[serde(rename = "kv.list")]
    KvList {
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Publishes to a configured queue of the namespace, all or nothing.
    #[serde(rename = "queue.publish")]
    QueuePublish {
        queue: String,
        messages: Vec<PublishedMessage>,
    },
    /// An object's body (text, or base64 for bytes), or null.
    #[serde(rename = "storage.get")]
    StorageGet {
        bucket: String,
        key: String,
        #[serde(default)]
        encoding: BodyEncoding,
    },
    #[serde(rename = "storage.put")]
    StoragePut {
        bucket: String,
        key: String,
        body: String,
        #[serde(default)]
        encoding: BodyEncoding,
        content_type: String,
    },
    #[serde(rename = "storage.delete")]
    StorageDelete { bucket: String, key: String },
    #[serde(rename = "storage.list")]
    StorageList {
        bucket: String,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        delimiter: Option<String>,
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// An outbound request. The URL is parsed here, once ([`crate::fetch::parse_url`]); the
    /// engine checks this value against the [`crate::FetchPolicy`] and the host sends it.
    #[serde(rename = "fetch")]
    Fetch {
        #[serde(deserialize_with = "crate::fetch::deserialize_url")]
        url: url::Url,
        #[serde(default = "default_method")]
        method: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: Option<String>,
        /// How `body` is written, and how the answer's body is to be: the SDK's `fetch`
        /// sends and takes base64, so that bytes survive both ways.
        #[serde(default)]
        encoding: BodyEncoding,
    },
}

impl HostOp {
    /// Whether the call changes a service (and so carries an idempotency key while the
    /// function handles an event).
    pub fn is_write(&self) -> bool {
        match self {
            HostOp::KvPut { .. }
            | HostOp::KvDelete { .. }
            | HostOp::QueuePublish { .. }
            | HostOp::StoragePut { .. }
            | HostOp::StorageDelete { .. } => true,
            HostOp::KvGet { .. }
            | HostOp::KvList { .. }
            | HostOp::StorageGet { .. }
            | HostOp::StorageList { .. }
            | HostOp::Fetch { .. } => false,
        }
    }
}

/// How an object body travels between the isolate and the host: JSON strings hold text, so
/// bytes go as base64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    #[default]
    Text,
    Base64,
}

/// One message of a `queue.publish` call (the HTTP API's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedMessage {
    pub body: serde_json::Value,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub dedup_id: Option<String>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// A failed SDK call, surfaced in JS as an `Error` with `code` (the API's error codes, such
/// as `not_found` or `precondition_failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{code}: {message}")]
pub struct HostError {
    pub code: ErrorCode,
    pub message: String,
}

impl HostError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        HostError {
            code,
            message: message.into(),
        }
    }
}

/// What functions may ask of the services. Calls are async and run on the executor thread's
/// event loop, so a slow call never blocks other activations.
#[async_trait]
pub trait HostApi: Send + Sync + std::fmt::Debug {
    /// Performs `op` for the activation described by `context`; the answer is JSON for the SDK.
    async fn call(&self, context: &HostContext, op: HostOp)
    -> Result<serde_json::Value, HostError>;
}
