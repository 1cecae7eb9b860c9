//! Consumption: pull, ack and nack, each a step on the group's entry applied through its
//! [`lane`](super::lane) (compare-and-set, combined with concurrent steps). Dead-letter bodies
//! are written before the group entry that lists them; a step redone after a conflict may
//! leave an unlisted, unreachable copy. The delivery rules are `crate::delivery`'s, applied to
//! the group's entry ([`GroupState`] is their store); this file reads messages and dead-letter
//! bodies for them.
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
use super::records::{GroupState, StoredDead, infallible, read, storage};
use crate::delivery::{self, Admitted, Due, Pending, RetentionCut, Settled};
use crate::model::{ReceiptParts, SaturatingMillis};
use crate::{
    Delivery, GroupName, Nack, PullRequest, QueueConfig, QueueError, QueueName, Receipt,
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
        replayed: bool,
    ) -> Result<Option<(Item, u64)>, QueueError> {
        let (seq, index) = split(id);
        if let Some(envelope) = self.envelope_at(handle, seq).await?
            && let Some(item) = envelope.items.get(index)
        {
            return Ok(Some((item.clone(), envelope.published_at)));
        }
        if !replayed {
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
        let cut = RetentionCut::new(config, now);
        let mut out = Vec::new();

        // 1. Pending entries that are due: delayed, nacked, replayed, or whose lease expired.
        let mut due: Vec<(u64, u64)> = state
            .pending
            .iter()
            .filter(|(_, p)| p.is_due_by_time() && p.due_at <= now)
            .map(|(id, p)| (p.due_at, *id))
            .collect();
        due.sort_unstable();
        for (_, id) in due {
            if out.len() == request.max {
                break;
            }
            let pending = state.pending[&id].clone();
            let replayed = state.replayed.contains(&id);
            let message = self.message(handle, group, id, replayed).await?;
            let message = message.filter(|(_, published_at)| {
                replayed || (id >= floor && !cut.too_old(*published_at))
            });
            match delivery::due(&pending, message, config.max_deliver) {
                // Retention dropped the message: nothing left to deliver.
                Due::Gone => {
                    infallible(delivery::finish(state, id, &pending));
                    if replayed {
                        effects.forget.push(id);
                    }
                }
                Due::Exhausted {
                    message: (item, published_at),
                    error,
                } => dead_letter(state, effects, id, &pending, item, published_at, error, now),
                Due::Deliver((item, published_at)) => {
                    let leased =
                        delivery::lease(state, id, pending.clone(), Some(&pending), now, lease_ms);
                    out.push(deliver(group, id, &infallible(leased), item, published_at));
                }
            }
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
                if cut.too_old(envelope.published_at) {
                    continue;
                }
                let due_at = envelope.published_at.saturating_add(item.delay_ms);
                let admitted = delivery::admit(state, id, item.key.clone(), due_at, now);
                if let Admitted::Ready(pending) = infallible(admitted) {
                    let leased =
                        infallible(delivery::lease(state, id, pending, None, now, lease_ms));
                    out.push(deliver(
                        group,
                        id,
                        &leased,
                        item.clone(),
                        envelope.published_at,
                    ));
                }
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
        let parts = delivery::check_settle(receipts, nack, &self.limits)?;
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
            let replayed = state.replayed.contains(&id);
            let settled_one = delivery::settle(
                state,
                part,
                nack,
                config.max_deliver,
                MAX_PENDING_ERROR,
                now,
            );
            match infallible(settled_one) {
                Settled::Stale => {
                    stale.push(*index);
                    continue;
                }
                Settled::Acked(_) => {
                    if replayed {
                        effects.forget.push(id);
                    }
                }
                Settled::Retried => {}
                Settled::Exhausted { pending, error } => {
                    match self.message(handle, group, id, replayed).await? {
                        Some((item, published_at)) => {
                            dead_letter(
                                state,
                                effects,
                                id,
                                &pending,
                                item,
                                published_at,
                                error,
                                now,
                            );
                        }
                        None => infallible(delivery::finish(state, id, &pending)),
                    }
                }
            }
            settled += 1;
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

/// The delivery a lease of `item` hands out.
fn deliver(
    group: &GroupName,
    id: u64,
    leased: &Pending,
    item: Item,
    published_at: u64,
) -> Delivery {
    delivery::delivery(group, id, leased, item.body, item.key, published_at)
}
