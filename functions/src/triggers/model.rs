//! Triggers (event sources with filters), rules (trigger → function bindings with retry
//! policy) and dead letters, as stored and served.

use std::time::Duration;

use ferrobase_core::{Event, EventType};
use serde::{Deserialize, Serialize};

use crate::FunctionError;
use crate::model::{NameKind, Target, validate_name, validate_name_of};

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

/// A parsed cron source.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: croner::Cron,
    pub tz: chrono_tz::Tz,
}

impl Schedule {
    pub fn parse(schedule: &str, tz: &str) -> Result<Self, FunctionError> {
        let fields = schedule.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(FunctionError::Invalid(format!(
                "cron schedule {schedule:?} has {fields} fields; expected 5 (minute hour day month weekday) or 6 (with seconds first)"
            )));
        }
        let cron = croner::parser::CronParser::new()
            .parse(schedule)
            .map_err(|error| {
                FunctionError::Invalid(format!("invalid cron schedule {schedule:?}: {error}"))
            })?;
        let tz = tz
            .parse::<chrono_tz::Tz>()
            .map_err(|_| FunctionError::Invalid(format!("unknown time zone {tz:?}")))?;
        Ok(Schedule { cron, tz })
    }
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

impl TriggerSpec {
    pub fn validate(&self) -> Result<(), FunctionError> {
        match &self.source {
            Source::Kv { prefix, ops } => {
                if ops.is_empty() {
                    return Err(FunctionError::Invalid(
                        "a kv trigger needs at least one op".into(),
                    ));
                }
                if prefix.len() > 1024 || prefix.chars().any(char::is_control) {
                    return Err(FunctionError::Invalid("invalid kv prefix".into()));
                }
            }
            Source::Storage { bucket, ops, .. } => {
                if bucket.is_empty() || bucket.len() > 63 || bucket.contains('/') {
                    return Err(FunctionError::Invalid(format!(
                        "invalid bucket name {bucket:?}"
                    )));
                }
                if ops.is_empty() {
                    return Err(FunctionError::Invalid(
                        "a storage trigger needs at least one op".into(),
                    ));
                }
            }
            Source::Queue { queue, group } => {
                for (what, name) in [("queue", queue), ("group", group)] {
                    let valid = !name.is_empty()
                        && name.len() <= 64
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                    if !valid {
                        return Err(FunctionError::Invalid(format!(
                            "invalid {what} name {name:?}"
                        )));
                    }
                }
            }
            Source::Manual => {}
            Source::Cron { schedule, tz, .. } => {
                Schedule::parse(schedule, tz)?;
            }
            Source::Function { function, on } => {
                validate_name(function)?;
                if on.is_empty() {
                    return Err(FunctionError::Invalid(
                        "a function trigger needs at least one outcome in `on`".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether `event` is one this trigger (named `name`) fires for.
    pub fn matches(&self, name: &str, event: &Event) -> bool {
        match &self.source {
            Source::Kv { prefix, ops } => {
                let op = match event.event_type {
                    EventType::KvPut => KvOp::Put,
                    EventType::KvDelete => KvOp::Delete,
                    EventType::KvExpire => KvOp::Expire,
                    _ => return false,
                };
                ops.contains(&op) && event.subject.starts_with(prefix.as_str())
            }
            Source::Storage {
                bucket,
                prefix,
                suffix,
                ops,
            } => {
                let op = match event.event_type {
                    EventType::StorageObjectCreated => StorageOp::Created,
                    EventType::StorageObjectDeleted => StorageOp::Deleted,
                    _ => return false,
                };
                let (Some(event_bucket), Some(key)) =
                    (event.data["bucket"].as_str(), event.data["key"].as_str())
                else {
                    return false;
                };
                ops.contains(&op)
                    && event_bucket == bucket
                    && key.starts_with(prefix.as_str())
                    && key.ends_with(suffix.as_str())
            }
            // Queue messages are pulled from the queue, not read from the change log.
            Source::Queue { .. } => false,
            Source::Manual => event.event_type == EventType::TriggerFired && event.subject == name,
            Source::Cron { .. } => event.event_type == EventType::CronTick && event.subject == name,
            Source::Function { function, on } => {
                if event.event_type != EventType::FunctionCompleted || event.subject != *function {
                    return false;
                }
                let outcome = match event.data["outcome"].as_str() {
                    Some("ok") => CompletionOutcome::Ok,
                    Some(_) => CompletionOutcome::Error,
                    None => return false,
                };
                on.contains(&outcome)
            }
        }
    }
}

/// Most deliveries of one rule running at once.
pub const MAX_RULE_CONCURRENCY: usize = 256;
/// Most attempts a rule makes at one event before dead-lettering it.
pub const MAX_RULE_ATTEMPTS: u32 = 100;
/// Longest pause between attempts: one hour.
pub const MAX_BACKOFF_MS: u64 = 3_600_000;

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
    /// Most deliveries of this rule running at once. Default 8; 1 to [`MAX_RULE_CONCURRENCY`].
    #[serde(default = "default_rule_concurrency")]
    pub concurrency: usize,
}

fn default_rule_concurrency() -> usize {
    8
}

fn yes() -> bool {
    true
}

fn default_attempts() -> u32 {
    5
}

impl RuleSpec {
    pub fn validate(&self) -> Result<(), FunctionError> {
        validate_name_of(NameKind::Trigger, &self.trigger)?;
        Target::parse(&self.function)?;
        if !(1..=MAX_RULE_CONCURRENCY).contains(&self.concurrency) {
            return Err(FunctionError::Invalid(format!(
                "concurrency must be between 1 and {MAX_RULE_CONCURRENCY}"
            )));
        }
        if !(1..=MAX_RULE_ATTEMPTS).contains(&self.max_attempts) {
            return Err(FunctionError::Invalid(format!(
                "max_attempts must be between 1 and {MAX_RULE_ATTEMPTS}"
            )));
        }
        if self.backoff.initial_ms == 0
            || self.backoff.max_ms < self.backoff.initial_ms
            || self.backoff.max_ms > MAX_BACKOFF_MS
        {
            return Err(FunctionError::Invalid(format!(
                "backoff needs 0 < initial_ms <= max_ms <= {MAX_BACKOFF_MS}"
            )));
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(function: &str) -> RuleSpec {
        RuleSpec {
            trigger: "t".into(),
            function: function.into(),
            enabled: true,
            max_attempts: default_attempts(),
            backoff: Backoff::default(),
            ordered: true,
            concurrency: default_rule_concurrency(),
        }
    }

    #[test]
    fn rules_name_a_real_version() {
        for good in ["hello", "hello@1", "hello@4294967295"] {
            assert!(rule(good).validate().is_ok(), "{good}");
        }
        for bad in [
            "hello@0",
            "hello@",
            "hello@-1",
            "hello@x",
            "hello@4294967296",
            "@1",
            "",
        ] {
            assert!(rule(bad).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_counts_and_backoff_are_bounded() {
        let mut spec = rule("hello");
        spec.concurrency = MAX_RULE_CONCURRENCY + 1;
        assert!(spec.validate().is_err());
        let mut spec = rule("hello");
        spec.max_attempts = MAX_RULE_ATTEMPTS + 1;
        assert!(spec.validate().is_err());
        let mut spec = rule("hello");
        spec.backoff.max_ms = MAX_BACKOFF_MS + 1;
        assert!(spec.validate().is_err());
        let mut spec = rule("hello");
        spec.backoff = Backoff {
            initial_ms: MAX_BACKOFF_MS,
            max_ms: MAX_BACKOFF_MS,
        };
        spec.max_attempts = MAX_RULE_ATTEMPTS;
        spec.concurrency = MAX_RULE_CONCURRENCY;
        assert!(spec.validate().is_ok());
        assert_eq!(
            spec.backoff.delay(MAX_RULE_ATTEMPTS, 1.0),
            Duration::from_millis(MAX_BACKOFF_MS * 6 / 5)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let backoff = Backoff {
            initial_ms: 100,
            max_ms: 1000,
        };
        assert_eq!(backoff.delay(1, 0.5), Duration::from_millis(100));
        assert_eq!(backoff.delay(2, 0.5), Duration::from_millis(200));
        assert_eq!(backoff.delay(5, 0.5), Duration::from_millis(1000));
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(80));
        assert_eq!(backoff.delay(1, 1.0), Duration::from_millis(120));
        assert_eq!(backoff.delay(40, 0.5), Duration::from_millis(1000));
    }

    #[test]
    fn rule_and_trigger_documents_validate() {
        let rule: RuleSpec = serde_json::from_str(r#"{"trigger": "t", "function": "f"}"#).unwrap();
        assert_eq!((rule.enabled, rule.max_attempts), (true, 5));
        rule.validate().unwrap();
        let bad: RuleSpec =
            serde_json::from_str(r#"{"trigger": "t", "function": "f", "max_attempts": 0}"#)
                .unwrap();
        assert!(bad.validate().is_err());
        let trigger: TriggerSpec = serde_json::from_str(
            r#"{"source": {"kind": "kv", "prefix": "orders/", "ops": ["put"]}}"#,
        )
        .unwrap();
        trigger.validate().unwrap();
        assert!(
            serde_json::from_str::<TriggerSpec>(r#"{"source": {"kind": "carrier-pigeon"}}"#)
                .is_err()
        );
    }
}
