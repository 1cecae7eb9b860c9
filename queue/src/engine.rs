//! The [`Queue`] trait and the maintenance loop that runs beside every engine.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrobase_core::Namespace;
use tokio::sync::Notify;

use crate::{
    DeadLetterPage, DeadLetterSelection, Delivery, GroupName, MessageId, Nack, NewMessage,
    PullRequest, QueueConfig, QueueError, QueueInfo, QueueName, Receipt, SettleOutcome,
};

/// What one maintenance pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Messages consumed by every group, dropped.
    pub consumed: u64,
    /// Messages dropped by retention (age or count), consumed or not.
    pub expired: u64,
    /// Dedup entries whose window had passed.
    pub dedup_forgotten: u64,
}

/// Durable work queues of every namespace.
///
/// Semantics every engine shares (the conformance suite holds them to it):
/// - A queue exists once configured; publishing to or pulling from an unknown queue is
///   [`QueueError::QueueNotFound`].
/// - A publish is all or nothing and is answered once durable. A `dedup_id` seen within the
///   queue's dedup window yields the first message's id and publishes nothing.
/// - Every consumer group sees every message published while the queue retains it; within a
///   group, consumers compete. A group comes into being with its first pull and starts at the
///   oldest retained message.
/// - A pull leases messages for `lease`; `ack` finishes them, `nack` makes them available again
///   after its delay, and an expired lease makes them available at once. Each delivery counts
///   one attempt; a message that would get more than `max_deliver` attempts goes to the
///   group's dead-letter list with its last error instead.
/// - Messages with the same key are delivered to a group in publish order, and the next one
///   only after the previous one was acked or dead-lettered.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Creates the queue or replaces its configuration; returns the stored configuration.
    async fn configure(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        config: QueueConfig,
    ) -> Result<QueueConfig, QueueError>;

    /// The namespace's configured queues in name order, those after `after`, at most `max`.
    async fn list(
        &self,
        ns: &Namespace,
        after: Option<&QueueName>,
        max: usize,
    ) -> Result<Vec<QueueName>, QueueError>;

    /// The queue's configuration and counters, or `None` when it was never configured.
    async fn info(
        &self,
        ns: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<QueueInfo>, QueueError>;

    /// Publishes `messages` all or nothing; returns their ids in order (for a deduplicated
    /// message, the id of the message it repeats).
    async fn publish(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<MessageId>, QueueError>;

    /// Leases up to `request.max` available messages to the caller, waiting up to
    /// `request.wait` for the first one.
    async fn pull(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        request: &PullRequest,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Finishes the deliveries `receipts` prove.
    async fn ack(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
    ) -> Result<SettleOutcome, QueueError>;

    /// Gives the deliveries back, available again after `nack.delay` (or dead-lettered when they
    /// used their last attempt).
    async fn nack(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
        nack: &Nack,
    ) -> Result<SettleOutcome, QueueError>;

    /// Dead letters of `group` with ids above `after`, oldest first, at most `limit`.
    async fn dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<DeadLetterPage, QueueError>;

    /// Makes the selected dead letters available to `group` again with fresh attempts; returns
    /// how many were replayed.
    async fn replay_dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError>;

    /// Deletes the selected dead letters; returns how many were deleted.
    async fn purge_dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError>;

    /// Applies retention, reclaims consumed messages and forgets old dedup ids, in every queue.
    async fn maintain(&self) -> Result<MaintenanceReport, QueueError>;

    /// Makes everything done so far durable (used at shutdown).
    async fn flush(&self) -> Result<(), QueueError>;
}

/// How often an event relay looks even without being woken (after a restart, or a failed
/// commit).
const RELAY_INTERVAL: Duration = Duration::from_secs(1);

/// Runs an engine's event relay: `step` whenever `wake` is notified and at least every
/// second, until `owner` (the engine's state) is dropped. A failed step is retried.
pub(crate) fn spawn_relay<T, F, Fut>(owner: std::sync::Weak<T>, wake: Arc<Notify>, step: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<usize, QueueError>> + Send,
{
    tokio::spawn(async move {
        loop {
            {
                let Some(owner) = owner.upgrade() else {
                    return;
                };
                if let Err(error) = step(owner).await {
                    tracing::warn!(%error, "queue event relay failed; retrying");
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(RELAY_INTERVAL) => {}
            }
        }
    });
}

/// Runs [`Queue::maintain`] every `interval` until `shutdown` resolves.
pub async fn run_maintenance(
    queue: Arc<dyn Queue>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = queue.maintain().await {
            tracing::warn!(%error, "queue maintenance failed");
        }
    }
}
