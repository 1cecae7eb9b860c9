//! The in-memory engine: the same semantics as the sled engine, nothing on disk. Used by tests
//! and by servers started with `kv.engine = "memory"`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ferrobase_core::event::{ChangeLogError, EventPage};
use ferrobase_core::{ChangeLog, Clock, Event, EventQuery, Namespace};

use crate::engine::{LogNotifier, wait_beyond};
use crate::txn::{self, TxnStore};
use crate::{
    Entry, Key, KvEngine, KvError, KvLimits, ListPage, ListQuery, Retention, Txn, TxnOutcome,
};

/// Keys, logs and the TTL index of every namespace, behind one lock.
#[derive(Debug, Default)]
struct State {
    data: HashMap<Namespace, BTreeMap<Key, Entry>>,
    logs: HashMap<Namespace, NamespaceLog>,
    /// (expires_at_ms, namespace, key) of every entry with a TTL.
    ttl_index: BTreeSet<(u64, Namespace, Key)>,
}

#[derive(Debug, Default)]
struct NamespaceLog {
    head: u64,
    record_version: u64,
    events: VecDeque<Event>,
}

/// An engine that keeps everything in memory.
#[derive(Debug)]
pub struct MemoryEngine {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    limits: KvLimits,
    notifier: LogNotifier,
}

impl MemoryEngine {
    pub fn new(clock: Arc<dyn Clock>, limits: KvLimits) -> Self {
        MemoryEngine {
            state: Mutex::default(),
            clock,
            limits,
            notifier: LogNotifier::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied transaction behind
        // (checks run before writes, and writes cannot fail), so the state stays usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The [`TxnStore`] of one namespace inside the held lock.
struct NamespaceStore<'a> {
    state: &'a mut State,
    ns: &'a Namespace,
}

impl TxnStore for NamespaceStore<'_> {
    type Error = Infallible;

    fn read(&mut self, key: &Key) -> Result<Option<Entry>, Infallible> {
        Ok(self
            .state
            .data
            .get(self.ns)
            .and_then(|keys| keys.get(key))
            .cloned())
    }

    fn write(
        &mut self,
        key: &Key,
        entry: Option<&Entry>,
        previous: Option<&Entry>,
    ) -> Result<(), Infallible> {
        if let Some(at) = previous.and_then(|p| p.meta.expires_at_ms) {
            self.state
                .ttl_index
                .remove(&(at, self.ns.clone(), key.clone()));
        }
        let keys = self.state.data.entry(self.ns.clone()).or_default();
        match entry {
            Some(entry) => {
                if let Some(at) = entry.meta.expires_at_ms {
                    self.state
                        .ttl_index
                        .insert((at, self.ns.clone(), key.clone()));
                }
                keys.insert(key.clone(), entry.clone());
            }
            None => {
                keys.remove(key);
            }
        }
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, Infallible> {
        let log = self.state.logs.entry(self.ns.clone()).or_default();
        log.head += 1;
        Ok(log.head)
    }

    fn next_record_version(&mut self) -> Result<u64, Infallible> {
        let log = self.state.logs.entry(self.ns.clone()).or_default();
        log.record_version += 1;
        Ok(log.record_version)
    }

    fn append(&mut self, event: &Event) -> Result<(), Infallible> {
        self.state
            .logs
            .entry(self.ns.clone())
            .or_default()
            .events
            .push_back(event.clone());
        Ok(())
    }
}

fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

#[async_trait]
impl KvEngine for MemoryEngine {
    async fn get(&self, ns: &Namespace, key: &Key) -> Result<Option<Entry>, KvError> {
        let now = self.clock.now_ms();
        let state = self.lock();
        Ok(state
            .data
            .get(ns)
            .and_then(|keys| keys.get(key))
            .filter(|entry| !entry.meta.is_expired(now))
            .cloned())
    }

    async fn list(&self, ns: &Namespace, query: &ListQuery) -> Result<ListPage, KvError> {
        let now = self.clock.now_ms();
        let state = self.lock();
        let Some(keys) = state.data.get(ns) else {
            return Ok(ListPage {
                entries: Vec::new(),
                next: None,
            });
        };
        let start = match &query.after {
            Some(after) if after.as_str() >= query.prefix.as_str() => {
                Bound::Excluded(after.as_str())
            }
            _ => Bound::Included(query.prefix.as_str()),
        };
        let mut entries = Vec::new();
        let mut more = false;
        for (key, entry) in keys
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.as_str().starts_with(&query.prefix))
            .filter(|(key, _)| query.includes(key))
            .filter(|(_, entry)| !entry.meta.is_expired(now))
        {
            if entries.len() == query.limit {
                more = true;
                break;
            }
            entries.push((key.clone(), entry.meta.clone()));
        }
        let next = more
            .then(|| entries.last().map(|(key, _)| key.as_str().to_owned()))
            .flatten();
        Ok(ListPage { entries, next })
    }

    async fn commit(&self, ns: &Namespace, txn: Txn) -> Result<TxnOutcome, KvError> {
        txn.validate(&self.limits)?;
        let now = self.clock.now_ms();
        let outcome = {
            let mut state = self.lock();
            let mut store = NamespaceStore {
                state: &mut state,
                ns,
            };
            match txn::apply(&mut store, ns, &txn, now) {
                Ok(outcome) => outcome,
                Err(txn::TxnFailure::Check(error)) => return Err(error),
                Err(txn::TxnFailure::Store(never)) => match never {},
            }
        };
        self.notifier.notify();
        Ok(outcome)
    }

    async fn expire_due(&self, limit: usize) -> Result<usize, KvError> {
        let now = self.clock.now_ms();
        let removed = {
            let mut state = self.lock();
            let due: Vec<(u64, Namespace, Key)> = state
                .ttl_index
                .iter()
                .take_while(|(at, _, _)| *at <= now)
                .take(limit)
                .cloned()
                .collect();
            let mut removed = 0;
            for (_, ns, key) in due {
                let mut store = NamespaceStore {
                    state: &mut state,
                    ns: &ns,
                };
                if infallible(txn::expire(&mut store, &ns, &key, now)) {
                    removed += 1;
                }
            }
            removed
        };
        if removed > 0 {
            self.notifier.notify();
        }
        Ok(removed)
    }

    async fn prune_log(&self, retention: &Retention) -> Result<u64, KvError> {
        let now = self.clock.now_ms();
        let oldest_kept_ms = retention
            .max_age
            .map(|age| now.saturating_sub(age.as_millis() as u64));
        let mut state = self.lock();
        let mut dropped = 0;
        for log in state.logs.values_mut() {
            while let Some(oldest) = log.events.front() {
                let over_count = retention
                    .max_events
                    .is_some_and(|max| log.events.len() as u64 > max);
                let too_old = oldest_kept_ms
                    .is_some_and(|cutoff| oldest.time_ms().is_some_and(|t| t < cutoff));
                if !(over_count || too_old) {
                    break;
                }
                log.events.pop_front();
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    async fn flush(&self) -> Result<(), KvError> {
        Ok(())
    }
}

#[async_trait]
impl ChangeLog for MemoryEngine {
    async fn read(&self, ns: &Namespace, query: &EventQuery) -> Result<EventPage, ChangeLogError> {
        let state = self.lock();
        let mut page = EventPage {
            events: Vec::new(),
            next_after: query.after,
        };
        let Some(log) = state.logs.get(ns) else {
            return Ok(page);
        };
        // Offsets are contiguous in memory, so the first wanted event is found by arithmetic.
        let first_seq = log.events.front().map_or(log.head + 1, |e| e.ferrobaseseq);
        let skip = (query.after + 1).saturating_sub(first_seq) as usize;
        for event in log.events.iter().skip(skip).take(MAX_SCAN) {
            page.next_after = event.ferrobaseseq;
            if query.matches(event.event_type) {
                page.events.push(event.clone());
                if page.events.len() >= query.limit {
                    break;
                }
            }
        }
        Ok(page)
    }

    async fn head(&self, ns: &Namespace) -> Result<u64, ChangeLogError> {
        Ok(self.lock().logs.get(ns).map_or(0, |log| log.head))
    }

    async fn wait_beyond(&self, ns: &Namespace, after: u64) {
        wait_beyond(self, &self.notifier, ns, after).await
    }

    async fn retained(&self) -> Result<u64, ChangeLogError> {
        Ok(self
            .lock()
            .logs
            .values()
            .map(|log| log.events.len() as u64)
            .sum())
    }
}

/// Most log entries one read scans (bounds the work of a read with a sparse type filter).
pub(crate) const MAX_SCAN: usize = 10_000;
