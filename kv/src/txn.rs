//! Transaction semantics, written once for every engine.
//!
//! An engine supplies a [`TxnStore`]: reads and writes of entries inside its atomic unit, the
//! namespace's next log offset, and appends to the log. [`apply`] then evaluates the checks,
//! retires expired entries, assigns versions and builds the events, so that the sled and
//! in-memory engines cannot drift apart.
//!
//! A transaction whose causation carries a write key (a function's write while it handles an
//! event) also records an idempotency mark, an internal entry kept for [`MARK_LIFETIME`]; a
//! transaction finding its mark already there writes nothing and fails with
//! [`KvError::AlreadyApplied`].

use std::time::Duration;

use ferrobase_core::event::Causation;
use ferrobase_core::{Event, EventType, Namespace};
use serde_json::json;

use crate::{Check, Entry, EntryMeta, Key, KvError, Mutation, MutationResult, Txn, TxnOutcome};

/// Storage operations inside one engine's atomic unit (a sled transaction, a held lock).
pub trait TxnStore {
    type Error;
    /// The stored entry, expired or not.
    fn read(&mut self, key: &Key) -> Result<Option<Entry>, Self::Error>;
    /// Replaces `previous` (as returned by `read`) with `entry`, keeping any TTL index in step.
    fn write(
        &mut self,
        key: &Key,
        entry: Option<&Entry>,
        previous: Option<&Entry>,
    ) -> Result<(), Self::Error>;
    /// Advances the namespace log head and returns the new offset.
    fn next_seq(&mut self) -> Result<u64, Self::Error>;
    /// Advances the namespace's counter of internal-record versions (records write no events,
    /// so they cannot take log offsets without leaving gaps in the log).
    fn next_record_version(&mut self) -> Result<u64, Self::Error>;
    /// Appends an event whose offset came from `next_seq`.
    fn append(&mut self, event: &Event) -> Result<(), Self::Error>;
}

/// Why [`apply`] stopped: a check failed (abort, nothing written) or the store failed.
#[derive(Debug)]
pub enum TxnFailure<E> {
    Check(KvError),
    Store(E),
}

impl<E> From<E> for TxnFailure<E> {
    fn from(error: E) -> Self {
        TxnFailure::Store(error)
    }
}

/// How long an idempotency mark is kept: longer than any retry schedule.
pub const MARK_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The internal key of the idempotency mark of `write_key` (`None` when it cannot be a key).
pub fn mark_key(write_key: &str) -> Option<Key> {
    Key::internal(&format!("idem/{write_key}")).ok()
}

/// Applies `txn` to `store` at time `now_ms`. Checks run before any write, so a failed check
/// leaves the store untouched even for stores without rollback.
pub fn apply<S: TxnStore>(
    store: &mut S,
    ns: &Namespace,
    txn: &Txn,
    now_ms: u64,
) -> Result<TxnOutcome, TxnFailure<S::Error>> {
    let write_key = txn.causation.write_key.as_deref();
    let mark = write_key.and_then(mark_key);
    if let Some(mark) = &mark {
        let applied = store
            .read(mark)?
            .filter(|entry| !entry.meta.is_expired(now_ms));
        if applied.is_some() {
            let write_key = write_key.unwrap_or_default().to_owned();
            return Err(TxnFailure::Check(KvError::AlreadyApplied(write_key)));
        }
    }
    for (index, check) in txn.checks.iter().enumerate() {
        let live = store
            .read(check.key())?
            .filter(|entry| !entry.meta.is_expired(now_ms));
        if let Some(reason) = check_failure(check, live.as_ref()) {
            return Err(TxnFailure::Check(KvError::CheckFailed {
                index,
                key: check.key().as_str().to_owned(),
                reason,
            }));
        }
    }

    let mut results = Vec::with_capacity(txn.mutations.len());
    for mutation in &txn.mutations {
        let key = mutation.key();
        let previous = live_or_retire(store, ns, key, now_ms, &txn.causation)?;
        let result = match mutation {
            Mutation::Put {
                value,
                content_type,
                ttl,
                ..
            } if key.is_internal() => {
                let version = store.next_record_version()?;
                let entry = Entry {
                    value: value.clone(),
                    meta: EntryMeta {
                        version,
                        content_type: content_type.clone(),
                        size: value.len() as u64,
                        updated_at_ms: now_ms,
                        expires_at_ms: ttl.map(|ttl| now_ms + ttl.as_millis() as u64),
                    },
                };
                store.write(key, Some(&entry), previous.as_ref())?;
                MutationResult::Put {
                    key: key.clone(),
                    version,
                }
            }
            Mutation::Delete { .. } if key.is_internal() => {
                if let Some(previous) = &previous {
                    store.write(key, None, Some(previous))?;
                }
                MutationResult::Delete {
                    key: key.clone(),
                    existed: previous.is_some(),
                }
            }
            Mutation::Put {
                value,
                content_type,
                ttl,
                ..
            } => {
                let seq = store.next_seq()?;
                let entry = Entry {
                    value: value.clone(),
                    meta: EntryMeta {
                        version: seq,
                        content_type: content_type.clone(),
                        size: value.len() as u64,
                        updated_at_ms: now_ms,
                        expires_at_ms: ttl.map(|ttl| now_ms + ttl.as_millis() as u64),
                    },
                };
                store.write(key, Some(&entry), previous.as_ref())?;
                let mut data = json!({
                    "key": key.as_str(),
                    "version": seq,
                    "size": entry.meta.size,
                    "content_type": entry.meta.content_type,
                });
                if let Some(at) = entry.meta.expires_at_ms {
                    data["expires_at"] = json!(ferrobase_core::event::rfc3339_millis(at));
                }
                store.append(&event(ns, EventType::KvPut, key, seq, now_ms, txn, data))?;
                MutationResult::Put {
                    key: key.clone(),
                    version: seq,
                }
            }
            Mutation::Delete { .. } => match previous {
                None => MutationResult::Delete {
                    key: key.clone(),
                    existed: false,
                },
                Some(previous) => {
                    let seq = store.next_seq()?;
                    store.write(key, None, Some(&previous))?;
                    let data = json!({
                        "key": key.as_str(),
                        "version": seq,
                        "previous_version": previous.meta.version,
                    });
                    store.append(&event(ns, EventType::KvDelete, key, seq, now_ms, txn, data))?;
                    MutationResult::Delete {
                        key: key.clone(),
                        existed: true,
                    }
                }
            },
        };
        results.push(result);
    }
    let mut event_offsets = Vec::with_capacity(txn.events.len());
    for draft in &txn.events {
        let seq = store.next_seq()?;
        let event = Event::new(
            ns,
            draft.event_type,
            draft.subject.clone(),
            seq,
            now_ms,
            &draft.causation,
            draft.data.clone(),
        );
        store.append(&event)?;
        event_offsets.push(seq);
    }
    if let Some(mark) = &mark {
        let previous = store.read(mark)?;
        let entry = Entry {
            value: bytes::Bytes::from_static(b"1"),
            meta: EntryMeta {
                version: store.next_record_version()?,
                content_type: "text/plain".to_owned(),
                size: 1,
                updated_at_ms: now_ms,
                expires_at_ms: Some(now_ms + MARK_LIFETIME.as_millis() as u64),
            },
        };
        store.write(mark, Some(&entry), previous.as_ref())?;
    }
    Ok(TxnOutcome {
        results,
        event_offsets,
    })
}

/// Removes `key` if its TTL has passed, with its `ferrobase.kv.expire` event. Returns whether
/// it did; a key that was overwritten or deleted since it was indexed is left alone.
pub fn expire<S: TxnStore>(
    store: &mut S,
    ns: &Namespace,
    key: &Key,
    now_ms: u64,
) -> Result<bool, S::Error> {
    match store.read(key)? {
        Some(entry) if entry.meta.is_expired(now_ms) => {
            retire(store, ns, key, &entry, now_ms, &Causation::default())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The live entry under `key`; an expired one is retired first (with its expire event), so
/// that every value's life in the log ends with a delete, an expire or an overwrite.
fn live_or_retire<S: TxnStore>(
    store: &mut S,
    ns: &Namespace,
    key: &Key,
    now_ms: u64,
    causation: &Causation,
) -> Result<Option<Entry>, S::Error> {
    match store.read(key)? {
        Some(entry) if entry.meta.is_expired(now_ms) => {
            retire(store, ns, key, &entry, now_ms, causation)?;
            Ok(None)
        }
        other => Ok(other),
    }
}

fn retire<S: TxnStore>(
    store: &mut S,
    ns: &Namespace,
    key: &Key,
    entry: &Entry,
    now_ms: u64,
    causation: &Causation,
) -> Result<(), S::Error> {
    if key.is_internal() {
        // Records expire silently: their owners emit whatever events they mean.
        return store.write(key, None, Some(entry));
    }
    let seq = store.next_seq()?;
    store.write(key, None, Some(entry))?;
    let data = json!({
        "key": key.as_str(),
        "version": seq,
        "previous_version": entry.meta.version,
    });
    let event = Event::new(
        ns,
        EventType::KvExpire,
        key.as_str(),
        seq,
        now_ms,
        causation,
        data,
    );
    store.append(&event)
}

fn event(
    ns: &Namespace,
    event_type: EventType,
    key: &Key,
    seq: u64,
    now_ms: u64,
    txn: &Txn,
    data: serde_json::Value,
) -> Event {
    Event::new(
        ns,
        event_type,
        key.as_str(),
        seq,
        now_ms,
        &txn.causation,
        data,
    )
}

/// Why `check` does not hold for the live entry, or `None` when it holds.
fn check_failure(check: &Check, live: Option<&Entry>) -> Option<String> {
    match (check, live) {
        (Check::Version { version, .. }, Some(entry)) if entry.meta.version == *version => None,
        (Check::Version { version, .. }, Some(entry)) => Some(format!(
            "expected version {version}, found {}",
            entry.meta.version
        )),
        (Check::Version { version, .. }, None) => Some(format!(
            "expected version {version}, but the key does not exist"
        )),
        (Check::Exists { .. }, Some(_)) => None,
        (Check::Exists { .. }, None) => Some("the key does not exist".to_owned()),
        (Check::Absent { .. }, None) => None,
        (Check::Absent { .. }, Some(entry)) => Some(format!(
            "the key exists with version {}",
            entry.meta.version
        )),
    }
}
