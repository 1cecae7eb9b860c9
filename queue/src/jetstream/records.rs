//! What the engine keeps in JetStream KV buckets, and compare-and-set access to them.
//!
//! | bucket | key | value |
//! |---|---|---|
//! | `{prefix}_queues` | `{ns}.{queue}` | [`QueueRecord`]: configuration, groups, floor |
//! | `{prefix}_groups` | `{ns}.{queue}.{group}` | [`GroupState`] (binary, see `group_codec`): cursor, pending ([`Pending`]), dead ids |
//! | `{prefix}_dead` | `{ns}.{queue}.{group}.{id}` | [`StoredDead`]: a dead letter with its body |
//! | `{prefix}_dedup` | `{ns}.{queue}.{dedup id}` | [`DedupEntry`]: message id, publish time |
//!
//! Every read-modify-write goes through [`read`] and [`write()`]: the write succeeds only if the
//! entry is still at the revision that was read, so several nodes sharing one NATS server
//! never lose each other's updates; a conflict makes the caller read again and redo its step.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use async_nats::jetstream::kv::{Operation, Store, UpdateErrorKind};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::QueueError;
use crate::delivery::{Pending, PendingStore};
use crate::embedded::StoredConfig;

pub(super) fn storage(what: &str, error: impl std::fmt::Display) -> QueueError {
    QueueError::Storage(format!("{what}: {error}"))
}

/// An entry as read: its value (`None` when absent or deleted) and the revision to write at
/// (0 when the key never existed).
#[derive(Debug, Clone)]
pub(super) struct Versioned {
    pub value: Option<Bytes>,
    pub revision: u64,
}

pub(super) async fn read(kv: &Store, key: &str) -> Result<Versioned, QueueError> {
    let entry = kv.entry(key).await.map_err(|e| storage("kv read", e))?;
    Ok(match entry {
        Some(entry) if entry.operation == Operation::Put => Versioned {
            value: Some(entry.value),
            revision: entry.revision,
        },
        Some(entry) => Versioned {
            value: None,
            revision: entry.revision,
        },
        None => Versioned {
            value: None,
            revision: 0,
        },
    })
}

/// Whether a conditional write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Stored; the entry's new revision.
    At(u64),
    /// Someone wrote the entry since it was read; nothing was stored.
    Conflict,
}

/// Writes `value` if the entry is still at `revision` (0: if it does not exist).
pub(super) async fn write(
    kv: &Store,
    key: &str,
    value: Bytes,
    revision: u64,
) -> Result<Written, QueueError> {
    match kv.update(key, value, revision).await {
        Ok(revision) => Ok(Written::At(revision)),
        Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => Ok(Written::Conflict),
        Err(error) => Err(storage("kv write", error)),
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<Bytes, QueueError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| storage("encoding a record", e))
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T, QueueError> {
    serde_json::from_slice(raw).map_err(|e| storage("corrupt record", e))
}

/// A queue: its configuration, its groups (so that maintenance finds them) and its floor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct QueueRecord {
    /// The namespace and queue names, for maintenance to find them from the key.
    pub ns: String,
    pub queue: String,
    pub config: StoredConfig,
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// Every message id below this was dropped by retention or reclaimed.
    #[serde(default)]
    pub floor: u64,
}

/// A consumer group: one entry, updated with compare-and-set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GroupState {
    /// The next message id the group has not looked at.
    pub cursor: u64,
    pub pending: BTreeMap<u64, Pending>,
    /// Pending ids put back from the dead-letter list: their body is read from the dead letter
    /// when the stream no longer has it, and retention does not apply to them.
    pub replayed: BTreeSet<u64>,
    /// Dead-lettered ids, with the lease number they reached (so receipts are never reused).
    pub dead: BTreeMap<u64, u64>,
}

/// The group's pending entries as the delivery rules see them. A finished entry is no longer
/// replayed.
impl PendingStore for GroupState {
    type Error = Infallible;

    fn get(&mut self, id: u64) -> Result<Option<Pending>, Infallible> {
        Ok(self.pending.get(&id).cloned())
    }

    fn put(&mut self, id: u64, pending: &Pending, _: Option<&Pending>) -> Result<(), Infallible> {
        self.pending.insert(id, pending.clone());
        Ok(())
    }

    fn remove(&mut self, id: u64, _: &Pending) -> Result<(), Infallible> {
        self.pending.remove(&id);
        self.replayed.remove(&id);
        Ok(())
    }

    fn key_busy(&mut self, key: &str) -> Result<bool, Infallible> {
        Ok(self.pending.values().any(|p| p.key.as_deref() == Some(key)))
    }

    fn first_of_key(&mut self, key: &str) -> Result<Option<(u64, Pending)>, Infallible> {
        // Ids ascend, so the first match is the key's next message.
        Ok(self
            .pending
            .iter()
            .find(|(_, p)| p.key.as_deref() == Some(key))
            .map(|(id, p)| (*id, p.clone())))
    }
}

/// The value of a step on an in-memory group entry, which cannot fail.
pub(super) fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// A dead letter, with its own copy of the body (the stream may be purged below it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DeadMeta {
    pub dead_at: u64,
    pub published_at: u64,
    pub attempts: u32,
    pub key: Option<String>,
    pub last_error: String,
}

/// Encoded as a u32 length, the [`DeadMeta`] JSON, then the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredDead {
    pub meta: DeadMeta,
    pub body: Bytes,
}

impl StoredDead {
    pub(super) fn encode(&self) -> Result<Bytes, QueueError> {
        let meta = to_json(&self.meta)?;
        let mut out = BytesMut::with_capacity(4 + meta.len() + self.body.len());
        let meta_len = u32::try_from(meta.len())
            .map_err(|_| QueueError::Storage("a dead letter's metadata exceeds 4 GiB".into()))?;
        out.put_u32(meta_len);
        out.put_slice(&meta);
        out.put_slice(&self.body);
        Ok(out.freeze())
    }

    pub(super) fn decode(raw: &Bytes) -> Result<Self, QueueError> {
        let corrupt = || QueueError::Storage("corrupt dead letter".into());
        let len = raw
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(corrupt)?;
        let meta = raw.get(4..4 + len).ok_or_else(corrupt)?;
        Ok(StoredDead {
            meta: from_json(meta)?,
            body: raw.slice(4 + len..),
        })
    }
}

/// The message a dedup id published, and when (the engine's clock).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct DedupEntry {
    pub id: u64,
    pub at: u64,
}
