//! The event relay: the queue's stream is the outbox. Envelopes published while the queue had
//! events on are marked; the relay reads envelopes past the queue's relay cursor (the record
//! `queue/{queue}/jetstream-relay` in the namespace: the last relayed stream sequence) and
//! appends one `ferrobase.queue.message` per message together with the advanced cursor in one
//! [`RecordStore::commit`](ferrobase_core::records::RecordStore::commit), conditioned on the
//! cursor's version. A crash before the commit relays the envelopes again later; a commit
//! cannot happen twice for the same envelopes, also with several nodes relaying.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use ferrobase_core::EventType;
use ferrobase_core::event::Causation;
use ferrobase_core::records::{EventDraft, RecordCommit, RecordCondition, RecordError};
use tokio::sync::Notify;

use super::Inner;
use super::envelope::message_id;
use super::handle::Handle;
use crate::QueueError;

/// Most events appended per change-log commit.
const RELAY_BATCH: usize = 512;

/// Runs the relay until the engine is dropped.
pub(super) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>) {
    crate::engine::spawn_relay(inner, wake, |inner| async move { inner.relay_once().await });
}

fn cursor_record(handle: &Handle) -> String {
    format!("queue/{}/jetstream-relay", handle.queue)
}

fn record_error(error: RecordError) -> QueueError {
    QueueError::Storage(error.to_string())
}

impl Inner {
    /// Relays the events of every queue whose envelopes may carry them (see
    /// `Handle::has_events_to_relay`).
    pub(super) async fn relay_once(&self) -> Result<usize, QueueError> {
        let mut appended = 0;
        for handle in self.emitting() {
            appended += self.relay_queue(&handle).await?;
        }
        Ok(appended)
    }

    /// The last stream sequence whose events reached the change log (0: none yet).
    pub(super) async fn relayed(&self, handle: &Handle) -> Result<u64, QueueError> {
        let current = self
            .records
            .get(&handle.ns, &cursor_record(handle))
            .await
            .map_err(record_error)?;
        Ok(current.map_or(0, |record| parse_cursor(&record.value)))
    }

    pub(super) async fn relay_queue(&self, handle: &Handle) -> Result<usize, QueueError> {
        let record = cursor_record(handle);
        let mut appended = 0;
        loop {
            let current = self
                .records
                .get(&handle.ns, &record)
                .await
                .map_err(record_error)?;
            let (relayed, condition) = match &current {
                Some(current) => (
                    parse_cursor(&current.value),
                    RecordCondition::Version(current.version),
                ),
                None => (0, RecordCondition::Absent),
            };
            let mut events = Vec::new();
            let mut last = relayed;
            while events.len() < RELAY_BATCH {
                let Some(envelope) = self.envelope_from(handle, last + 1).await? else {
                    break;
                };
                last = envelope.seq;
                if !envelope.events {
                    continue;
                }
                for (index, item) in envelope.items.iter().enumerate() {
                    events.push(EventDraft {
                        event_type: EventType::QueueMessage,
                        subject: handle.queue.as_str().to_owned(),
                        data: serde_json::json!({
                            "queue": handle.queue.as_str(),
                            "id": message_id(envelope.seq, index).to_string(),
                            "key": item.key,
                            "size": item.body.len(),
                            "delay_ms": item.delay_ms,
                        }),
                        causation: Causation::default(),
                    });
                }
            }
            if last == relayed {
                return Ok(appended);
            }
            let count = events.len();
            let commit = RecordCommit {
                conditions: vec![(record.clone(), condition)],
                writes: vec![(record.clone(), Some(Bytes::from(last.to_string())))],
                events,
            };
            match self.records.commit(&handle.ns, commit).await {
                Ok(_) => appended += count,
                // Another node advanced the cursor; it relays what we read.
                Err(RecordError::ConditionFailed { .. }) => return Ok(appended),
                Err(error) => return Err(record_error(error)),
            }
        }
    }
}

fn parse_cursor(raw: &Bytes) -> u64 {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}
