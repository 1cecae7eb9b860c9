//! Maintenance and the overview of a queue.
//!
//! A queue's floor is the id below which every message is gone. Maintenance moves it past
//! messages that every group is done with (below each group's cursor and not pending in it),
//! past all but the newest `max_messages` and past messages older than `max_age`, then purges
//! the stream's envelopes below it. A queue that has no group yet keeps its messages for the
//! first one. Envelopes whose events are not yet relayed stay in the stream (the stream is the
//! outbox) even when the floor has passed them.

use futures::StreamExt;

use super::Inner;
use super::envelope::{message_id, split};
use super::handle::Handle;
use super::records::{QueueRecord, from_json, storage};
use crate::engine::MaintenanceReport;
use crate::model::SaturatingMillis;
use crate::{GroupInfo, GroupName, QueueConfig, QueueError, QueueInfo};

/// Most envelopes one pass walks in one queue; the next pass continues.
const PASS_LIMIT: usize = 10_000;

impl Inner {
    /// Every key of the queues bucket (one per configured queue, `{ns}.{queue}`).
    async fn queue_keys(&self) -> Result<Vec<String>, QueueError> {
        let mut keys = self
            .queues
            .keys()
            .await
            .map_err(|e| storage("listing queues", e))?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            names.push(key.map_err(|e| storage("listing queues", e))?);
        }
        Ok(names)
    }

    /// The queues of `ns` by name, read from their records (a key is only a hint: the record
    /// holds the names as given).
    pub(super) async fn list_queues(
        &self,
        ns: &ferrobase_core::Namespace,
        after: Option<&crate::QueueName>,
        max: usize,
    ) -> Result<Vec<crate::QueueName>, QueueError> {
        let prefix = format!("{ns}.");
        let mut queues = Vec::new();
        for key in self.queue_keys().await? {
            if !key.starts_with(&prefix) {
                continue;
            }
            let found = super::records::read(&self.queues, &key).await?;
            let Some(raw) = found.value else {
                continue;
            };
            let record: QueueRecord = from_json(&raw)?;
            if record.ns != ns.as_str() {
                continue;
            }
            if let Ok(queue) = crate::QueueName::parse(&record.queue)
                && after.is_none_or(|after| queue.as_str() > after.as_str())
            {
                queues.push(queue);
            }
        }
        queues.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        queues.truncate(max);
        Ok(queues)
    }

    pub(super) async fn maintain_all(&self) -> Result<MaintenanceReport, QueueError> {
        let names = self.queue_keys().await?;
        let mut report = MaintenanceReport::default();
        for key in names {
            let found = super::records::read(&self.queues, &key).await?;
            let Some(raw) = found.value else {
                continue;
            };
            let record: QueueRecord = from_json(&raw)?;
            let (Ok(ns), Ok(queue)) = (
                ferrobase_core::Namespace::parse_stored(&record.ns),
                crate::QueueName::parse(&record.queue),
            ) else {
                tracing::warn!(key, "skipping a queue record with unreadable names");
                continue;
            };
            let handle = self.handle(&ns, &queue).await?;
            let pass = self.maintain_queue(&handle).await?;
            report.consumed += pass.consumed;
            report.expired += pass.expired;
        }
        Ok(report)
    }

    async fn maintain_queue(&self, handle: &Handle) -> Result<MaintenanceReport, QueueError> {
        let _turn = handle.maintain_lock.lock().await;
        let mut report = MaintenanceReport::default();
        let (record, _) = self.fresh_record(handle).await?;
        let config = QueueConfig::from(record.config.clone());
        let now = self.clock.now_ms();

        // Everything below `low` is done for every group.
        let mut low: Option<u64> = None;
        for name in &record.groups {
            let Ok(group) = GroupName::parse(name) else {
                continue;
            };
            let state = self.read_group(handle, &group).await?;
            let first_pending = state.pending.keys().next().copied().unwrap_or(u64::MAX);
            let group_low = state.cursor.min(first_pending);
            low = Some(low.map_or(group_low, |l| l.min(group_low)));
        }
        let oldest_kept = config
            .retention
            .max_age
            .map(|age| now.saturating_sub(age.saturating_ms()));
        let stored = self.stored_messages(handle, record.floor).await?;
        let excess = config
            .retention
            .max_messages
            .map_or(0, |max| stored.saturating_sub(max));

        let mut floor = record.floor;
        let mut position = 0u64;
        let mut walked = 0;
        'walk: while walked < PASS_LIMIT {
            let (seq, index) = split(floor);
            let Some(envelope) = self.envelope_from(handle, seq).await? else {
                break;
            };
            walked += 1;
            let start = if envelope.seq == seq { index } else { 0 };
            let old = oldest_kept.is_some_and(|cutoff| envelope.published_at < cutoff);
            for index in start..envelope.items.len() {
                let id = message_id(envelope.seq, index).0;
                let consumed = low.is_some_and(|low| id < low);
                let over = position < excess;
                if !(consumed || over || old) {
                    floor = floor.max(id);
                    break 'walk;
                }
                position += 1;
                if over || old {
                    report.expired += 1;
                } else {
                    report.consumed += 1;
                }
            }
            floor = message_id(envelope.seq + 1, 0).0;
        }
        if floor > record.floor {
            self.update_record(handle, |record| record.floor = record.floor.max(floor))
                .await?;
        }

        // Purge whole envelopes below the floor, but none whose events are still to relay.
        // Envelopes keep the events mark they were published with after events are switched
        // off (as the embedded engine's outbox entries do); a relay cursor from earlier says
        // so too after a restart.
        let mut purge_below = split(floor).0;
        if handle.has_events_to_relay() || self.relayed(handle).await? > 0 {
            if let Err(error) = self.relay_queue(handle).await {
                tracing::warn!(%error, "queue event relay failed before purging");
            }
            purge_below = purge_below.min(self.relayed(handle).await?.saturating_add(1));
        }
        let first = self.first_seq(handle).await?;
        if purge_below > first {
            handle
                .stream
                .purge()
                .sequence(purge_below)
                .await
                .map_err(|e| storage("purging the queue's stream", e))?;
            handle.lock_envelopes().forget_below(purge_below);
        }
        Ok(report)
    }

    async fn first_seq(&self, handle: &Handle) -> Result<u64, QueueError> {
        let info = handle
            .stream
            .get_info()
            .await
            .map_err(|e| storage("reading the queue's stream", e))?;
        Ok(info.state.first_sequence)
    }

    /// Messages the queue holds: those of the envelopes in the stream (each envelope's subject
    /// ends in its message count), less those below the floor.
    async fn stored_messages(&self, handle: &Handle, floor: u64) -> Result<u64, QueueError> {
        let mut subjects = handle
            .stream
            .info_with_subjects(handle.names.all_subjects())
            .await
            .map_err(|e| storage("reading the queue's stream", e))?;
        let mut total = 0u64;
        while let Some(entry) = subjects.next().await {
            let (subject, envelopes) =
                entry.map_err(|e| storage("reading the queue's stream", e))?;
            let count: u64 = subject
                .rsplit('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            total += count * envelopes as u64;
        }
        // Envelopes below the floor that are still in the stream (not yet purged, or kept for
        // the relay): few, so they are read one by one.
        let mut below = 0u64;
        let mut seq = 1;
        while let Some(envelope) = self.envelope_from(handle, seq).await? {
            if envelope.seq > split(floor).0 {
                break;
            }
            below += (0..envelope.items.len())
                .filter(|index| message_id(envelope.seq, *index).0 < floor)
                .count() as u64;
            seq = envelope.seq + 1;
        }
        Ok(total.saturating_sub(below))
    }

    pub(super) async fn info(&self, handle: &Handle) -> Result<QueueInfo, QueueError> {
        let (record, _) = self.fresh_record(handle).await?;
        let mut groups = Vec::new();
        for name in &record.groups {
            let Ok(name) = GroupName::parse(name) else {
                continue;
            };
            let state = self.read_group(handle, &name).await?;
            groups.push(GroupInfo {
                name,
                pending: state.pending.len() as u64,
                dead: state.dead.len() as u64,
            });
        }
        Ok(QueueInfo {
            config: QueueConfig::from(record.config),
            messages: self.stored_messages(handle, record.floor).await?,
            groups,
        })
    }
}
