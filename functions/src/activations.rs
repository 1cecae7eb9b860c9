//! Durable activation records.
//!
//! Records are written off the invocation path: a recorder task takes finished records from a
//! bounded channel and commits them in batches (one record-store commit per namespace per
//! batch), each with its `ferrobase.function.completed` event. A batch holds as many records
//! as fit the record store's commit bound ([`MAX_COMMIT_OPERATIONS`]); a refused batch is split,
//! a failed commit retried with backoff, and a full channel makes finishing invocations wait,
//! so no record is dropped. Until a record is committed it is served from memory, so a client
//! can read its activation the moment the invoke answers. [`ActivationStore::flush`] waits
//! until everything recorded so far is committed: the server's shutdown calls it last, so a
//! stop loses no record.
//!
//! Keys order newest first: `act/{inverted id}` is derived from the (monotonic) ULID id, so
//! a prefix scan lists the latest activations first; `actf/{function}/...` indexes them per
//! function. Retention keeps at most a configured number per namespace, younger than an age.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferrobase_core::event::Causation;
use ferrobase_core::records::{
    EventDraft, MAX_COMMIT_OPERATIONS, RecordCommit, RecordError, RecordStore,
};
use ferrobase_core::{EventType, Namespace};
use serde_json::json;
use tokio::sync::{Notify, mpsc};

use crate::FunctionError;
use crate::model::ActivationRecord;

/// Operations one record takes in a commit: the record, its per-function index entry and its
/// completion event.
const OPERATIONS_PER_RECORD: usize = 3;
/// Most records committed in one batch: as many as fit one record-store commit.
const BATCH: usize = MAX_COMMIT_OPERATIONS / OPERATIONS_PER_RECORD;
/// Records waiting for the recorder. When it falls this far behind, finishing invocations wait
/// for room (backpressure) instead of records being dropped.
pub const RECORD_QUEUE_CAPACITY: usize = 4096;
/// The first wait before retrying a failed commit; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(5);
const SCAN_PAGE: usize = 500;

/// How long activation records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationRetention {
    pub max_per_namespace: usize,
    pub max_age: Duration,
    /// How often retention is applied.
    pub interval: Duration,
}

impl Default for ActivationRetention {
    fn default() -> Self {
        ActivationRetention {
            max_per_namespace: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(300),
        }
    }
}

/// The record key of activation `id` (a ULID): the id's bits inverted, so that key order is
/// newest first (ids are generated monotonically, also within one millisecond).
fn sort_key(id: &str) -> Option<String> {
    let ulid = ulid::Ulid::from_string(id).ok()?;
    Some(format!("{:032x}", u128::MAX - u128::from(ulid)))
}

fn record_key(id: &str) -> Option<String> {
    sort_key(id).map(|k| format!("act/{k}"))
}

fn function_index_key(function: &str, id: &str) -> Option<String> {
    sort_key(id).map(|k| format!("actf/{function}/{k}"))
}

/// Records queued or being committed, by namespace and id: served from here until durable.
type Unwritten = Arc<Mutex<HashMap<(Namespace, String), ActivationRecord>>>;

#[derive(Debug)]
pub struct ActivationStore {
    records: Arc<dyn RecordStore>,
    unwritten: Unwritten,
    /// Woken each time the recorder has committed (or given up on) a group.
    written: Arc<Notify>,
    queue: mpsc::Sender<ActivationRecord>,
}

impl ActivationStore {
    /// Starts the recorder and retention tasks on the current runtime; `clock` dates the
    /// retention's age limit.
    pub fn start(
        records: Arc<dyn RecordStore>,
        retention: ActivationRetention,
        clock: Arc<dyn ferrobase_core::Clock>,
    ) -> Self {
        let (queue, incoming) = mpsc::channel(RECORD_QUEUE_CAPACITY);
        let unwritten: Unwritten = Arc::default();
        let written = Arc::new(Notify::new());
        let namespaces: Arc<Mutex<HashSet<Namespace>>> = Arc::default();
        tokio::spawn(record_batches(
            Recorder {
                records: records.clone(),
                unwritten: unwritten.clone(),
                written: written.clone(),
            },
            incoming,
            namespaces.clone(),
        ));
        tokio::spawn(apply_retention(
            records.clone(),
            retention,
            namespaces,
            clock,
        ));
        ActivationStore {
            records,
            unwritten,
            written,
            queue,
        }
    }

    /// Waits until every record queued so far is committed. A record the store refuses on its
    /// own counts as done (it is logged); one whose commits keep failing keeps this waiting,
    /// so callers bound it with a timeout.
    pub async fn flush(&self) {
        loop {
            let notified = self.written.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a commit between the check and the wait wakes us.
            notified.as_mut().enable();
            if self.pending() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Records queued or being committed.
    pub fn pending(&self) -> usize {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Queues `record` for writing; it is readable at once. Waits while the queue is full.
    pub async fn record(&self, record: ActivationRecord) {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (record.namespace.clone(), record.id.clone()),
                record.clone(),
            );
        if self.queue.send(record).await.is_err() {
            tracing::error!("activation recorder stopped; a record is kept in memory only");
        }
    }

    pub async fn get(&self, ns: &Namespace, id: &str) -> Result<ActivationRecord, FunctionError> {
        let not_found = || FunctionError::NotFound(format!("activation {id} not found"));
        if let Some(record) = self
            .unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.clone(), id.to_owned()))
        {
            return Ok(record.clone());
        }
        let key = record_key(id).ok_or_else(not_found)?;
        let stored = self.records.get(ns, &key).await?.ok_or_else(not_found)?;
        serde_json::from_slice(&stored.value).map_err(|e| FunctionError::Storage(e.to_string()))
    }

    /// Activations of `ns` (of one function, if given), newest first, after activation id
    /// `after`, at most `limit`.
    pub async fn list(
        &self,
        ns: &Namespace,
        function: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ActivationRecord>, FunctionError> {
        // Everything queued is committed within moments; listing waits for nothing and shows
        // what is durable, plus what is still in memory for this namespace.
        let mut found: Vec<ActivationRecord> = self
            .unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|r| &r.namespace == ns && function.is_none_or(|f| r.function == f))
            .cloned()
            .collect();
        let after_key = after.and_then(sort_key);
        found.retain(|r| match (&after_key, sort_key(&r.id)) {
            (Some(after), Some(key)) => key > *after,
            _ => true,
        });
        let (prefix, after_scan) = match function {
            Some(f) => (
                format!("actf/{f}/"),
                after.and_then(|a| function_index_key(f, a)),
            ),
            None => ("act/".to_owned(), after.and_then(record_key)),
        };
        let page = self
            .records
            .scan(ns, &prefix, after_scan.as_deref(), limit)
            .await?;
        for (key, value) in page {
            let record: ActivationRecord = match function {
                None => serde_json::from_slice(&value.value)
                    .map_err(|e| FunctionError::Storage(e.to_string()))?,
                Some(_) => {
                    let id = String::from_utf8_lossy(&value.value).into_owned();
                    match self.get(ns, &id).await {
                        Ok(record) => record,
                        Err(FunctionError::NotFound(_)) => continue,
                        Err(error) => return Err(error),
                    }
                }
            };
            let _ = key;
            if !found.iter().any(|r| r.id == record.id) {
                found.push(record);
            }
        }
        found.sort_by_key(|r| sort_key(&r.id));
        found.truncate(limit);
        Ok(found)
    }
}

/// What the recorder task writes to and whom it tells.
struct Recorder {
    records: Arc<dyn RecordStore>,
    unwritten: Unwritten,
    written: Arc<Notify>,
}

async fn record_batches(
    recorder: Recorder,
    mut incoming: mpsc::Receiver<ActivationRecord>,
    namespaces: Arc<Mutex<HashSet<Namespace>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while incoming.recv_many(&mut batch, BATCH).await > 0 {
        let mut by_namespace: HashMap<Namespace, Vec<ActivationRecord>> = HashMap::new();
        for record in batch.drain(..) {
            by_namespace
                .entry(record.namespace.clone())
                .or_default()
                .push(record);
        }
        for (ns, group) in by_namespace {
            namespaces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ns.clone());
            store_group(&*recorder.records, &ns, group, &recorder.unwritten).await;
            recorder.written.notify_waiters();
        }
    }
}

/// One commit's worth of writes and events for `group`.
fn commit_of(group: &[ActivationRecord]) -> RecordCommit {
    let mut commit = RecordCommit::default();
    for record in group {
        let (Some(key), Some(index)) = (
            record_key(&record.id),
            function_index_key(&record.function, &record.id),
        ) else {
            tracing::error!(id = %record.id, "an activation id is not a ULID; its record stays in memory");
            continue;
        };
        let value = match serde_json::to_vec(record) {
            Ok(value) => value,
            Err(error) => {
                tracing::error!(%error, id = %record.id, "cannot encode an activation record");
                continue;
            }
        };
        commit.writes.push((key, Some(Bytes::from(value))));
        commit
            .writes
            .push((index, Some(Bytes::from(record.id.clone()))));
        commit.events.push(EventDraft {
            event_type: EventType::FunctionCompleted,
            subject: record.function.clone(),
            data: json!({
                "activation_id": record.id,
                "function": record.function,
                "version": record.version,
                "outcome": record.outcome,
                "duration_ms": record.duration_ms,
            }),
            causation: Causation::default(),
        });
    }
    debug_assert!(commit.operations() <= MAX_COMMIT_OPERATIONS);
    commit
}

/// Commits `group` with its completion events. A commit the store refuses as too large is
/// split in halves; a failure of the store itself is retried with exponential backoff until it
/// succeeds, so no record is dropped while the server runs (records stay readable from memory
/// meanwhile, and the bounded queue in front holds new invocations back).
async fn store_group(
    records: &dyn RecordStore,
    ns: &Namespace,
    group: Vec<ActivationRecord>,
    unwritten: &Unwritten,
) {
    let mut pending = vec![group];
    while let Some(mut group) = pending.pop() {
        let commit = commit_of(&group);
        let mut delay = RETRY_FIRST;
        loop {
            match records.commit(ns, commit.clone()).await {
                Ok(_) => {
                    let mut unwritten = unwritten.lock().unwrap_or_else(|e| e.into_inner());
                    for record in &group {
                        unwritten.remove(&(ns.clone(), record.id.clone()));
                    }
                    break;
                }
                Err(RecordError::Invalid(reason)) if group.len() > 1 => {
                    tracing::warn!(%reason, %ns, count = group.len(), "splitting an activation batch");
                    let second = group.split_off(group.len() / 2);
                    pending.push(second);
                    pending.push(group);
                    break;
                }
                Err(error @ (RecordError::Invalid(_) | RecordError::ConditionFailed { .. })) => {
                    // Retrying cannot help a record the store refuses on its own; it stays
                    // readable from memory and the operator sees why.
                    tracing::error!(%error, %ns, id = %group[0].id, "an activation record is refused by the record store");
                    break;
                }
                Err(error @ RecordError::Storage(_)) => {
                    tracing::warn!(%error, %ns, count = group.len(), retry_in = ?delay, "cannot store activation records yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

async fn apply_retention(
    records: Arc<dyn RecordStore>,
    retention: ActivationRetention,
    namespaces: Arc<Mutex<HashSet<Namespace>>>,
    clock: Arc<dyn ferrobase_core::Clock>,
) {
    let mut ticker = tokio::time::interval(retention.interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let known: Vec<Namespace> = namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for ns in known {
            if let Err(error) = prune(&*records, &ns, &retention, clock.now_ms()).await {
                tracing::warn!(%error, %ns, "activation retention failed");
            }
        }
    }
}

/// Removes activations of `ns` beyond the count or older than the age limit at `now_ms`.
pub async fn prune(
    records: &dyn RecordStore,
    ns: &Namespace,
    retention: &ActivationRetention,
    now_ms: u64,
) -> Result<usize, FunctionError> {
    let cutoff_ms = now_ms.saturating_sub(retention.max_age.as_millis() as u64);
    let mut seen = 0usize;
    let mut after: Option<String> = None;
    let mut doomed = Vec::new();
    loop {
        let page = records
            .scan(ns, "act/", after.as_deref(), SCAN_PAGE)
            .await?;
        let done = page.len() < SCAN_PAGE;
        for (key, value) in page {
            seen += 1;
            let record: Option<ActivationRecord> = serde_json::from_slice(&value.value).ok();
            let too_old = record
                .as_ref()
                .and_then(|r| ulid::Ulid::from_string(&r.id).ok())
                .is_some_and(|id| id.timestamp_ms() < cutoff_ms);
            if seen > retention.max_per_namespace || too_old {
                if let Some(record) = record
                    && let Some(index) = function_index_key(&record.function, &record.id)
                {
                    doomed.push(index);
                }
                doomed.push(key.clone());
            }
            after = Some(key);
        }
        if done {
            break;
        }
    }
    let removed = doomed.len();
    for chunk in doomed.chunks(100) {
        let writes = chunk.iter().map(|key| (key.clone(), None)).collect();
        records
            .commit(
                ns,
                RecordCommit {
                    writes,
                    ..RecordCommit::default()
                },
            )
            .await?;
    }
    Ok(removed / 2)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use ferrobase_core::records::{Record, RecordOutcome};
    use ferrobase_core::{EventQuery, SystemClock};
    use ferrobase_kv::{KvEngine, KvLimits, KvRecordStore, MemoryEngine};

    use super::*;
    use crate::model::{Cause, OutcomeKind, StartKind};

    /// How long a test waits for the recorder to catch up before it fails.
    const DEADLINE: Duration = Duration::from_secs(120);

    fn ns() -> Namespace {
        Namespace::parse("a").unwrap()
    }

    fn record(generator: &mut ulid::Generator) -> ActivationRecord {
        ActivationRecord {
            id: generator.generate().unwrap().to_string(),
            namespace: ns(),
            function: "hello".into(),
            version: 1,
            cause: Cause::Request,
            start: "2026-12-03T12:00:00Z".into(),
            duration_ms: 1.0,
            start_kind: StartKind::Warm,
            outcome: OutcomeKind::Ok,
            error: None,
            result: Some(json!("hi")),
            result_truncated: false,
            logs: Vec::new(),
            logs_truncated: false,
            memory_mb: 128,
            billed_gb_seconds: 0.0,
            steps: Vec::new(),
        }
    }

    /// Fails its first `failures` commits as a storage fault would, then passes them on.
    #[derive(Debug)]
    struct Flaky {
        inner: KvRecordStore,
        failures: AtomicUsize,
    }

    #[async_trait]
    impl RecordStore for Flaky {
        async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Record>, RecordError> {
            self.inner.get(ns, key).await
        }
        async fn scan(
            &self,
            ns: &Namespace,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, Record)>, RecordError> {
            self.inner.scan(ns, prefix, after, limit).await
        }
        async fn commit(
            &self,
            ns: &Namespace,
            commit: RecordCommit,
        ) -> Result<RecordOutcome, RecordError> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(RecordError::Storage("disk unavailable".into()));
            }
            self.inner.commit(ns, commit).await
        }
    }

    /// Records `count` activations as fast as they come and checks that each is durable with
    /// exactly one completion event.
    async fn burst(records: Arc<dyn RecordStore>, kv: Arc<dyn KvEngine>, count: usize) {
        let store = Arc::new(ActivationStore::start(
            records.clone(),
            ActivationRetention::default(),
            Arc::new(ferrobase_core::SystemClock),
        ));
        let mut generator = ulid::Generator::new();
        let sent: Vec<ActivationRecord> = (0..count).map(|_| record(&mut generator)).collect();
        let writers: Vec<_> = sent
            .chunks(count.div_ceil(8))
            .map(|chunk| {
                let (store, chunk) = (store.clone(), chunk.to_vec());
                tokio::spawn(async move {
                    for record in chunk {
                        store.record(record).await;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let waited = tokio::time::timeout(DEADLINE, async {
            while !store.unwritten.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{} records still unwritten",
            store.unwritten.lock().unwrap().len()
        );

        let mut stored = 0;
        let mut after = None;
        loop {
            let page = records
                .scan(&ns(), "act/", after.as_deref(), SCAN_PAGE)
                .await
                .unwrap();
            stored += page.len();
            match page.last() {
                Some((key, _)) => after = Some(key.clone()),
                None => break,
            }
        }
        assert_eq!(stored, count, "every activation is stored");

        let mut completed = HashSet::new();
        let mut query = EventQuery {
            after: 0,
            limit: 1000,
            type_filter: Some("ferrobase.function.completed".into()),
        };
        loop {
            let page = kv.read(&ns(), &query).await.unwrap();
            for event in &page.events {
                let id = event.data["activation_id"].as_str().unwrap().to_owned();
                assert!(completed.insert(id), "one completion event per activation");
            }
            if page.next_after == query.after {
                break;
            }
            query.after = page.next_after;
        }
        let expected: HashSet<String> = sent.into_iter().map(|r| r.id).collect();
        assert_eq!(completed, expected, "every completion event is present");
    }

    fn memory_engine() -> Arc<dyn KvEngine> {
        Arc::new(MemoryEngine::new(
            Arc::new(SystemClock),
            KvLimits::default(),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_5000_activations_is_stored_whole() {
        let kv = memory_engine();
        burst(Arc::new(KvRecordStore::new(kv.clone())), kv, 5000).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_commits_are_retried_until_stored() {
        let kv = memory_engine();
        let flaky = Flaky {
            inner: KvRecordStore::new(kv.clone()),
            failures: AtomicUsize::new(4),
        };
        burst(Arc::new(flaky), kv, 500).await;
    }

    #[test]
    fn a_full_batch_fits_one_commit() {
        let mut generator = ulid::Generator::new();
        let batch: Vec<_> = (0..BATCH).map(|_| record(&mut generator)).collect();
        assert!(commit_of(&batch).operations() <= MAX_COMMIT_OPERATIONS);
    }
}
