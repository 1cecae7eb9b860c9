//! Consumption: pull, ack and nack, each a step on the group's entry applied through its
//! [`lane`](super::lane) (compare-and-set, combined with concurrent steps). Dead-letter bodies
//! are written before the group entry that lists them; a step redone after a conflict may
//! leave an unlisted, unreachable copy.
//!
//! A group takes messages in id order past its cursor. A message it cannot deliver yet
//! (delayed, or behind an earlier message with the same key) becomes a pending entry; so does
//! every delivered message, leased until its lease ends. Of the pending entries sharing a key,
//! only the lowest id is ever due; finishing it lets the next one through.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use super::Inner;
use super::dead::dead_letter;
use super::envelope::{Item, message_id, split};
use super::handle::Handle;
use super::lane::{GroupStep, SideEffects};
use super::records::{GroupState, Pending, PendingState, StoredDead, read, storage};
use crate::model::SaturatingMillis;
use crate::model::{ReceiptParts, bounded_error};
use crate::{
    Delivery, GroupName, MessageId, Nack, PullRequest, QueueConfig, QueueError, QueueName, Receipt,
    SettleOutcome,
};
use ferrobase_core::Namespace;

/// Most new messages one pull examines past the cursor.
const CURSOR_SCAN: usize = 4096;
/// Most messages a group holds pending (leased, delayed, nacked, behind their key); past it,
/// pulls take no new messages until some are finished. The group's entry carries every pending
/// message and must fit one NATS message (1 MiB by default).
pub(super) const MAX_PENDING: usize = 4096;
/// Longest error text kept with a pending message (the dead letter of a nack keeps the nack's
/// whole error), so that errors cannot grow the group's entry past what NATS accepts.
const MAX_PENDING_ERROR: usize = 256;
/// Longest a waiting pull sleeps before looking again: delays and leases fall due with the
/// passing of time, not with a notification.
const MAX_NAP: std::time::Duration = std::time::Duration::from_millis(50);
const LEASE_EXPIRED: &str = "lease expired";

impl Inner {
    /// Makes sure the queue record lists `group`, so that maintenance takes it into account.
    async fn register_group(&self, handle: &Handle, group: &GroupName) -> Result<(), QueueError> {
        if handle.lock_record().record.groups.contains(group.as_str()) {
            return Ok(());
        }
        self.update_record(handle, |record| {
            record.groups.insert(group.as_str().to_owned());
        })
        .await?;
        Ok(())
    }

    /// The message `id` as a group sees it: from the stream, or for a replayed dead letter the
    /// stream no longer has, from the dead letter.
    async fn message(
        &self,
        handle: &Handle,
        group: &GroupName,
        id: u64,
        pending: &Pending,
    ) -> Result<Option<(Item, u64)>, QueueError> {
        let (seq, index) = split(id);
        if let Some(envelope) = self.envelope_at(handle, seq).await?
            && let Some(item) = envelope.items.get(index)
        {
            return Ok(Some((item.clone(), envelope.published_at)));
        }
        if !pending.replayed {
            return Ok(None);
        }
        let found = read(&self.dead, &handle.names.dead_key(group, id)).await?;
        let Some(raw) = found.value else {
            return Ok(None);
        };
        let dead = StoredDead::decode(&raw)?;
        let item = Item {
            delay_ms: 0,
            key: dead.meta.key,
            body: dead.body,
        };
        Ok(Some((item, dead.meta.published_at)))
    }

    pub(super) async fn pull(
        self: &Inner,
        handle: &Arc<Handle>,
        request: &PullRequest,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.register_group(handle, &request.group).await?;
        let deadline = Instant::now() + request.wait;
        let mut subscription = None;
        loop {
            // Subscribe before looking, so that a publish between the look and the wait wakes us.
            let mut available = self.available.subscribe();
            let record = self.record(handle).await?;
            let config = QueueConfig::from(record.config.clone());
            let floor = record.floor;
            let deliveries = self
                .with_group(
                    handle,
                    &request.group,
                    PullStep {
                        config: config.clone(),
                        floor,
                        request: request.clone(),
                    },
                )
                .await?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            // Publishes of other nodes wake us through the queue's subjects; look once more
            // after subscribing.
            if subscription.is_none() {
                subscription = Some(
                    self.client
                        .subscribe(handle.names.all_subjects())
                        .await
                        .map_err(|e| storage("subscribing to the queue", e))?,
                );
                continue;
            }
            let nap = (deadline - now).min(MAX_NAP);
            let published = async {
                match subscription.as_mut() {
                    Some(subscription) => {
                        futures::StreamExt::next(subscription).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = available.changed() => {}
                _ = published => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn pull_step(
        &self,
        handle: &Handle,
        step: &PullStep,
        state: &mut GroupState,
        effects: &mut SideEffects,
    ) -> Result<Vec<Delivery>, QueueError> {
        let (config, floor, request) = (&step.config, step.floor, &step.request);
        let group = &request.group;
        let now = self.clock.now_ms();
        let lease_ms = request.lease.saturating_ms();
        let oldest_kept = config
            .retention
            .max_age
            .map(|age| now.saturating_sub(age.saturating_ms()));
        let too_old = |published_at: u64| oldest_kept.is_some_and(|t| published_at < t);
        let mut out = Vec::new();

        // 1. Pending entries that are due: delayed, nacked, replayed, or whose lease expired.
        let mut due: Vec<(u64, u64)> = state
            .pending
            .iter()
            .filter(|(_, p)| p.state != PendingState::Blocked && p.due_at <= now)
            .map(|(id, p)| (p.due_at, *id))
            .collect();
        due.sort_unstable();
        for (_, id) in due {
            if out.len() == request.max {
                break;
            }
            let pending = state.pending[&id].clone();
            let message = self.message(handle, group, id, &pending).await?;
            let Some((item, published_at)) = message.filter(|(_, published_at)| {
                pending.replayed || (id >= floor && !too_old(*published_at))
            }) else {
                // Retention dropped the message: nothing left to deliver.
                state.finish(id);
                if pending.replayed {
                    effects.forget.push(id);
                }
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
                dead_letter(state, effects, id, &pending, item, published_at, error, now);
                continue;
            }
            out.push(lease(
                state,
                group,
                id,
                pending,
                item,
                published_at,
                now,
                lease_ms,
            ));
        }

        // 2. New messages past the cursor.
        let mut cursor = state.cursor.max(floor);
        let mut scanned = 0;
        while out.len() < request.max && scanned < CURSOR_SCAN && state.pending.len() < MAX_PENDING
        {
            let (seq, index) = split(cursor);
            let Some(envelope) = self.envelope_from(handle, seq).await? else {
                break;
            };
            let start = if envelope.seq == seq { index } else { 0 };
            for (index, item) in envelope.items.iter().enumerate().skip(start) {
                if out.len() == request.max || state.pending.len() >= MAX_PENDING {
                    break;
                }
                let id = message_id(envelope.seq, index).0;
                cursor = id + 1;
                scanned += 1;
                if too_old(envelope.published_at) {
                    continue;
                }
                let mut pending = Pending {
                    state: PendingState::Waiting,
                    due_at: envelope.published_at.saturating_add(item.delay_ms),
                    attempt: 0,
                    lease: 0,
                    key: item.key.clone(),
                    last_error: None,
                    replayed: false,
                };
                if let Some(key) = &item.key
                    && state.key_busy(key)
                {
                    pending.state = PendingState::Blocked;
                    state.pending.insert(id, pending);
                    continue;
                }
                if pending.due_at > now {
                    state.pending.insert(id, pending);
                    continue;
                }
                let (item, published_at) = (item.clone(), envelope.published_at);
                out.push(lease(
                    state,
                    group,
                    id,
                    pending,
                    item,
                    published_at,
                    now,
                    lease_ms,
                ));
            }
            if split(cursor).1 >= envelope.items.len() || envelope.seq != split(cursor).0 {
                cursor = message_id(envelope.seq + 1, 0).0;
            }
        }
        state.cursor = cursor;
        Ok(out)
    }

    pub(super) async fn settle(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
        nack: Option<&Nack>,
    ) -> Result<SettleOutcome, QueueError> {
        if receipts.is_empty() {
            return Err(QueueError::invalid("no receipts given"));
        }
        if receipts.len() > self.limits.max_pull {
            return Err(QueueError::TooLarge(format!(
                "at most {} receipts at once",
                self.limits.max_pull
            )));
        }
        let parts = receipts
            .iter()
            .map(Receipt::parts)
            .collect::<Result<Vec<_>, _>>()?;
        let handle = self.handle(ns, queue).await?;
        let config = QueueConfig::from(self.record(&handle).await?.config);
        let mut groups: Vec<&GroupName> = Vec::new();
        for part in &parts {
            if !groups.contains(&&part.group) {
                groups.push(&part.group);
            }
        }
        let mut settled = 0;
        let mut stale: HashSet<usize> = HashSet::new();
        for group in groups {
            let mine: Vec<(usize, ReceiptParts)> = parts
                .iter()
                .enumerate()
                .filter(|(_, part)| &part.group == group)
                .map(|(index, part)| (index, part.clone()))
                .collect();
            let (count, stale_here) = self
                .with_group(
                    &handle,
                    group,
                    SettleStep {
                        config: config.clone(),
                        group: group.clone(),
                        parts: mine,
                        nack: nack.cloned(),
                    },
                )
                .await?;
            settled += count;
            stale.extend(stale_here);
        }
        if nack.is_some() && settled > 0 {
            self.wake_consumers();
        }
        Ok(SettleOutcome {
            settled,
            stale: receipts
                .iter()
                .enumerate()
                .filter(|(index, _)| stale.contains(index))
                .map(|(_, receipt)| receipt.clone())
                .collect(),
        })
    }

    async fn settle_step(
        &self,
        handle: &Handle,
        step: &SettleStep,
        state: &mut GroupState,
        effects: &mut SideEffects,
    ) -> Result<(usize, Vec<usize>), QueueError> {
        let (config, group, nack) = (&step.config, &step.group, step.nack.as_ref());
        let now = self.clock.now_ms();
        let (mut settled, mut stale) = (0, Vec::new());
        for (index, part) in &step.parts {
            let id = part.id.0;
            let current = state
                .pending
                .get(&id)
                .filter(|p| p.state == PendingState::Leased && p.lease == part.lease)
                .cloned();
            let Some(mut pending) = current else {
                stale.push(*index);
                continue;
            };
            settled += 1;
            let Some(nack) = nack else {
                state.finish(id);
                if pending.replayed {
                    effects.forget.push(id);
                }
                continue;
            };
            let error = nack.error.as_deref().map(bounded_error);
            if pending.attempt >= config.max_deliver {
                match self.message(handle, group, id, &pending).await? {
                    Some((item, published_at)) => {
                        let error = error
                            .or(pending.last_error.clone())
                            .unwrap_or_else(|| "nacked".to_owned());
                        dead_letter(state, effects, id, &pending, item, published_at, error, now);
                    }
                    None => {
                        state.finish(id);
                    }
                }
                continue;
            }
            pending.state = PendingState::Waiting;
            pending.due_at = now.saturating_add(nack.delay.saturating_ms());
            if let Some(error) = error {
                pending.last_error = Some(truncate(&error, MAX_PENDING_ERROR));
            }
            state.pending.insert(id, pending);
        }
        Ok((settled, stale))
    }

    /// The group's entry as stored now (for reads that take no lock).
    pub(super) async fn read_group(
        &self,
        handle: &Handle,
        group: &GroupName,
    ) -> Result<GroupState, QueueError> {
        let found = read(&self.groups, &handle.names.group_key(group)).await?;
        match &found.value {
            Some(raw) => GroupState::decode(raw),
            None => Ok(GroupState::default()),
        }
    }
}

struct PullStep {
    config: QueueConfig,
    floor: u64,
    request: PullRequest,
}

impl GroupStep for PullStep {
    type Output = Vec<Delivery>;

    async fn apply(
        &self,
        inner: &Inner,
        handle: &Handle,
        state: &mut GroupState,
        effects: &mut SideEffects,
    ) -> Result<Vec<Delivery>, QueueError> {
        inner.pull_step(handle, self, state, effects).await
    }
}

struct SettleStep {
    config: QueueConfig,
    group: GroupName,
    /// (index among all receipts, the receipt) of this group's receipts.
    parts: Vec<(usize, ReceiptParts)>,
    nack: Option<Nack>,
}

impl GroupStep for SettleStep {
    type Output = (usize, Vec<usize>);

    async fn apply(
        &self,
        inner: &Inner,
        handle: &Handle,
        state: &mut GroupState,
        effects: &mut SideEffects,
    ) -> Result<(usize, Vec<usize>), QueueError> {
        inner.settle_step(handle, self, state, effects).await
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Leases `id` to the caller: one more attempt, a new lease number, due again at the lease's end.
#[allow(clippy::too_many_arguments)]
fn lease(
    state: &mut GroupState,
    group: &GroupName,
    id: u64,
    mut pending: Pending,
    item: Item,
    published_at: u64,
    now: u64,
    lease_ms: u64,
) -> Delivery {
    pending.state = PendingState::Leased;
    pending.attempt += 1;
    pending.lease += 1;
    pending.due_at = now.saturating_add(lease_ms);
    let delivery = Delivery {
        id: MessageId(id),
        receipt: Receipt::new(group, MessageId(id), pending.lease),
        body: item.body,
        attempt: pending.attempt,
        key: item.key,
        published_at_ms: published_at,
    };
    state.pending.insert(id, pending);
    delivery
}
