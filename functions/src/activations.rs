//! Durable activation records.
//!
//! Records are written off the invocation path: a recorder task takes finished records from a
//! channel and commits them in batches (one record-store commit per namespace per batch), each
//! with its `ferrobase.function.completed` event. Until a record is committed it is served from
//! memory, so a client can read its activation the moment the invoke answers.
//!
//! Keys order newest first: `act/{inverted id}` is derived from the (monotonic) ULID id, so
//! a prefix scan lists the latest activations first; `actf/{function}/...` indexes them per
//! function. Retention keeps at most a configured number per namespace, younger than an age.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferrobase_core::event::Causation;
use ferrobase_core::records::{EventDraft, RecordCommit, RecordStore};
use ferrobase_core::{EventType, Namespace};
use serde_json::json;
use tokio::sync::mpsc;

use crate::FunctionError;
use crate::model::ActivationRecord;

/// Most records committed in one batch.
const BATCH: usize = 64;
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

#[derive(Debug)]
pub struct ActivationStore {
    records: Arc<dyn RecordStore>,
    unwritten: Arc<Mutex<HashMap<(Namespace, String), ActivationRecord>>>,
    queue: mpsc::UnboundedSender<ActivationRecord>,
}

impl ActivationStore {
    /// Starts the recorder and retention tasks on the current runtime.
    pub fn start(records: Arc<dyn RecordStore>, retention: ActivationRetention) -> Self {
        let (queue, incoming) = mpsc::unbounded_channel();
        let unwritten: Arc<Mutex<HashMap<(Namespace, String), ActivationRecord>>> = Arc::default();
        let namespaces: Arc<Mutex<HashSet<Namespace>>> = Arc::default();
        tokio::spawn(record_batches(
            records.clone(),
            incoming,
            unwritten.clone(),
            namespaces.clone(),
        ));
        tokio::spawn(apply_retention(records.clone(), retention, namespaces));
        ActivationStore {
            records,
            unwritten,
            queue,
        }
    }

    /// Queues `record` for writing; it is readable at once.
    pub fn record(&self, record: ActivationRecord) {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (record.namespace.clone(), record.id.clone()),
                record.clone(),
            );
        if self.queue.send(record).is_err() {
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

async fn record_batches(
    records: Arc<dyn RecordStore>,
    mut incoming: mpsc::UnboundedReceiver<ActivationRecord>,
    unwritten: Arc<Mutex<HashMap<(Namespace, String), ActivationRecord>>>,
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
            let mut commit = RecordCommit::default();
            for record in &group {
                let (Some(key), Some(index)) = (
                    record_key(&record.id),
                    function_index_key(&record.function, &record.id),
                ) else {
                    continue;
                };
                let Ok(value) = serde_json::to_vec(record) else {
                    continue;
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
            match records.commit(&ns, commit).await {
                Ok(_) => {
                    let mut unwritten = unwritten.lock().unwrap_or_else(|e| e.into_inner());
                    for record in &group {
                        unwritten.remove(&(ns.clone(), record.id.clone()));
                    }
                }
                Err(error) => {
                    // Kept in memory (still readable); logged so operators see the storage fault.
                    tracing::error!(%error, %ns, count = group.len(), "cannot store activation records");
                }
            }
        }
    }
}

async fn apply_retention(
    records: Arc<dyn RecordStore>,
    retention: ActivationRetention,
    namespaces: Arc<Mutex<HashSet<Namespace>>>,
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
            if let Err(error) = prune(&*records, &ns, &retention).await {
                tracing::warn!(%error, %ns, "activation retention failed");
            }
        }
    }
}

/// Removes activations of `ns` beyond the count or older than the age limit.
pub async fn prune(
    records: &dyn RecordStore,
    ns: &Namespace,
    retention: &ActivationRetention,
) -> Result<usize, FunctionError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
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
