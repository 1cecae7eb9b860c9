//! The dead-letter list of a group: listing, replaying, purging.
//!
//! A dead letter is an id in the group's entry plus a copy of the message in the dead-letter
//! bucket (the stream may be purged below it). A replayed message reads its body from that
//! copy when the stream no longer has it; the copy is deleted once the message is finished.

use futures::future::try_join_all;

use super::Inner;
use super::envelope::Item;
use super::handle::Handle;
use super::lane::{GroupStep, SideEffects};
use super::records::{DeadMeta, GroupState, StoredDead, infallible, read};
use crate::delivery::{self, Pending};
use crate::model::bounded_error;
use crate::{DeadLetter, DeadLetterPage, DeadLetterSelection, GroupName, MessageId, QueueError};

impl Inner {
    pub(super) async fn read_dead(
        &self,
        handle: &Handle,
        group: &GroupName,
        id: u64,
    ) -> Result<Option<StoredDead>, QueueError> {
        let found = read(&self.dead, &handle.names.dead_key(group, id)).await?;
        found.value.map(|raw| StoredDead::decode(&raw)).transpose()
    }

    pub(super) async fn dead_letters(
        &self,
        handle: &Handle,
        group: &GroupName,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<DeadLetterPage, QueueError> {
        let state = self.read_group(handle, group).await?;
        let start = after.map_or(0, |id| id.0.saturating_add(1));
        let ids: Vec<u64> = state
            .dead
            .range(start..)
            .map(|(id, _)| *id)
            .take(limit + 1)
            .collect();
        let shown = &ids[..ids.len().min(limit)];
        let found = try_join_all(shown.iter().map(|id| self.read_dead(handle, group, *id))).await?;
        let mut page = DeadLetterPage::default();
        for (id, dead) in shown.iter().zip(found) {
            let Some(dead) = dead else {
                continue;
            };
            page.messages.push(DeadLetter {
                id: MessageId(*id),
                body: dead.body,
                key: dead.meta.key,
                attempts: dead.meta.attempts,
                last_error: dead.meta.last_error,
                published_at_ms: dead.meta.published_at,
                dead_at_ms: dead.meta.dead_at,
            });
        }
        if ids.len() > limit {
            page.next = shown.last().map(|id| MessageId(*id));
        }
        Ok(page)
    }

    pub(super) async fn replay(
        &self,
        handle: &Handle,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError> {
        let count = self
            .with_group(
                handle,
                group,
                ReplayStep {
                    group: group.clone(),
                    selection: selection.clone(),
                },
            )
            .await?;
        if count > 0 {
            self.wake_consumers();
        }
        Ok(count)
    }

    pub(super) async fn purge_dead(
        &self,
        handle: &Handle,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError> {
        self.with_group(
            handle,
            group,
            PurgeStep {
                selection: selection.clone(),
            },
        )
        .await
    }

    async fn replay_step(
        &self,
        handle: &Handle,
        group: &GroupName,
        selection: &DeadLetterSelection,
        state: &mut GroupState,
    ) -> Result<u64, QueueError> {
        let now = self.clock.now_ms();
        let selected = selected(state, selection);
        for id in &selected {
            let Some(dead) = self.read_dead(handle, group, *id).await? else {
                state.dead.remove(id);
                continue;
            };
            let lease = state.dead.remove(id).unwrap_or_default();
            infallible(delivery::replay(state, *id, dead.meta.key, lease, now));
            state.replayed.insert(*id);
        }
        Ok(selected.len() as u64)
    }
}

struct ReplayStep {
    group: GroupName,
    selection: DeadLetterSelection,
}

impl GroupStep for ReplayStep {
    type Output = u64;

    async fn apply(
        &self,
        inner: &Inner,
        handle: &Handle,
        state: &mut GroupState,
        _: &mut SideEffects,
    ) -> Result<u64, QueueError> {
        inner
            .replay_step(handle, &self.group, &self.selection, state)
            .await
    }
}

struct PurgeStep {
    selection: DeadLetterSelection,
}

impl GroupStep for PurgeStep {
    type Output = u64;

    async fn apply(
        &self,
        _: &Inner,
        _: &Handle,
        state: &mut GroupState,
        effects: &mut SideEffects,
    ) -> Result<u64, QueueError> {
        let selected = selected(state, &self.selection);
        for id in &selected {
            state.dead.remove(id);
            effects.forget.push(*id);
        }
        Ok(selected.len() as u64)
    }
}

/// The dead ids `selection` names that the group has.
fn selected(state: &GroupState, selection: &DeadLetterSelection) -> Vec<u64> {
    match selection {
        DeadLetterSelection::All => state.dead.keys().copied().collect(),
        DeadLetterSelection::Ids(ids) => ids
            .iter()
            .map(|id| id.0)
            .filter(|id| state.dead.contains_key(id))
            .collect(),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn dead_letter(
    state: &mut GroupState,
    effects: &mut SideEffects,
    id: u64,
    pending: &Pending,
    item: Item,
    published_at: u64,
    error: String,
    now: u64,
) {
    let dead = StoredDead {
        meta: DeadMeta {
            dead_at: now,
            published_at,
            attempts: pending.attempt,
            key: item.key,
            last_error: bounded_error(&error),
        },
        body: item.body,
    };
    effects.dead.push((id, dead));
    // A replayed message dead again keeps its (rewritten) copy.
    effects.forget.retain(|forgotten| *forgotten != id);
    state.dead.insert(id, pending.lease);
    infallible(delivery::finish(state, id, pending));
}
