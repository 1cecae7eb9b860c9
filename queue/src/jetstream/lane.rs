//! How steps on a consumer group are applied: read the group's entry, change a copy, write it
//! back with compare-and-set.
//!
//! Steps that arrive while the group is busy are combined: callers queue their step, and
//! whoever next holds the group's lock runs every queued step in arrival order on one copy of
//! the entry and writes it once, answering each caller. Under load a group's pulls and acks
//! thus cost one write per round rather than one each, the way group commit shares an fsync.
//! On a conflict (another node changed the group) the entry is read again and every step of
//! the round is redone, so each outcome is computed from the state it replaces. A round in
//! which a step fails writes nothing and answers every step of it with the failure. A caller
//! dropped while running a round (its request cancelled) abandons the other steps of the round:
//! they answer with an error, though their change may have been written (a pull's messages
//! then come back when their lease ends; an ack's receipts read as stale when retried).

use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, try_join_all};
use tokio::sync::oneshot;

use super::Inner;
use super::handle::Handle;
use super::records::{GroupState, StoredDead, Written, read, storage, write};
use crate::{GroupName, QueueError};

/// What steps wrote besides the group entry.
#[derive(Debug, Default)]
pub(super) struct SideEffects {
    /// Dead letters to store before the group entry lists them.
    pub dead: Vec<(u64, StoredDead)>,
    /// Dead-letter copies to delete once the group entry no longer needs them.
    pub forget: Vec<u64>,
}

/// One read-modify-write step on a group's state.
pub(super) trait GroupStep: Send + 'static {
    type Output: Send + 'static;

    fn apply(
        &self,
        inner: &Inner,
        handle: &Handle,
        state: &mut GroupState,
        effects: &mut SideEffects,
    ) -> impl Future<Output = Result<Self::Output, QueueError>> + Send;
}

/// A group's entry as last read or written by this process, its lock, and the steps waiting
/// for the next round.
#[derive(Debug, Default)]
pub(super) struct Lane {
    slot: tokio::sync::Mutex<Slot>,
    waiting: Mutex<Vec<Box<dyn Queued>>>,
}

#[derive(Debug, Default)]
struct Slot {
    state: GroupState,
    revision: u64,
    loaded: bool,
}

/// A queued step with its caller's answer, type-erased so that one round holds any steps.
trait Queued: Send + std::fmt::Debug {
    fn apply<'a>(
        &'a mut self,
        inner: &'a Inner,
        handle: &'a Handle,
        state: &'a mut GroupState,
        effects: &'a mut SideEffects,
    ) -> BoxFuture<'a, Result<(), QueueError>>;

    fn answer(self: Box<Self>, failure: Option<QueueError>);
}

struct Job<S: GroupStep> {
    step: S,
    output: Option<S::Output>,
    reply: oneshot::Sender<Result<S::Output, QueueError>>,
}

impl<S: GroupStep> std::fmt::Debug for Job<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl<S: GroupStep> Queued for Job<S> {
    fn apply<'a>(
        &'a mut self,
        inner: &'a Inner,
        handle: &'a Handle,
        state: &'a mut GroupState,
        effects: &'a mut SideEffects,
    ) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let output = self.step.apply(inner, handle, state, effects).await?;
            self.output = Some(output);
            Ok(())
        })
    }

    fn answer(self: Box<Self>, failure: Option<QueueError>) {
        let answer = match (failure, self.output) {
            (None, Some(output)) => Ok(output),
            (Some(error), _) => Err(error),
            (None, None) => Err(QueueError::Storage("a group step was not run".into())),
        };
        // The caller may have gone away; its step took effect regardless.
        let _ = self.reply.send(answer);
    }
}

impl Inner {
    /// Applies `step` to the group's entry (combined with other callers' steps, see the module
    /// docs) and answers its outcome once written.
    pub(super) async fn with_group<S: GroupStep>(
        &self,
        handle: &Handle,
        group: &GroupName,
        step: S,
    ) -> Result<S::Output, QueueError> {
        let lane = handle.group_lane(group);
        let (reply, mut answered) = oneshot::channel();
        lock(&lane.waiting).push(Box::new(Job {
            step,
            output: None,
            reply,
        }));
        loop {
            tokio::select! {
                biased;
                answer = &mut answered => {
                    return answer.unwrap_or_else(|_| {
                        Err(QueueError::Storage("a group step was abandoned".into()))
                    });
                }
                mut slot = lane.slot.lock() => {
                    let round = std::mem::take(&mut *lock(&lane.waiting));
                    if !round.is_empty() {
                        self.run_round(handle, group, &mut slot, round).await;
                    }
                    // Our step ran in this round or an earlier one: its answer is waiting.
                }
            }
        }
    }

    async fn run_round(
        &self,
        handle: &Handle,
        group: &GroupName,
        slot: &mut Slot,
        mut round: Vec<Box<dyn Queued>>,
    ) {
        let outcome = self.apply_round(handle, group, slot, &mut round).await;
        let text = outcome.as_ref().err().map(ToString::to_string);
        let mut first_failure = outcome.err();
        for job in round {
            let failure = first_failure
                .take()
                .or_else(|| text.clone().map(QueueError::Storage));
            job.answer(failure);
        }
    }

    async fn apply_round(
        &self,
        handle: &Handle,
        group: &GroupName,
        slot: &mut Slot,
        round: &mut [Box<dyn Queued>],
    ) -> Result<(), QueueError> {
        let key = handle.names.group_key(group);
        loop {
            let fresh = !slot.loaded;
            if !slot.loaded {
                let found = read(&self.groups, &key).await?;
                slot.state = match &found.value {
                    Some(raw) => GroupState::decode(raw)?,
                    None => GroupState::default(),
                };
                slot.revision = found.revision;
                slot.loaded = true;
            }
            let mut state = slot.state.clone();
            let mut effects = SideEffects::default();
            for job in round.iter_mut() {
                job.apply(self, handle, &mut state, &mut effects).await?;
            }
            if state == slot.state {
                // Steps that change nothing are never checked by a compare-and-set, so their
                // outcome counts only if computed from the current entry: another node may
                // have changed the group since this process last saw it.
                if fresh {
                    return Ok(());
                }
                slot.loaded = false;
                continue;
            }
            try_join_all(effects.dead.iter().map(|(id, dead)| async move {
                let raw = dead.encode()?;
                self.dead
                    .put(handle.names.dead_key(group, *id), raw)
                    .await
                    .map_err(|e| storage("storing a dead letter", e))
            }))
            .await?;
            match write(&self.groups, &key, state.encode(), slot.revision).await? {
                Written::At(revision) => {
                    slot.state = state;
                    slot.revision = revision;
                    for id in effects.forget {
                        let _ = self.dead.delete(handle.names.dead_key(group, id)).await;
                    }
                    return Ok(());
                }
                Written::Conflict => slot.loaded = false,
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only ever holds a list that is pushed to or taken whole: never half-changed.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handle {
    pub(super) fn group_lane(&self, group: &GroupName) -> Arc<Lane> {
        lock(&self.groups).entry(group.clone()).or_default().clone()
    }
}
