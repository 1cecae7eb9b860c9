//! The outbox relay: moves `ferrobase.queue.message` events from the queue database into the
//! namespace change log, exactly once.
//!
//! A publish writes its outbox entries in the same atomic batch as its messages, so an event
//! exists exactly when its message does. The relay appends a run of entries to the change log
//! with one [`RecordStore::commit`](ferrobase_core::records::RecordStore::commit) that also advances the queue's relay cursor record
//! (`queue/{queue}/relay`, the last relayed sequence), conditioned on the cursor's version;
//! only then does it delete the entries. After a crash between the two steps the entries are
//! still there but at or below the cursor, so they are deleted without being appended again;
//! a crash before the commit leaves them to be relayed on the next run.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use ferrobase_core::event::Causation;
use ferrobase_core::records::{EventDraft, RecordCommit, RecordCondition, RecordError};
use ferrobase_core::{EventType, Namespace};
use tokio::sync::Notify;

use super::Inner;
use super::keys::{OUTBOX, parse_scope, trailing_u64};
use crate::{QueueError, QueueName};

/// Most outbox entries read per round, and appended per change-log commit.
const RELAY_BATCH: usize = 512;
/// Outbox entries of one queue, in sequence order: (tree key, sequence, event data).
type Run = Vec<(Vec<u8>, u64, Vec<u8>)>;

/// Runs the relay until the engine is dropped.
pub(super) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>) {
    crate::engine::spawn_relay(inner, wake, |inner| async move { inner.relay_once().await });
}

fn cursor_record(queue: &QueueName) -> String {
    format!("queue/{queue}/relay")
}

impl Inner {
    /// Relays everything in the outbox; returns how many events were appended.
    pub(super) async fn relay_once(&self) -> Result<usize, QueueError> {
        let mut appended = 0;
        loop {
            // Entries of each queue, in sequence order.
            let mut runs: BTreeMap<(Namespace, QueueName), Run> = BTreeMap::new();
            let mut read = 0;
            for item in self.tree.scan_prefix([OUTBOX]).take(RELAY_BATCH) {
                let (raw_key, raw) = item?;
                read += 1;
                let Some(scope) = parse_scope(&raw_key) else {
                    tracing::warn!("dropping an outbox entry with an unreadable key");
                    self.tree.remove(&raw_key)?;
                    continue;
                };
                let seq = trailing_u64(&raw_key);
                runs.entry(scope)
                    .or_default()
                    .push((raw_key.to_vec(), seq, raw.to_vec()));
            }
            for ((ns, queue), run) in runs {
                appended += self.relay_run(&ns, &queue, run).await?;
            }
            if read < RELAY_BATCH {
                return Ok(appended);
            }
        }
    }

    async fn relay_run(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        run: Run,
    ) -> Result<usize, QueueError> {
        let storage = |error: RecordError| QueueError::Storage(error.to_string());
        let record = cursor_record(queue);
        let current = self.records.get(ns, &record).await.map_err(storage)?;
        let (relayed, condition) = match &current {
            Some(current) => (
                std::str::from_utf8(&current.value)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(0),
                RecordCondition::Version(current.version),
            ),
            None => (0, RecordCondition::Absent),
        };
        let fresh: Vec<_> = run.iter().filter(|(_, seq, _)| *seq > relayed).collect();
        let mut appended = 0;
        if let Some(last) = fresh.last().map(|(_, seq, _)| *seq) {
            let events = fresh
                .iter()
                .map(|(_, _, raw)| EventDraft {
                    event_type: EventType::QueueMessage,
                    subject: queue.as_str().to_owned(),
                    data: serde_json::from_slice(raw).unwrap_or(serde_json::Value::Null),
                    causation: Causation::default(),
                })
                .collect::<Vec<_>>();
            appended = events.len();
            let commit = RecordCommit {
                conditions: vec![(record.clone(), condition)],
                writes: vec![(record, Some(Bytes::from(last.to_string())))],
                events,
            };
            match self.records.commit(ns, commit).await {
                Ok(_) => {}
                // Someone else advanced the cursor; the next round re-reads it.
                Err(RecordError::ConditionFailed { .. }) => return Ok(0),
                Err(error) => return Err(storage(error)),
            }
        }
        let mut batch = sled::Batch::default();
        for (raw_key, _, _) in &run {
            batch.remove(raw_key.as_slice());
        }
        self.tree.apply_batch(batch)?;
        Ok(appended)
    }
}
