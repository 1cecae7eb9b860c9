//! Consumption: pull, ack, nack and the dead-letter list, each run under the queue's lock. The
//! rules (what a lease, an expiry, a nack or a replay does) are `crate::delivery`'s; this file
//! is their storage, [`GroupPending`], over the `p` and `k` entries and the due index.
//!
//! A group takes messages in sequence order past its cursor. A message it cannot deliver yet
//! (delayed, or behind an earlier message with the same key) becomes a pending entry; so does
//! every delivered message, leased until its lease ends. The due index (in memory, see
//! [`super::writes`]) orders the pending
//! entries that can be delivered by time: waiting ones at their delivery time, leased ones at
//! their lease's end, which is how expired leases come back. Of the pending entries sharing a
//! key, only one is ever in the due index; finishing it promotes the next (the key queue keeps
//! them in sequence order).

use bytes::Bytes;

use super::Inner;
use super::keys::{DEAD, Scope, StoredDead, StoredMessage, decode_u64, trailing_u64};
use super::writes::WriteSet;
use crate::delivery::{self, Admitted, Due, Pending, PendingStore, RetentionCut, Settled};
use crate::model::{MAX_ERROR_LEN, ReceiptParts, SaturatingMillis, bounded_error};
use crate::{
    DeadLetter, DeadLetterPage, DeadLetterSelection, Delivery, GroupName, MessageId, Nack,
    PullRequest, QueueConfig, QueueError, Receipt, SettleOutcome,
};

/// Most new messages one pull examines past the cursor, so that a long run of delayed or
/// key-blocked messages cannot make one pull arbitrarily slow.
const CURSOR_SCAN: usize = 4096;

impl Inner {
    pub(super) fn pull_locked(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        config: &QueueConfig,
        request: &PullRequest,
        now: u64,
    ) -> Result<Vec<Delivery>, QueueError> {
        let group = &request.group;
        let lease_ms = request.lease.saturating_ms();
        let cut = RetentionCut::new(config, now);
        let mut out = Vec::new();

        // 1. Pending entries that are due: delayed, nacked, replayed, or whose lease expired.
        // Some candidates may be dropped rather than delivered, so look at more than `max`.
        let candidates = writes.due_until(scope, group, now, request.max * 2 + 64)?;
        for (due_at, seq) in candidates {
            if out.len() == request.max {
                break;
            }
            let mut store = GroupPending::new(writes, scope, group);
            let pending = store.get(seq)?;
            let Some(pending) = pending.filter(|p| p.is_due_by_time() && p.due_at == due_at) else {
                // An index entry without its pending entry: drop it.
                writes.due_remove(scope, group, due_at, seq);
                continue;
            };
            let message = writes
                .get(&scope.message(seq))?
                .and_then(|raw| StoredMessage::decode(&raw))
                .filter(|m| !cut.too_old(m.published_at));
            let mut store = GroupPending::new(writes, scope, group);
            match delivery::due(&pending, message, config.max_deliver) {
                // Retention dropped the message: nothing left to deliver.
                Due::Gone => delivery::finish(&mut store, seq, &pending)?,
                Due::Exhausted { message, error } => {
                    store.dead_letter(seq, &pending, &message, error, now)?;
                }
                Due::Deliver(message) => {
                    let leased = delivery::lease(
                        &mut store,
                        seq,
                        pending.clone(),
                        Some(&pending),
                        now,
                        lease_ms,
                    )?;
                    out.push(deliver(group, seq, &leased, message));
                }
            }
        }

        // 2. New messages past the cursor.
        if out.len() < request.max {
            let group_key = scope.group(group);
            let cursor = writes.get(&group_key)?.map(|raw| decode_u64(&raw));
            let start = cursor.unwrap_or(0);
            let mut next_cursor = start;
            let range = scope.message(start)..=scope.message(u64::MAX);
            for item in self.tree.range(range).take(CURSOR_SCAN) {
                if out.len() == request.max {
                    break;
                }
                let (raw_key, raw) = item?;
                let seq = trailing_u64(&raw_key);
                next_cursor = seq + 1;
                let Some(message) =
                    StoredMessage::decode(&raw).filter(|m| !cut.too_old(m.published_at))
                else {
                    continue;
                };
                let mut store = GroupPending::new(writes, scope, group);
                let admitted = delivery::admit(
                    &mut store,
                    seq,
                    message.key.clone(),
                    message.deliver_at,
                    now,
                )?;
                if let Admitted::Ready(pending) = admitted {
                    let leased = delivery::lease(&mut store, seq, pending, None, now, lease_ms)?;
                    out.push(deliver(group, seq, &leased, message));
                }
            }
            if cursor != Some(next_cursor) {
                writes.insert(group_key, next_cursor.to_be_bytes().to_vec());
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn settle_locked(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        config: &QueueConfig,
        receipts: &[Receipt],
        parts: &[ReceiptParts],
        nack: Option<&Nack>,
        now: u64,
    ) -> Result<super::SettleOutcome, QueueError> {
        let mut outcome = SettleOutcome::default();
        for (receipt, part) in receipts.iter().zip(parts) {
            let seq = part.id.0;
            let mut store = GroupPending::new(writes, scope, &part.group);
            let settled = delivery::settle(
                &mut store,
                part,
                nack,
                config.max_deliver,
                MAX_ERROR_LEN,
                now,
            )?;
            match settled {
                Settled::Stale => outcome.stale.push(receipt.clone()),
                Settled::Acked(_) | Settled::Retried => outcome.settled += 1,
                Settled::Exhausted { pending, error } => {
                    outcome.settled += 1;
                    let message = writes
                        .get(&scope.message(seq))?
                        .and_then(|raw| StoredMessage::decode(&raw));
                    let mut store = GroupPending::new(writes, scope, &part.group);
                    match message {
                        Some(message) => store.dead_letter(seq, &pending, &message, error, now)?,
                        None => delivery::finish(&mut store, seq, &pending)?,
                    }
                }
            }
        }
        Ok(outcome)
    }

    pub(super) fn dead_letters(
        &self,
        scope: &Scope,
        group: &GroupName,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<DeadLetterPage, QueueError> {
        let start = after.map_or(0, |id| id.0.saturating_add(1));
        let prefix = scope.group_prefix(DEAD, group);
        let mut page = DeadLetterPage::default();
        let range = scope.dead(group, start)..=scope.dead(group, u64::MAX);
        for item in self.tree.range(range) {
            let (raw_key, raw) = item?;
            if !raw_key.starts_with(&prefix) {
                break;
            }
            if page.messages.len() == limit {
                page.next = page.messages.last().map(|m| m.id);
                break;
            }
            let Some(dead) = StoredDead::decode(&raw) else {
                continue;
            };
            page.messages.push(DeadLetter {
                id: MessageId(trailing_u64(&raw_key)),
                body: dead.body,
                key: dead.key,
                attempts: dead.attempts,
                last_error: dead.last_error,
                published_at_ms: dead.published_at,
                dead_at_ms: dead.dead_at,
            });
        }
        Ok(page)
    }

    /// The dead letters `selection` names that exist, with their stored form.
    fn selected_dead(
        &self,
        writes: &WriteSet<'_>,
        scope: &Scope,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<Vec<(u64, StoredDead)>, QueueError> {
        let mut found = Vec::new();
        match selection {
            DeadLetterSelection::All => {
                for item in self.tree.scan_prefix(scope.group_prefix(DEAD, group)) {
                    let (raw_key, raw) = item?;
                    if let Some(dead) = StoredDead::decode(&raw) {
                        found.push((trailing_u64(&raw_key), dead));
                    }
                }
            }
            DeadLetterSelection::Ids(ids) => {
                for id in ids {
                    if let Some(dead) = writes
                        .get(&scope.dead(group, id.0))?
                        .and_then(|raw| StoredDead::decode(&raw))
                    {
                        found.push((id.0, dead));
                    }
                }
            }
        }
        Ok(found)
    }

    pub(super) fn replay_locked(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        group: &GroupName,
        selection: &DeadLetterSelection,
        now: u64,
    ) -> Result<u64, QueueError> {
        let selected = self.selected_dead(writes, scope, group, selection)?;
        for (seq, dead) in &selected {
            let seq = *seq;
            writes.remove(scope.dead(group, seq));
            // The message may have been reclaimed once every group was done with it.
            if writes.get(&scope.message(seq))?.is_none() {
                let message = StoredMessage {
                    published_at: dead.published_at,
                    deliver_at: dead.published_at,
                    key: dead.key.clone(),
                    body: Bytes::clone(&dead.body),
                };
                writes.insert(scope.message(seq), message.encode()?);
            }
            let mut store = GroupPending::new(writes, scope, group);
            delivery::replay(&mut store, seq, dead.key.clone(), dead.lease, now)?;
        }
        Ok(selected.len() as u64)
    }

    pub(super) fn purge_locked(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError> {
        let selected = self.selected_dead(writes, scope, group, selection)?;
        for (seq, _) in &selected {
            writes.remove(scope.dead(group, *seq));
        }
        Ok(selected.len() as u64)
    }
}

/// The delivery a lease of `message` hands out.
fn deliver(group: &GroupName, seq: u64, leased: &Pending, message: StoredMessage) -> Delivery {
    delivery::delivery(
        group,
        seq,
        leased,
        message.body,
        message.key,
        message.published_at,
    )
}

/// The pending entries of one group in the tree: the `p` entries, with the due index and the
/// key queues (`k`) kept in step.
struct GroupPending<'w, 'a> {
    writes: &'w mut WriteSet<'a>,
    scope: &'w Scope,
    group: &'w GroupName,
}

impl<'w, 'a> GroupPending<'w, 'a> {
    fn new(writes: &'w mut WriteSet<'a>, scope: &'w Scope, group: &'w GroupName) -> Self {
        GroupPending {
            writes,
            scope,
            group,
        }
    }

    /// Writes the dead letter of `seq` (with its own copy of the body) and finishes it.
    fn dead_letter(
        &mut self,
        seq: u64,
        pending: &Pending,
        message: &StoredMessage,
        error: String,
        now: u64,
    ) -> Result<(), QueueError> {
        let dead = StoredDead {
            dead_at: now,
            published_at: message.published_at,
            attempts: pending.attempt,
            lease: pending.lease,
            key: message.key.clone(),
            last_error: bounded_error(&error),
            body: message.body.clone(),
        };
        self.writes
            .insert(self.scope.dead(self.group, seq), dead.encode()?);
        delivery::finish(self, seq, pending)
    }
}

impl PendingStore for GroupPending<'_, '_> {
    type Error = QueueError;

    fn get(&mut self, id: u64) -> Result<Option<Pending>, QueueError> {
        Ok(self
            .writes
            .get(&self.scope.pending(self.group, id))?
            .and_then(|raw| Pending::decode(&raw)))
    }

    fn put(
        &mut self,
        id: u64,
        pending: &Pending,
        previous: Option<&Pending>,
    ) -> Result<(), QueueError> {
        let (scope, group) = (self.scope, self.group);
        match previous {
            Some(previous) if previous.is_due_by_time() => {
                self.writes.due_remove(scope, group, previous.due_at, id);
            }
            Some(_) => {}
            None => {
                if let Some(key) = &pending.key {
                    self.writes
                        .insert(scope.key_queue(group, key, id), Vec::new());
                }
            }
        }
        if pending.is_due_by_time() {
            self.writes.due_insert(scope, group, pending.due_at, id);
        }
        self.writes
            .insert(scope.pending(group, id), pending.encode()?);
        Ok(())
    }

    fn remove(&mut self, id: u64, previous: &Pending) -> Result<(), QueueError> {
        let (scope, group) = (self.scope, self.group);
        self.writes.remove(scope.pending(group, id));
        if previous.is_due_by_time() {
            self.writes.due_remove(scope, group, previous.due_at, id);
        }
        if let Some(key) = &previous.key {
            self.writes.remove(scope.key_queue(group, key, id));
        }
        Ok(())
    }

    fn key_busy(&mut self, key: &str) -> Result<bool, QueueError> {
        let prefix = self.scope.key_queue_prefix(self.group, key);
        Ok(self.writes.first_with_prefix(&prefix)?.is_some())
    }

    fn first_of_key(&mut self, key: &str) -> Result<Option<(u64, Pending)>, QueueError> {
        let prefix = self.scope.key_queue_prefix(self.group, key);
        let Some((next_key, _)) = self.writes.first_with_prefix(&prefix)? else {
            return Ok(None);
        };
        let next = trailing_u64(&next_key);
        match self.get(next)? {
            Some(pending) => Ok(Some((next, pending))),
            // A key-queue entry without its pending entry: drop it.
            None => {
                self.writes.remove(next_key);
                Ok(None)
            }
        }
    }
}
