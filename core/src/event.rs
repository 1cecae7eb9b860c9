//! The change event envelope (CloudEvents 1.0, JSON format) and the change-log reading trait.
//!
//! Every committed change appends exactly one [`Event`] to its namespace's log, in the same
//! atomic step as the change (transactional outbox). `ferrobaseseq` is the event's offset in
//! that log: strictly increasing per namespace, so consumers resume from an offset.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Namespace;

/// The kinds of change Ferrobase records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "ferrobase.kv.put")]
    KvPut,
    #[serde(rename = "ferrobase.kv.delete")]
    KvDelete,
    #[serde(rename = "ferrobase.kv.expire")]
    KvExpire,
    #[serde(rename = "ferrobase.storage.object.created")]
    StorageObjectCreated,
    #[serde(rename = "ferrobase.storage.object.deleted")]
    StorageObjectDeleted,
    #[serde(rename = "ferrobase.queue.message")]
    QueueMessage,
    #[serde(rename = "ferrobase.cron.tick")]
    CronTick,
    #[serde(rename = "ferrobase.trigger.fired")]
    TriggerFired,
    #[serde(rename = "ferrobase.function.completed")]
    FunctionCompleted,
    #[serde(rename = "ferrobase.auth.user.created")]
    AuthUserCreated,
    #[serde(rename = "ferrobase.auth.user.updated")]
    AuthUserUpdated,
    #[serde(rename = "ferrobase.auth.user.deleted")]
    AuthUserDeleted,
    #[serde(rename = "ferrobase.auth.signed_in")]
    AuthSignedIn,
    #[serde(rename = "ferrobase.auth.token_refreshed")]
    AuthTokenRefreshed,
    #[serde(rename = "ferrobase.auth.session.revoked")]
    AuthSessionRevoked,
    #[serde(rename = "ferrobase.auth.verification_requested")]
    AuthVerificationRequested,
    #[serde(rename = "ferrobase.auth.password_reset_requested")]
    AuthPasswordResetRequested,
    #[serde(rename = "ferrobase.auth.config.updated")]
    AuthConfigUpdated,
    #[serde(rename = "ferrobase.auth.key.rotated")]
    AuthKeyRotated,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::KvPut => "ferrobase.kv.put",
            EventType::KvDelete => "ferrobase.kv.delete",
            EventType::KvExpire => "ferrobase.kv.expire",
            EventType::StorageObjectCreated => "ferrobase.storage.object.created",
            EventType::StorageObjectDeleted => "ferrobase.storage.object.deleted",
            EventType::QueueMessage => "ferrobase.queue.message",
            EventType::CronTick => "ferrobase.cron.tick",
            EventType::TriggerFired => "ferrobase.trigger.fired",
            EventType::FunctionCompleted => "ferrobase.function.completed",
            EventType::AuthUserCreated => "ferrobase.auth.user.created",
            EventType::AuthUserUpdated => "ferrobase.auth.user.updated",
            EventType::AuthUserDeleted => "ferrobase.auth.user.deleted",
            EventType::AuthSignedIn => "ferrobase.auth.signed_in",
            EventType::AuthTokenRefreshed => "ferrobase.auth.token_refreshed",
            EventType::AuthSessionRevoked => "ferrobase.auth.session.revoked",
            EventType::AuthVerificationRequested => "ferrobase.auth.verification_requested",
            EventType::AuthPasswordResetRequested => "ferrobase.auth.password_reset_requested",
            EventType::AuthConfigUpdated => "ferrobase.auth.config.updated",
            EventType::AuthKeyRotated => "ferrobase.auth.key.rotated",
        }
    }

    /// The service an event type belongs to, as it appears in the event `source`.
    pub fn service(self) -> &'static str {
        match self {
            EventType::KvPut | EventType::KvDelete | EventType::KvExpire => "kv",
            EventType::StorageObjectCreated | EventType::StorageObjectDeleted => "storage",
            EventType::QueueMessage => "queue",
            EventType::CronTick | EventType::TriggerFired => "triggers",
            EventType::FunctionCompleted => "functions",
            EventType::AuthUserCreated
            | EventType::AuthUserUpdated
            | EventType::AuthUserDeleted
            | EventType::AuthSignedIn
            | EventType::AuthTokenRefreshed
            | EventType::AuthSessionRevoked
            | EventType::AuthVerificationRequested
            | EventType::AuthPasswordResetRequested
            | EventType::AuthConfigUpdated
            | EventType::AuthKeyRotated => "auth",
        }
    }
}

/// Who caused a change: set when a function's writes produce events, so that chains of
/// function-triggered writes can be traced and cut off (loop protection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Causation {
    /// The activation (or event) id that caused the change.
    pub cause: Option<String>,
    /// How many function hops deep the change is; 0 for changes made by API clients.
    pub depth: u32,
    /// For a write a function makes while handling an event: the write's idempotency key
    /// (event, function, position). An engine that honours it applies the write once, however
    /// many times the handler runs. Not part of the event.
    pub write_key: Option<String>,
}

/// One CloudEvents 1.0 event as stored in the change log and served by the events API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub specversion: String,
    /// A ULID, unique across namespaces.
    pub id: String,
    /// `/ns/{namespace}/{service}`.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// What changed within the service: a KV key, `bucket/key`, a queue name.
    pub subject: String,
    /// RFC 3339 time of the commit.
    pub time: String,
    pub datacontenttype: String,
    /// Offset in the namespace's log; assigned when the event is appended.
    pub ferrobaseseq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ferrobasecause: Option<String>,
    #[serde(default)]
    pub ferrobasedepth: u32,
    pub data: serde_json::Value,
}

impl Event {
    /// Builds an event for `ns` with sequence number `seq`, committed at `time_ms`.
    pub fn new(
        ns: &Namespace,
        event_type: EventType,
        subject: impl Into<String>,
        seq: u64,
        time_ms: u64,
        causation: &Causation,
        data: serde_json::Value,
    ) -> Self {
        Event {
            specversion: "1.0".to_owned(),
            id: ulid::Ulid::from_datetime(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(time_ms),
            )
            .to_string(),
            source: format!("/ns/{}/{}", ns, event_type.service()),
            event_type,
            subject: subject.into(),
            time: rfc3339_millis(time_ms),
            datacontenttype: "application/json".to_owned(),
            ferrobaseseq: seq,
            ferrobasecause: causation.cause.clone(),
            ferrobasedepth: causation.depth,
            data,
        }
    }

    /// Commit time in milliseconds since the epoch, parsed back from `time`.
    pub fn time_ms(&self) -> Option<u64> {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
pub fn rfc3339_millis(time_ms: u64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(time_ms as i64).unwrap_or_default();
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Which events of a namespace's log to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events with `ferrobaseseq > after` (0 reads from the start).
    pub after: u64,
    /// At most this many events.
    pub limit: usize,
    /// Only events whose type equals this, or starts with it when it ends in `.`.
    pub type_filter: Option<String>,
}

impl EventQuery {
    pub fn matches(&self, event_type: EventType) -> bool {
        match &self.type_filter {
            None => true,
            Some(filter) if filter.ends_with('.') => event_type.as_str().starts_with(filter),
            Some(filter) => event_type.as_str() == filter,
        }
    }
}

/// A page of events, oldest first; also the events API's answer ([`crate::wire`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// The offset to pass as `after` to continue: the last event scanned (also when the type
    /// filter skipped it), or the query's `after` when nothing was scanned.
    pub next_after: u64,
}

/// Failure to read the change log.
#[derive(Debug, thiserror::Error)]
#[error("change log unavailable: {0}")]
pub struct ChangeLogError(pub String);

/// Read access to the per-namespace change logs. Appends are not part of this trait: they
/// happen inside each engine's own write path, so that a change and its event commit together.
#[async_trait]
pub trait ChangeLog: Send + Sync + std::fmt::Debug {
    /// Events of `ns` matching `query`, oldest first.
    async fn read(&self, ns: &Namespace, query: &EventQuery) -> Result<EventPage, ChangeLogError>;

    /// The offset of the newest event of `ns` (0 when the log is empty).
    async fn head(&self, ns: &Namespace) -> Result<u64, ChangeLogError>;

    /// Returns once `ns` may have events beyond `after`: at once if it already has, otherwise
    /// when something is appended to any log. Callers re-read, so spurious wake-ups are fine.
    async fn wait_beyond(&self, ns: &Namespace, after: u64);

    /// Number of events currently retained across all namespaces.
    async fn retained(&self) -> Result<u64, ChangeLogError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serialises_as_cloudevents_json() {
        let ns = Namespace::parse("shop").unwrap();
        let event = Event::new(
            &ns,
            EventType::KvPut,
            "orders/42",
            1234,
            1_795_000_000_000,
            &Causation::default(),
            serde_json::json!({"key": "orders/42", "version": 7, "size": 120}),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "ferrobase.kv.put");
        assert_eq!(json["source"], "/ns/shop/kv");
        assert_eq!(json["ferrobaseseq"], 1234);
        assert!(json.get("ferrobasecause").is_none());
        assert_eq!(json["id"].as_str().unwrap().len(), 26);
        assert_eq!(event.time_ms(), Some(1_795_000_000_000));
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn type_filter_matches_exact_or_dotted_prefix() {
        let query = |f: &str| EventQuery {
            after: 0,
            limit: 10,
            type_filter: Some(f.to_owned()),
        };
        assert!(query("ferrobase.kv.put").matches(EventType::KvPut));
        assert!(!query("ferrobase.kv.put").matches(EventType::KvDelete));
        assert!(query("ferrobase.kv.").matches(EventType::KvExpire));
        assert!(!query("ferrobase.kv").matches(EventType::KvPut));
    }
}
