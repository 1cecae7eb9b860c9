//! Durable records with an outbox: how services other than KV keep their state and emit their
//! change events atomically.
//!
//! Object metadata, queue bookkeeping and the like are small records; each
//! [`RecordStore::commit`] writes some records and appends some events to the namespace's change
//! log in one atomic, durable step, so a change and its event can never be separated, also
//! across a crash. The KV crate implements this trait over its engines; storage and queue
//! crates depend only on the trait (docs/architecture.md: they may depend on `core` alone).
//!
//! Record keys live in a space of their own: they never collide with or show up among the
//! namespace's KV keys, and writing them produces no KV events — only the drafts given.

use async_trait::async_trait;
use bytes::Bytes;

use crate::event::Causation;
use crate::{EventType, Namespace};

/// Most conditions plus writes plus events one [`RecordCommit`] may carry; every
/// [`RecordStore`] accepts at least this many, and refuses more with [`RecordError::Invalid`].
/// Writers that batch records size their batches from it.
pub const MAX_COMMIT_OPERATIONS: usize = 128;

/// An event to append: the store assigns its id, offset and time.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub event_type: EventType,
    pub subject: String,
    pub data: serde_json::Value,
    pub causation: Causation,
}

/// A stored record and its version (the log offset of the commit that wrote it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: Bytes,
    pub version: u64,
}

/// What a commit requires of a record before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCondition {
    Absent,
    Exists,
    Version(u64),
}

/// One atomic step: conditions, record writes (`None` deletes) and events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordCommit {
    pub conditions: Vec<(String, RecordCondition)>,
    pub writes: Vec<(String, Option<Bytes>)>,
    pub events: Vec<EventDraft>,
}

impl RecordCommit {
    /// What the commit counts against [`MAX_COMMIT_OPERATIONS`].
    pub fn operations(&self) -> usize {
        self.conditions.len() + self.writes.len() + self.events.len()
    }
}

/// What a commit did: the version of each written record (0 for deletes) and the offset of
/// each appended event, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    pub versions: Vec<u64>,
    pub event_offsets: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A condition did not hold; nothing was written.
    #[error("condition failed for record {key:?}: {reason}")]
    ConditionFailed { key: String, reason: String },
    #[error("invalid record operation: {0}")]
    Invalid(String),
    #[error("record store failure: {0}")]
    Storage(String),
}

/// Records and outbox of every namespace.
#[async_trait]
pub trait RecordStore: Send + Sync + std::fmt::Debug {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Record>, RecordError>;

    /// Records whose key starts with `prefix`, after `after`, in key order, at most `limit`.
    async fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, RecordError>;

    /// Applies `commit` all or nothing; returns once it is durable.
    async fn commit(
        &self,
        ns: &Namespace,
        commit: RecordCommit,
    ) -> Result<RecordOutcome, RecordError>;
}
