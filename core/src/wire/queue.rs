//! Queues (`/v1/queues/{ns}/{queue}/...`): a queue's configuration and state, published ids,
//! pulled messages, settlements and dead letters. Message bodies are JSON values (a body that
//! was stored as something else reads as a string).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A queue's configuration as the API shows it (durations in whole seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfigDocument {
    pub max_deliver: u32,
    pub retention: RetentionDocument,
    pub emit_events: bool,
    pub dedup_window_s: u64,
}

/// How long, or how many, messages a queue keeps; absent means unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionDocument {
    pub max_age_s: Option<u64>,
    pub max_messages: Option<u64>,
}

/// `PUT /v1/queues/{ns}/{queue}`: the configuration now stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfigured {
    pub queue: String,
    #[serde(flatten)]
    pub config: QueueConfigDocument,
}

/// `GET /v1/queues/{ns}/{queue}`: configuration, messages stored, and each consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub queue: String,
    pub config: QueueConfigDocument,
    pub messages: u64,
    pub groups: Vec<GroupInfo>,
}

/// One queue of `GET /v1/queues/{ns}`: its name and the messages it stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSummary {
    pub queue: String,
    pub messages: u64,
}

/// One consumer group: messages it has still to settle, and its dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub pending: u64,
    pub dead: u64,
}

/// `POST .../messages`: the id of each published message, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub ids: Vec<String>,
}

/// One message handed to a consumer; `receipt` settles it (ack or nack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PulledMessage {
    pub id: String,
    pub receipt: String,
    pub body: Value,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub key: Option<String>,
}

/// `POST .../pull`: the messages leased to the caller (empty when none came in `wait_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pulled {
    pub messages: Vec<PulledMessage>,
}

/// `POST .../ack`: how many receipts settled, and those that no longer held a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    pub acked: usize,
    pub stale: Vec<String>,
}

/// `POST .../nack`: as [`Acked`], for messages handed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nacked {
    pub nacked: usize,
    pub stale: Vec<String>,
}

/// A message that used up its deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeadLetter {
    pub id: String,
    pub body: Value,
    pub attempts: u32,
    pub last_error: String,
    pub key: Option<String>,
    /// RFC 3339, milliseconds, UTC.
    pub dead_at: String,
}

/// `GET .../dlq`: a group's dead letters, oldest first; `next` is the cursor for `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDeadLetterPage {
    pub messages: Vec<QueueDeadLetter>,
    pub next: Option<String>,
}

/// `POST .../dlq/replay`: how many dead letters went back to the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLettersReplayed {
    pub replayed: u64,
}

/// `POST .../dlq/purge`: how many dead letters were dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLettersPurged {
    pub purged: u64,
}
