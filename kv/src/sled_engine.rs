//! The embedded, durable engine on sled 0.34.
//!
//! Four trees, each keyed so that a namespace's records sort together:
//! - `data`: `ns 0x00 key` → encoded entry ([`encode_entry`]);
//! - `log`: `ns 0x00 seq(u64 BE)` → commit time (u64 BE) followed by the event JSON;
//! - `meta`: `head 0x00 ns` → newest log offset, `tail 0x00 ns` → newest pruned offset;
//! - `ttl`: `expires_at(u64 BE) ns 0x00 key` → empty, the sweep order of TTL'd entries.
//!
//! Namespaces and keys cannot contain control characters, so 0x00 separates them safely. A
//! commit is one sled transaction over all four trees, so data and event land together or not
//! at all; [`GroupCommit`] then makes it durable before the caller is answered.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ferrobase_core::event::{ChangeLogError, EventPage};
use ferrobase_core::{ChangeLog, Clock, Event, EventQuery, Namespace};
use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

use crate::engine::{LogNotifier, wait_beyond};
use crate::group_commit::GroupCommit;
use crate::memory::MAX_SCAN;
use crate::sled_batch::TxnBatcher;
use crate::txn::{self, TxnFailure, TxnStore};
use crate::{
    Entry, EntryMeta, Key, KvEngine, KvError, KvLimits, ListPage, ListQuery, Retention, Txn,
    TxnOutcome,
};

const ENTRY_FORMAT: u8 = 1;
const HEAD: &[u8] = b"head\0";
const TAIL: &[u8] = b"tail\0";
const RECORD_VERSION: &[u8] = b"rver\0";
/// Most log events one prune transaction removes, so pruning never holds a huge transaction.
const PRUNE_BATCH: usize = 1000;

/// The sled database and its four trees; cheap to clone (sled handles are reference counted).
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub(crate) db: sled::Db,
    pub(crate) data: sled::Tree,
    pub(crate) log: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) ttl: sled::Tree,
}

/// The sled-backed engine.
#[derive(Debug)]
pub struct SledEngine {
    db: sled::Db,
    data: sled::Tree,
    log: sled::Tree,
    meta: sled::Tree,
    ttl: sled::Tree,
    clock: Arc<dyn Clock>,
    limits: KvLimits,
    /// Durability for writes outside the batcher (TTL sweeps).
    committer: GroupCommit,
    /// Client commits: batched into shared transactions and flushes.
    batcher: TxnBatcher,
    notifier: Arc<LogNotifier>,
}

impl SledEngine {
    /// Opens (or creates) the database in `dir`. Must run inside a tokio runtime, which hosts
    /// the group committer.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>, limits: KvLimits) -> Result<Self, KvError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let trees = Trees {
            data: db.open_tree("data")?,
            log: db.open_tree("log")?,
            meta: db.open_tree("meta")?,
            ttl: db.open_tree("ttl")?,
            db: db.clone(),
        };
        let notifier = Arc::new(LogNotifier::new());
        Ok(SledEngine {
            batcher: TxnBatcher::start(trees.clone(), clock.clone(), notifier.clone()),
            data: trees.data,
            log: trees.log,
            meta: trees.meta,
            ttl: trees.ttl,
            committer: GroupCommit::start(db.clone()),
            db,
            clock,
            limits,
            notifier,
        })
    }

    /// The group committer, for its counters.
    pub fn group_commit(&self) -> &GroupCommit {
        &self.committer
    }

    fn read_u64(&self, tree: &sled::Tree, key: &[u8]) -> Result<u64, KvError> {
        Ok(tree.get(key)?.map_or(0, |bytes| decode_u64(&bytes)))
    }

    /// Runs `body` over a transactional view of the namespace, retrying on conflicts.
    fn transact<T>(
        &self,
        ns: &Namespace,
        body: impl Fn(&mut SledStore<'_>) -> Result<T, TxnFailure<UnabortableTransactionError>>,
    ) -> Result<T, KvError> {
        let result =
            (&self.data, &self.log, &self.meta, &self.ttl).transaction(|(data, log, meta, ttl)| {
                let mut store = SledStore {
                    data,
                    log,
                    meta,
                    ttl,
                    ns,
                };
                body(&mut store).map_err(|failure| match failure {
                    TxnFailure::Check(error) => ConflictableTransactionError::Abort(error),
                    TxnFailure::Store(error) => error.into(),
                })
            });
        match result {
            Ok(value) => Ok(value),
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Storage(error)) => Err(error.into()),
        }
    }
}

/// The [`TxnStore`] of one namespace inside a sled transaction.
pub(crate) struct SledStore<'a> {
    pub(crate) data: &'a TransactionalTree,
    pub(crate) log: &'a TransactionalTree,
    pub(crate) meta: &'a TransactionalTree,
    pub(crate) ttl: &'a TransactionalTree,
    pub(crate) ns: &'a Namespace,
}

impl TxnStore for SledStore<'_> {
    type Error = UnabortableTransactionError;

    fn read(&mut self, key: &Key) -> Result<Option<Entry>, Self::Error> {
        let raw = self.data.get(data_key(self.ns, key))?;
        Ok(raw.and_then(|raw| decode_entry(&raw)))
    }

    fn write(
        &mut self,
        key: &Key,
        entry: Option<&Entry>,
        previous: Option<&Entry>,
    ) -> Result<(), Self::Error> {
        if let Some(at) = previous.and_then(|p| p.meta.expires_at_ms) {
            self.ttl.remove(ttl_key(at, self.ns, key))?;
        }
        match entry {
            Some(entry) => {
                if let Some(at) = entry.meta.expires_at_ms {
                    self.ttl.insert(ttl_key(at, self.ns, key), &[][..])?;
                }
                // Refused before this write; the failed sled transaction keeps none of the others.
                let raw = encode_entry(entry)
                    .map_err(|error| sled::Error::Unsupported(error.to_string()))?;
                self.data.insert(data_key(self.ns, key), raw)?;
            }
            None => {
                self.data.remove(data_key(self.ns, key))?;
            }
        }
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, Self::Error> {
        let key = meta_key(HEAD, self.ns);
        let next = self.meta.get(&key)?.map_or(0, |bytes| decode_u64(&bytes)) + 1;
        self.meta.insert(key, &next.to_be_bytes())?;
        Ok(next)
    }

    fn next_record_version(&mut self) -> Result<u64, Self::Error> {
        let key = meta_key(RECORD_VERSION, self.ns);
        let next = self.meta.get(&key)?.map_or(0, |bytes| decode_u64(&bytes)) + 1;
        self.meta.insert(key, &next.to_be_bytes())?;
        Ok(next)
    }

    fn append(&mut self, event: &Event) -> Result<(), Self::Error> {
        let mut value = event.time_ms().unwrap_or(0).to_be_bytes().to_vec();
        // Serialising our own envelope cannot fail: every field is a plain JSON value.
        serde_json::to_writer(&mut value, event).expect("event serialises");
        self.log
            .insert(log_key(self.ns, event.ferrobaseseq), value)?;
        Ok(())
    }
}

#[async_trait]
impl KvEngine for SledEngine {
    async fn get(&self, ns: &Namespace, key: &Key) -> Result<Option<Entry>, KvError> {
        let now = self.clock.now_ms();
        let raw = self.data.get(data_key(ns, key))?;
        Ok(raw
            .and_then(|raw| decode_entry(&raw))
            .filter(|entry| !entry.meta.is_expired(now)))
    }

    async fn list(&self, ns: &Namespace, query: &ListQuery) -> Result<ListPage, KvError> {
        let now = self.clock.now_ms();
        let ns_prefix = ns_prefix(ns);
        let mut full_prefix = ns_prefix.clone();
        full_prefix.extend_from_slice(query.prefix.as_bytes());
        let start = match &query.after {
            Some(after) if after.as_str() >= query.prefix.as_str() => {
                let mut start = ns_prefix.clone();
                start.extend_from_slice(after.as_bytes());
                Bound::Excluded(start)
            }
            _ => Bound::Included(full_prefix.clone()),
        };
        let mut entries = Vec::new();
        let mut more = false;
        for item in self.data.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (raw_key, raw_value) = item?;
            if !raw_key.starts_with(&full_prefix) {
                break;
            }
            let Some(entry) = decode_entry(&raw_value) else {
                continue;
            };
            if entry.meta.is_expired(now) {
                continue;
            }
            let key = Key::from_stored(&raw_key[ns_prefix.len()..])?;
            if !query.includes(&key) {
                continue;
            }
            if entries.len() == query.limit {
                more = true;
                break;
            }
            entries.push((key, entry.meta));
        }
        let next = more
            .then(|| entries.last().map(|(key, _)| key.as_str().to_owned()))
            .flatten();
        Ok(ListPage { entries, next })
    }

    async fn commit(&self, ns: &Namespace, txn: Txn) -> Result<TxnOutcome, KvError> {
        txn.validate(&self.limits)?;
        self.batcher.commit(ns, txn).await
    }

    async fn expire_due(&self, limit: usize) -> Result<usize, KvError> {
        let now = self.clock.now_ms();
        let mut due = Vec::new();
        for item in self.ttl.iter() {
            let (raw, _) = item?;
            let Some((at, ns, key)) = parse_ttl_key(&raw) else {
                continue;
            };
            if at > now || due.len() == limit {
                break;
            }
            due.push((ns, key));
        }
        let mut removed = 0;
        for (ns, key) in &due {
            if self.transact(ns, |store| Ok(txn::expire(store, ns, key, now)?))? {
                removed += 1;
            }
        }
        if removed > 0 {
            self.committer.durable().await?;
            self.notifier.notify();
        }
        Ok(removed)
    }

    async fn prune_log(&self, retention: &Retention) -> Result<u64, KvError> {
        let now = self.clock.now_ms();
        let oldest_kept_ms = retention
            .max_age
            .map(|age| now.saturating_sub(age.as_millis() as u64));
        let mut dropped = 0;
        for item in self.meta.scan_prefix(HEAD) {
            let (raw, head) = item?;
            let Some(ns) = std::str::from_utf8(&raw[HEAD.len()..])
                .ok()
                .and_then(|name| Namespace::parse_stored(name).ok())
            else {
                continue;
            };
            let head = decode_u64(&head);
            loop {
                let tail = self.read_u64(&self.meta, &meta_key(TAIL, &ns))?;
                let mut new_tail = tail;
                for item in self.log.range(log_key(&ns, tail + 1)..=log_key(&ns, head)) {
                    let (raw_key, value) = item?;
                    let seq = decode_u64(&raw_key[raw_key.len() - 8..]);
                    let retained = head - seq + 1;
                    let over_count = retention.max_events.is_some_and(|max| retained > max);
                    let too_old =
                        oldest_kept_ms.is_some_and(|cutoff| decode_u64(&value[..8]) < cutoff);
                    if !(over_count || too_old) || (new_tail - tail) as usize == PRUNE_BATCH {
                        break;
                    }
                    new_tail = seq;
                }
                if new_tail == tail {
                    break;
                }
                (&self.log, &self.meta)
                    .transaction(|(log, meta)| {
                        for seq in tail + 1..=new_tail {
                            log.remove(log_key(&ns, seq))?;
                        }
                        meta.insert(meta_key(TAIL, &ns), &new_tail.to_be_bytes())?;
                        Ok::<_, ConflictableTransactionError<KvError>>(())
                    })
                    .map_err(|error| KvError::Storage(format!("pruning failed: {error}")))?;
                dropped += new_tail - tail;
            }
        }
        Ok(dropped)
    }

    async fn flush(&self) -> Result<(), KvError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

#[async_trait]
impl ChangeLog for SledEngine {
    async fn read(&self, ns: &Namespace, query: &EventQuery) -> Result<EventPage, ChangeLogError> {
        let unavailable = |error: sled::Error| ChangeLogError(error.to_string());
        let mut page = EventPage {
            events: Vec::new(),
            next_after: query.after,
        };
        let range = log_key(ns, query.after.saturating_add(1))..=log_key(ns, u64::MAX);
        for item in self.log.range(range).take(MAX_SCAN) {
            let (raw_key, value) = item.map_err(unavailable)?;
            page.next_after = decode_u64(&raw_key[raw_key.len() - 8..]);
            let event: Event = serde_json::from_slice(&value[8..])
                .map_err(|error| ChangeLogError(format!("corrupt event: {error}")))?;
            if query.matches(event.event_type) {
                page.events.push(event);
                if page.events.len() >= query.limit {
                    break;
                }
            }
        }
        Ok(page)
    }

    async fn head(&self, ns: &Namespace) -> Result<u64, ChangeLogError> {
        self.read_u64(&self.meta, &meta_key(HEAD, ns))
            .map_err(|e| ChangeLogError(e.to_string()))
    }

    async fn wait_beyond(&self, ns: &Namespace, after: u64) {
        wait_beyond(self, &self.notifier, ns, after).await
    }

    async fn retained(&self) -> Result<u64, ChangeLogError> {
        let mut total = 0;
        for item in self.meta.scan_prefix(HEAD) {
            let (raw, head) = item.map_err(|e| ChangeLogError(e.to_string()))?;
            let mut tail_key = TAIL.to_vec();
            tail_key.extend_from_slice(&raw[HEAD.len()..]);
            let tail = self
                .read_u64(&self.meta, &tail_key)
                .map_err(|e| ChangeLogError(e.to_string()))?;
            total += decode_u64(&head).saturating_sub(tail);
        }
        Ok(total)
    }
}

fn ns_prefix(ns: &Namespace) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(ns.as_str().len() + 1);
    prefix.extend_from_slice(ns.as_str().as_bytes());
    prefix.push(0);
    prefix
}

fn data_key(ns: &Namespace, key: &Key) -> Vec<u8> {
    let mut raw = ns_prefix(ns);
    raw.extend_from_slice(key.as_str().as_bytes());
    raw
}

fn log_key(ns: &Namespace, seq: u64) -> Vec<u8> {
    let mut raw = ns_prefix(ns);
    raw.extend_from_slice(&seq.to_be_bytes());
    raw
}

fn meta_key(kind: &[u8], ns: &Namespace) -> Vec<u8> {
    let mut raw = kind.to_vec();
    raw.extend_from_slice(ns.as_str().as_bytes());
    raw
}

fn ttl_key(at: u64, ns: &Namespace, key: &Key) -> Vec<u8> {
    let mut raw = at.to_be_bytes().to_vec();
    raw.extend_from_slice(&data_key(ns, key));
    raw
}

fn parse_ttl_key(raw: &[u8]) -> Option<(u64, Namespace, Key)> {
    let at = decode_u64(raw.get(..8)?);
    let rest = std::str::from_utf8(&raw[8..]).ok()?;
    let (ns, key) = rest.split_once('\0')?;
    let ns = Namespace::parse_stored(ns).ok()?;
    Some((at, ns, Key::from_stored(key.as_bytes()).ok()?))
}

fn decode_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let len = bytes.len().min(8);
    buf[8 - len..].copy_from_slice(&bytes[..len]);
    u64::from_be_bytes(buf)
}

/// Entry layout: format(1) version(8) updated_at(8) expires_at(8, 0 = none)
/// content_type_len(2) content_type value.
///
/// A content type whose length does not fit the 16-bit field is refused, never truncated
/// (`Txn::validate` allows far less; this keeps the codec sound on its own).
#[doc(hidden)] // public for the fuzz harness (fuzz/fuzz_targets/kv_entry.rs)
pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>, KvError> {
    let content_type = entry.meta.content_type.as_bytes();
    let ct_len = u16::try_from(content_type.len()).map_err(|_| {
        KvError::InvalidArgument(format!(
            "a content type of {} bytes does not fit the entry format (at most {})",
            content_type.len(),
            u16::MAX
        ))
    })?;
    let mut raw = Vec::with_capacity(27 + content_type.len() + entry.value.len());
    raw.push(ENTRY_FORMAT);
    raw.extend_from_slice(&entry.meta.version.to_be_bytes());
    raw.extend_from_slice(&entry.meta.updated_at_ms.to_be_bytes());
    raw.extend_from_slice(&entry.meta.expires_at_ms.unwrap_or(0).to_be_bytes());
    raw.extend_from_slice(&ct_len.to_be_bytes());
    raw.extend_from_slice(content_type);
    raw.extend_from_slice(&entry.value);
    Ok(raw)
}

#[doc(hidden)] // public for the fuzz harness
pub fn decode_entry(raw: &[u8]) -> Option<Entry> {
    if raw.first() != Some(&ENTRY_FORMAT) || raw.len() < 27 {
        return None;
    }
    let version = decode_u64(&raw[1..9]);
    let updated_at_ms = decode_u64(&raw[9..17]);
    let expires_at_ms = Some(decode_u64(&raw[17..25])).filter(|&at| at != 0);
    let ct_len = u16::from_be_bytes([raw[25], raw[26]]) as usize;
    let content_type = std::str::from_utf8(raw.get(27..27 + ct_len)?)
        .ok()?
        .to_owned();
    let value = Bytes::copy_from_slice(&raw[27 + ct_len..]);
    Some(Entry {
        meta: EntryMeta {
            version,
            content_type,
            size: value.len() as u64,
            updated_at_ms,
            expires_at_ms,
        },
        value,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(content_type: String, value: Vec<u8>, expires_at_ms: Option<u64>) -> Entry {
        Entry {
            meta: EntryMeta {
                version: 7,
                size: value.len() as u64,
                content_type,
                updated_at_ms: 1_700_000_000_000,
                expires_at_ms,
            },
            value: Bytes::from(value),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every content-type length the 16-bit field can hold reads back exactly.
        #[test]
        fn entry_round_trips(
            ct_len in 0usize..=u16::MAX as usize,
            value in proptest::collection::vec(any::<u8>(), 0..64),
            expires in proptest::option::of(1u64..),
        ) {
            let original = entry("a".repeat(ct_len), value, expires);
            let raw = encode_entry(&original).expect("fits");
            prop_assert_eq!(decode_entry(&raw), Some(original));
        }

        /// A content type past the field's range is refused, never wrapped.
        #[test]
        fn oversized_content_type_is_refused(extra in 1usize..70_000) {
            let original = entry("a".repeat(u16::MAX as usize + extra), vec![1], None);
            prop_assert!(encode_entry(&original).is_err());
        }
    }
}
