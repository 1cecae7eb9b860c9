//! Triggers (event sources with filters), rules (trigger → function bindings with retry
//! policy) and dead letters: the documents are the API's
//! ([`ferrobase_core::wire::triggers`], re-exported here); this module adds the checks a
//! document gets before it is stored, which events a trigger selects, and cron schedules.

use ferrobase_core::{Event, EventType};

pub use ferrobase_core::wire::triggers::{
    Attempt, Backoff, CompletionOutcome, DeadLetter, KvOp, RuleSpec, Source, StorageOp, TriggerSpec,
};

use crate::FunctionError;
use crate::model::{NameKind, Target, Validate, validate_name, validate_name_of};

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

impl Validate for TriggerSpec {
    fn validate(&self) -> Result<(), FunctionError> {
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
}

/// Whether `event` is one this trigger (named `name`) fires for.
pub fn matches(trigger: &TriggerSpec, name: &str, event: &Event) -> bool {
    match &trigger.source {
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

/// Most deliveries of one rule running at once.
pub const MAX_RULE_CONCURRENCY: usize = 256;
/// Most attempts a rule makes at one event before dead-lettering it.
pub const MAX_RULE_ATTEMPTS: u32 = 100;
/// Longest pause between attempts: one hour.
pub const MAX_BACKOFF_MS: u64 = 3_600_000;

impl Validate for RuleSpec {
    fn validate(&self) -> Result<(), FunctionError> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferrobase_core::wire::triggers::{DEFAULT_RULE_ATTEMPTS, DEFAULT_RULE_CONCURRENCY};

    use super::*;

    fn rule(function: &str) -> RuleSpec {
        RuleSpec {
            trigger: "t".into(),
            function: function.into(),
            enabled: true,
            max_attempts: DEFAULT_RULE_ATTEMPTS,
            backoff: Backoff::default(),
            ordered: true,
            concurrency: DEFAULT_RULE_CONCURRENCY,
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
