//! Consumption: pull, ack, nack and the dead-letter list, each run under the queue's lock.
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
use super::keys::{
    DEAD, Pending, PendingState, Scope, StoredDead, StoredMessage, decode_u64, trailing_u64,
};
use super::writes::WriteSet;
use crate::model::SaturatingMillis;
use crate::model::{ReceiptParts, bounded_error};
use crate::{
    DeadLetter, DeadLetterPage, DeadLetterSelection, Delivery, GroupName, MessageId, Nack,
    PullRequest, QueueConfig, QueueError, Receipt, SettleOutcome,
};

/// Most new messages one pull examines past the cursor, so that a long run of delayed or
/// key-blocked messages cannot make one pull arbitrarily slow.
const CURSOR_SCAN: usize = 4096;

/// Why a message left its group without an ack.
const LEASE_EXPIRED: &str = "lease expired";

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
        let oldest_kept = config
            .retention
            .max_age
            .map(|age| now.saturating_sub(age.saturating_ms()));
        let too_old =
            |message: &StoredMessage| oldest_kept.is_some_and(|t| message.published_at < t);
        let mut out = Vec::new();

        // 1. Pending entries that are due: delayed, nacked, replayed, or whose lease expired.
        // Some candidates may be dropped rather than delivered, so look at more than `max`.
        let candidates = writes.due_until(scope, group, now, request.max * 2 + 64)?;
        for (due_at, seq) in candidates {
            if out.len() == request.max {
                break;
            }
            let pending_key = scope.pending(group, seq);
            let pending = writes
                .get(&pending_key)?
                .and_then(|raw| Pending::decode(&raw));
            let Some(pending) = pending.filter(|p| p.in_due_index() && p.due_at == due_at) else {
                // An index entry without its pending entry: drop it.
                writes.due_remove(scope, group, due_at, seq);
                continue;
            };
            let message = writes
                .get(&scope.message(seq))?
                .and_then(|raw| StoredMessage::decode(&raw));
            let Some(message) = message.filter(|m| !too_old(m)) else {
                // Retention dropped the message: nothing left to deliver.
                self.finish(writes, scope, group, seq, &pending)?;
                continue;
            };
            if pending.attempt >= config.max_deliver {
                let error = match pending.state {
                    PendingState::Leased => LEASE_EXPIRED.to_owned(),
                    PendingState::Waiting | PendingState::Blocked => pending
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "max_deliver reached".to_owned()),
                };
                self.dead_letter(writes, scope, group, seq, &pending, &message, error, now)?;
                continue;
            }
            writes.due_remove(scope, group, due_at, seq);
            out.push(self.lease(writes, scope, group, seq, pending, message, now, lease_ms)?);
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
                let Some(message) = StoredMessage::decode(&raw).filter(|m| !too_old(m)) else {
                    continue;
                };
                let mut pending = Pending {
                    state: PendingState::Waiting,
                    due_at: message.deliver_at,
                    attempt: 0,
                    lease: 0,
                    key: message.key.clone(),
                    last_error: None,
                };
                if let Some(key) = &message.key {
                    let blocked = writes
                        .first_with_prefix(&scope.key_queue_prefix(group, key))?
                        .is_some();
                    writes.insert(scope.key_queue(group, key, seq), Vec::new());
                    if blocked {
                        pending.state = PendingState::Blocked;
                        writes.insert(scope.pending(group, seq), pending.encode()?);
                        continue;
                    }
                }
                if message.deliver_at > now {
                    writes.due_insert(scope, group, pending.due_at, seq);
                    writes.insert(scope.pending(group, seq), pending.encode()?);
                    continue;
                }
                out.push(self.lease(writes, scope, group, seq, pending, message, now, lease_ms)?);
            }
            if cursor != Some(next_cursor) {
                writes.insert(group_key, next_cursor.to_be_bytes().to_vec());
            }
        }
        Ok(out)
    }

    /// Leases `seq` to the caller: one more attempt, a new lease id, due again at the lease's end.
    #[allow(clippy::too_many_arguments)]
    fn lease(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        group: &GroupName,
        seq: u64,
        mut pending: Pending,
        message: StoredMessage,
        now: u64,
        lease_ms: u64,
    ) -> Result<Delivery, QueueError> {
        pending.state = PendingState::Leased;
        pending.attempt += 1;
        pending.lease += 1;
        pending.due_at = now.saturating_add(lease_ms);
        writes.due_insert(scope, group, pending.due_at, seq);
        writes.insert(scope.pending(group, seq), pending.encode()?);
        Ok(Delivery {
            id: MessageId(seq),
            receipt: Receipt::new(group, MessageId(seq), pending.lease),
            body: message.body,
            attempt: pending.attempt,
            key: message.key,
            published_at_ms: message.published_at,
        })
    }

    /// Removes a pending entry (acked, dead-lettered or dropped) and, when it was the active
    /// entry of its key, lets the next message of that key through.
    fn finish(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        group: &GroupName,
        seq: u64,
        pending: &Pending,
    ) -> Result<(), QueueError> {
        writes.remove(scope.pending(group, seq));
        if pending.in_due_index() {
            writes.due_remove(scope, group, pending.due_at, seq);
        }
        let Some(key) = &pending.key else {
            return Ok(());
        };
        writes.remove(scope.key_queue(group, key, seq));
        if pending.state == PendingState::Blocked {
            return Ok(());
        }
        let Some((next_key, _)) = writes.first_with_prefix(&scope.key_queue_prefix(group, key))?
        else {
            return Ok(());
        };
        let next_seq = trailing_u64(&next_key);
        let next_pending_key = scope.pending(group, next_seq);
        match writes
            .get(&next_pending_key)?
            .and_then(|raw| Pending::decode(&raw))
        {
            Some(mut next) if next.state == PendingState::Blocked => {
                next.state = PendingState::Waiting;
                writes.due_insert(scope, group, next.due_at, next_seq);
                writes.insert(next_pending_key, next.encode()?);
            }
            Some(_) => {}
            // A key-queue entry without its pending entry: drop it and look further.
            None => {
                writes.remove(next_key);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        group: &GroupName,
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
        writes.insert(scope.dead(group, seq), dead.encode()?);
        self.finish(writes, scope, group, seq, pending)
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
            let pending_key = scope.pending(&part.group, seq);
            let current = writes
                .get(&pending_key)?
                .and_then(|raw| Pending::decode(&raw))
                .filter(|p| p.state == PendingState::Leased && p.lease == part.lease);
            let Some(mut pending) = current else {
                outcome.stale.push(receipt.clone());
                continue;
            };
            outcome.settled += 1;
            let Some(nack) = nack else {
                self.finish(writes, scope, &part.group, seq, &pending)?;
                continue;
            };
            let error = nack.error.as_deref().map(bounded_error);
            if pending.attempt >= config.max_deliver {
                let message = writes
                    .get(&scope.message(seq))?
                    .and_then(|raw| StoredMessage::decode(&raw));
                match message {
                    Some(message) => {
                        let error = error
                            .or(pending.last_error.clone())
                            .unwrap_or_else(|| "nacked".to_owned());
                        self.dead_letter(
                            writes,
                            scope,
                            &part.group,
                            seq,
                            &pending,
                            &message,
                            error,
                            now,
                        )?;
                    }
                    None => self.finish(writes, scope, &part.group, seq, &pending)?,
                }
                continue;
            }
            writes.due_remove(scope, &part.group, pending.due_at, seq);
            pending.state = PendingState::Waiting;
            pending.due_at = now.saturating_add(nack.delay.saturating_ms());
            if error.is_some() {
                pending.last_error = error;
            }
            writes.due_insert(scope, &part.group, pending.due_at, seq);
            writes.insert(pending_key, pending.encode()?);
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
            let mut pending = Pending {
                state: PendingState::Waiting,
                due_at: now,
                attempt: 0,
                lease: dead.lease,
                key: dead.key.clone(),
                last_error: None,
            };
            if let Some(key) = &dead.key {
                let busy = writes
                    .first_with_prefix(&scope.key_queue_prefix(group, key))?
                    .is_some();
                writes.insert(scope.key_queue(group, key, seq), Vec::new());
                if busy {
                    pending.state = PendingState::Blocked;
                }
            }
            if pending.in_due_index() {
                writes.due_insert(scope, group, now, seq);
            }
            writes.insert(scope.pending(group, seq), pending.encode()?);
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
