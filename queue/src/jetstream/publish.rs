//! Publishing: one envelope per call, and dedup ids.
//!
//! Dedup ids are recorded only after their message is stored, and only by compare-and-set
//! against the entry read before publishing. So a crash between the two steps, or a node
//! racing another with the same id, can make a repeat publish again (a duplicate), but a
//! repeat is never dropped for a message that was not stored.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use futures::future::try_join_all;

use super::Inner;
use super::envelope::{Envelope, Item, message_id};
use super::handle::Handle;
use super::records::{DedupEntry, Versioned, Written, from_json, read, storage, to_json, write};
use crate::model::SaturatingMillis;
use crate::{MessageId, NewMessage, QueueConfig, QueueError};

/// Attempts of one envelope publish; the `Nats-Msg-Id` makes retries store it once.
const PUBLISH_ATTEMPTS: usize = 3;

/// What a dedup id of the batch resolved to before publishing.
enum Seen {
    /// Published within the window: the message it repeats.
    Repeat(MessageId),
    /// New (or outside the window): record it at this revision once published.
    Fresh(u64),
}

impl Inner {
    pub(super) async fn publish(
        &self,
        handle: &Handle,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<MessageId>, QueueError> {
        let record = self.record(handle).await?;
        let config = QueueConfig::from(record.config);
        let with_dedup = messages.iter().any(|m| m.dedup_id.is_some());
        // Within this process, publishes with dedup ids to one queue take turns, so that they
        // never race each other; across nodes the compare-and-set below decides.
        let _turn = if with_dedup {
            Some(handle.dedup_lock.lock().await)
        } else {
            None
        };
        let now = self.clock.now_ms();
        let seen = self.look_up_dedup(handle, &messages, &config, now).await?;

        // Which message of the batch each input becomes: stored (its index in the envelope),
        // or a repeat.
        enum Slot {
            Stored(usize),
            Repeat(MessageId),
            SameAs(usize),
        }
        let mut slots = Vec::with_capacity(messages.len());
        let mut items = Vec::with_capacity(messages.len());
        let mut fresh_ids: HashMap<&str, (usize, u64)> = HashMap::new();
        for message in &messages {
            if let Some(dedup_id) = message.dedup_id.as_deref() {
                if let Some((index, _)) = fresh_ids.get(dedup_id) {
                    slots.push(Slot::SameAs(*index));
                    continue;
                }
                match seen.get(dedup_id) {
                    Some(Seen::Repeat(id)) => {
                        slots.push(Slot::Repeat(*id));
                        continue;
                    }
                    Some(Seen::Fresh(revision)) => {
                        fresh_ids.insert(dedup_id, (items.len(), *revision));
                    }
                    None => {}
                }
            }
            slots.push(Slot::Stored(items.len()));
            items.push(Item {
                delay_ms: message.delay.saturating_ms(),
                key: message.key.clone(),
                body: message.body.clone(),
            });
        }
        let seq = if items.is_empty() {
            0
        } else {
            self.append(
                handle,
                now,
                config.events == crate::EventEmission::On,
                items,
            )
            .await?
        };
        let ids = slots
            .iter()
            .map(|slot| match slot {
                Slot::Stored(index) | Slot::SameAs(index) => message_id(seq, *index),
                Slot::Repeat(id) => *id,
            })
            .collect();
        // Record the new dedup ids, now that their messages are stored.
        try_join_all(fresh_ids.into_iter().map(|(dedup_id, (index, revision))| {
            let entry = DedupEntry {
                id: message_id(seq, index).0,
                at: now,
            };
            async move {
                let key = handle.names.dedup_key(dedup_id);
                // A conflict means another node published the same id meanwhile: both
                // messages are stored, and the id keeps the other's.
                let _: Written = write(&self.dedup, &key, to_json(&entry)?, revision).await?;
                Ok::<_, QueueError>(())
            }
        }))
        .await?;
        Ok(ids)
    }

    async fn look_up_dedup(
        &self,
        handle: &Handle,
        messages: &[NewMessage],
        config: &QueueConfig,
        now: u64,
    ) -> Result<HashMap<String, Seen>, QueueError> {
        let mut ids: Vec<&str> = messages
            .iter()
            .filter_map(|m| m.dedup_id.as_deref())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let found: Vec<Versioned> = try_join_all(
            ids.iter()
                .map(|id| async move { read(&self.dedup, &handle.names.dedup_key(id)).await }),
        )
        .await?;
        let window = config.dedup_window.saturating_ms();
        let mut seen = HashMap::with_capacity(ids.len());
        for (id, found) in ids.into_iter().zip(found) {
            let entry = match &found.value {
                Some(raw) => Some(from_json::<DedupEntry>(raw)?),
                None => None,
            };
            let resolved = match entry {
                Some(entry) if entry.at.saturating_add(window) > now => {
                    Seen::Repeat(MessageId(entry.id))
                }
                _ => Seen::Fresh(found.revision),
            };
            seen.insert(id.to_owned(), resolved);
        }
        Ok(seen)
    }

    /// Stores one envelope; returns its stream sequence.
    async fn append(
        &self,
        handle: &Handle,
        now: u64,
        events: bool,
        items: Vec<Item>,
    ) -> Result<u64, QueueError> {
        let payload = Envelope::encode(now, events, &items)?;
        let max_payload = self.client.server_info().max_payload;
        if payload.len() + 1024 > max_payload {
            return Err(QueueError::TooLarge(format!(
                "the batch takes {} bytes; the NATS server accepts at most {max_payload} per \
                 publish: send fewer or smaller messages at a time",
                payload.len()
            )));
        }
        let subject = handle.names.subject(items.len());
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, ulid::Ulid::new().to_string().as_str());
        let mut last_error = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            let acked = match self
                .js
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
            {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            match acked {
                Ok(ack) => {
                    let envelope = Envelope {
                        seq: ack.sequence,
                        published_at: now,
                        events,
                        items,
                    };
                    handle.lock_envelopes().insert(Arc::new(envelope));
                    self.wake_consumers();
                    if events {
                        self.relay_wake.notify_one();
                    }
                    return Ok(ack.sequence);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(storage(
            "publishing to the queue's stream",
            last_error.map_or_else(String::new, |e| e.to_string()),
        ))
    }
}
