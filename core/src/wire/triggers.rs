//! Triggers (event sources with filters), rules (trigger → function bindings with retry
//! policy) and dead letters, as stored and served (`/v1/triggers`, `/v1/rules`, `/v1/dlq`).
//! The functions crate re-exports these types and adds the rules that check and match them
//! (`ferrobase_functions::triggers::model`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Event;

/// KV operations a KV trigger can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvOp {
    Put,
    Delete,
    Expire,
}

/// Object changes a storage trigger can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageOp {
    Created,
    Deleted,
}

/// Activation outcomes a function-completion trigger can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompletionOutcome {
    Ok,
    Error,
}

/// Where a trigger's events come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// KV changes under a key prefix.
    Kv {
        #[serde(default)]
        prefix: String,
        #[serde(default = "all_kv_ops")]
        ops: Vec<KvOp>,
    },
    /// Objects created or deleted in a bucket, filtered by key prefix and suffix.
    Storage {
        bucket: String,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        suffix: String,
        #[serde(default = "all_storage_ops")]
        ops: Vec<StorageOp>,
    },
    /// A queue consumed as a work queue by one consumer group: a message is acked when the
    /// function succeeds and nacked (with the error) when it fails, so the queue's own
    /// `max_deliver` and dead-letter list apply.
    Queue { queue: String, group: String },
    /// `POST /v1/triggers/{ns}/{name}/fire`.
    Manual,
    /// A schedule: a 5-field (minute) or 6-field (second) cron expression in a time zone.
    /// Each scheduled time ticks once, across restarts and nodes; ticks missed while the
    /// server was down fire once on start unless `catch_up` is false.
    Cron {
        schedule: String,
        #[serde(default = "utc")]
        tz: String,
        #[serde(default = "yes")]
        catch_up: bool,
    },
    /// The completion of a function's activations.
    Function {
        function: String,
        #[serde(default = "all_outcomes")]
        on: Vec<CompletionOutcome>,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

fn all_storage_ops() -> Vec<StorageOp> {
    vec![StorageOp::Created, StorageOp::Deleted]
}

fn all_kv_ops() -> Vec<KvOp> {
    vec![KvOp::Put, KvOp::Delete, KvOp::Expire]
}

fn all_outcomes() -> Vec<CompletionOutcome> {
    vec![CompletionOutcome::Ok, CompletionOutcome::Error]
}

/// `PUT /v1/triggers/{ns}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    pub source: Source,
}

/// Exponential backoff between attempts, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 1000,
            max_ms: 60_000,
        }
    }
}

impl Backoff {
    /// The pause after failed attempt `attempt` (1-based): initial × 2^(attempt−1), capped,
    /// then spread by ±20% (from `jitter` in 0..1) so that retries of many events don't align.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let base = self
            .initial_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_ms) as f64;
        Duration::from_millis((base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as u64)
    }
}

/// `PUT /v1/rules/{ns}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub trigger: String,
    /// `name` (latest version at delivery) or `name@version`.
    pub function: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub backoff: Backoff,
    /// `true` (the default): events with the same subject are delivered one at a time, in log
    /// order. `false`: any events may run at once. Either way at most `concurrency` at once.
    #[serde(default = "yes")]
    pub ordered: bool,
    /// Most deliveries of this rule running at once. Default 8; 1 to `MAX_RULE_CONCURRENCY` (checked by the functions crate).
    #[serde(default = "default_rule_concurrency")]
    pub concurrency: usize,
}

/// Deliveries of a rule running at once unless it says otherwise.
pub const DEFAULT_RULE_CONCURRENCY: usize = 8;
/// Attempts at one event before it is dead-lettered, unless the rule says otherwise.
pub const DEFAULT_RULE_ATTEMPTS: u32 = 5;

fn default_rule_concurrency() -> usize {
    DEFAULT_RULE_CONCURRENCY
}

fn yes() -> bool {
    true
}

fn default_attempts() -> u32 {
    DEFAULT_RULE_ATTEMPTS
}

/// One failed attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: String,
    pub activation_id: Option<String>,
    pub error: String,
}

/// An event a rule gave up on, with every attempt's error (`GET /v1/dlq/{ns}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub rule: String,
    pub function: String,
    pub event: Event,
    pub attempts: Vec<Attempt>,
}
/// `GET/PUT /v1/triggers/{ns}/{name}`, and one entry of the triggers listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDocument {
    pub name: String,
    pub source: Source,
}

/// `GET/PUT /v1/rules/{ns}/{name}`, and one entry of the rules listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDocument {
    pub name: String,
    pub rule: RuleSpec,
    /// What keeps the rule from delivering (its function or trigger does not exist), when
    /// something does; its events are dead-lettered meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `POST /v1/triggers/{ns}/{name}/fire`: the change-log offset of the `trigger.fired` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    pub trigger: String,
    pub event_offset: u64,
}

/// `GET /v1/dlq/{ns}`: the rules' dead letters; `next` is the cursor to pass as `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    pub next: Option<String>,
}

/// `POST /v1/dlq/{ns}/{id}/replay`: whether the delivery succeeded this time; when it did
/// not, the dead letter stays with `attempts` failed attempts recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    pub id: String,
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
}
