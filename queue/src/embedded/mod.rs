//! The embedded, durable engine on sled 0.34.
//!
//! The engine has a sled database of its own (the server opens it in `{data_dir}/queue`), so
//! that queue traffic and its fsyncs do not contend with the KV store's, and one tree in it
//! (layout in [`keys`]). Every operation on a queue runs under that queue's lock (striped), reads
//! the tree through a [`writes::WriteSet`] and applies its changes as one atomic batch; the
//! caller is answered after [`group_commit`] made the batch durable.
//!
//! Events: a publish to a queue with events on writes an outbox entry per message in the same
//! batch; [`relay`] moves them into the namespace change log through the
//! [`RecordStore`], exactly once across crashes.
//!
//! - [`consume`]: pull, ack, nack, dead letters. [`maintain`]: retention, reclaiming consumed
//!   messages, dedup expiry, and the queue overview.

mod consume;
mod group_commit;
mod keys;
mod maintain;
mod relay;
mod writes;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrobase_core::records::RecordStore;
use ferrobase_core::{Clock, Namespace};
use tokio::sync::{Notify, watch};

use self::group_commit::GroupCommit;
pub(crate) use self::keys::StoredConfig;
use self::keys::{Scope, StoredMessage, decode_u64};
use self::writes::{Stripe, WriteSet};
use crate::delivery;
use crate::engine::MaintenanceReport;
use crate::model::SaturatingMillis;
use crate::model::validate_batch;
use crate::{
    DeadLetterPage, DeadLetterSelection, Delivery, EventEmission, GroupName, MessageId, Nack,
    NewMessage, PullRequest, Queue, QueueConfig, QueueError, QueueInfo, QueueLimits, QueueName,
    Receipt, SettleOutcome,
};

/// Queue locks; a queue hashes to one of them.
const LOCK_STRIPES: usize = 64;
/// Longest a waiting pull sleeps before looking again: delays and leases fall due with the
/// passing of time, not with a notification.
const MAX_NAP: Duration = Duration::from_millis(50);

/// The sled-backed queue engine. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    clock: Arc<dyn Clock>,
    limits: QueueLimits,
    committer: GroupCommit,
    /// Queue locks, each with the in-memory state of the queues hashing to it.
    locks: Vec<Mutex<Stripe>>,
    /// Bumped whenever messages may have become available, to wake long-polling pulls.
    available: watch::Sender<u64>,
    /// Wakes the outbox relay.
    relay_wake: Arc<Notify>,
    records: Arc<dyn RecordStore>,
}

impl EmbeddedQueue {
    /// Opens (or creates) the queue database in `dir`. Change-log events go through `records`.
    /// Must run inside a tokio runtime, which hosts the group committer and the outbox relay.
    pub fn open(
        dir: &Path,
        clock: Arc<dyn Clock>,
        limits: QueueLimits,
        records: Arc<dyn RecordStore>,
    ) -> Result<Self, QueueError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let tree = db.open_tree("queue")?;
        let relay_wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            committer: GroupCommit::start(db.clone()),
            db,
            tree,
            clock,
            limits,
            locks: (0..LOCK_STRIPES)
                .map(|_| Mutex::new(Stripe::default()))
                .collect(),
            available: watch::channel(0).0,
            relay_wake: relay_wake.clone(),
            records,
        });
        relay::spawn(Arc::downgrade(&inner), relay_wake);
        Ok(EmbeddedQueue { inner })
    }

    /// Relays every pending outbox entry to the change log now (the background relay does this
    /// on its own; tests and shutdown call it to be sure).
    pub async fn relay_events(&self) -> Result<usize, QueueError> {
        self.inner.relay_once().await
    }
}

impl Inner {
    fn lock(&self, scope: &Scope) -> MutexGuard<'_, Stripe> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        scope.prefix(0).hash(&mut hasher);
        let stripe = (hasher.finish() as usize) % LOCK_STRIPES;
        // A panic while holding the lock leaves no half-applied state (batches are atomic, and
        // the due index changes only after its batch applied), so a poisoned lock is safe to
        // keep using.
        self.locks[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn config(&self, scope: &Scope) -> Result<Option<QueueConfig>, QueueError> {
        let Some(raw) = self.tree.get(scope.config())? else {
            return Ok(None);
        };
        let stored: StoredConfig = serde_json::from_slice(&raw)
            .map_err(|error| QueueError::Storage(format!("corrupt queue config: {error}")))?;
        Ok(Some(stored.into()))
    }

    fn require_config(&self, scope: &Scope, queue: &QueueName) -> Result<QueueConfig, QueueError> {
        self.config(scope)?
            .ok_or_else(|| QueueError::QueueNotFound(queue.as_str().to_owned()))
    }

    /// Runs `body` under the queue's lock and applies its writes atomically. Returns whether
    /// anything was written, for the caller to wait for durability.
    fn locked<T>(
        &self,
        scope: &Scope,
        body: impl FnOnce(&mut WriteSet<'_>) -> Result<T, QueueError>,
    ) -> Result<(T, bool), QueueError> {
        let mut stripe = self.lock(scope);
        let mut writes = WriteSet::new(&self.tree, &mut stripe);
        let value = body(&mut writes)?;
        let wrote = !writes.is_empty();
        writes.apply()?;
        Ok((value, wrote))
    }

    fn wake_consumers(&self) {
        self.available.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn publish_locked(
        &self,
        writes: &mut WriteSet<'_>,
        scope: &Scope,
        queue: &QueueName,
        messages: Vec<NewMessage>,
        now: u64,
    ) -> Result<(Vec<MessageId>, bool), QueueError> {
        let config = self.require_config(scope, queue)?;
        let window = config.dedup_window.saturating_ms();
        let mut last = writes.get(&scope.last_seq())?.map_or(0, |v| decode_u64(&v));
        let first_new = last + 1;
        let mut ids = Vec::with_capacity(messages.len());
        let mut seen: HashMap<String, MessageId> = HashMap::new();
        for message in messages {
            if let Some(dedup_id) = &message.dedup_id {
                if let Some(id) = seen.get(dedup_id) {
                    ids.push(*id);
                    continue;
                }
                if let Some(raw) = writes.get(&scope.dedup(dedup_id))? {
                    let (seq, at) = (decode_u64(&raw[..8]), decode_u64(&raw[8..]));
                    if at.saturating_add(window) > now {
                        ids.push(MessageId(seq));
                        seen.insert(dedup_id.clone(), MessageId(seq));
                        continue;
                    }
                }
            }
            last += 1;
            let stored = StoredMessage {
                published_at: now,
                deliver_at: now.saturating_add(message.delay.saturating_ms()),
                key: message.key,
                body: message.body,
            };
            if config.events == EventEmission::On {
                let data = serde_json::json!({
                    "queue": queue.as_str(),
                    "id": last.to_string(),
                    "key": stored.key,
                    "size": stored.body.len(),
                    "delay_ms": message.delay.saturating_ms(),
                });
                writes.insert(scope.outbox(last), data.to_string().into_bytes());
            }
            writes.insert(scope.message(last), stored.encode()?);
            if let Some(dedup_id) = message.dedup_id {
                let mut value = last.to_be_bytes().to_vec();
                value.extend_from_slice(&now.to_be_bytes());
                writes.insert(scope.dedup(&dedup_id), value);
                writes.insert(scope.dedup_time(now, &dedup_id), Vec::new());
                seen.insert(dedup_id, MessageId(last));
            }
            ids.push(MessageId(last));
        }
        if last >= first_new {
            writes.insert(scope.last_seq(), last.to_be_bytes().to_vec());
        }
        let emitted = last >= first_new && config.events == EventEmission::On;
        Ok((ids, emitted))
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn configure(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        config: QueueConfig,
    ) -> Result<QueueConfig, QueueError> {
        config.validate()?;
        let scope = Scope::new(ns, queue);
        let stored = serde_json::to_vec(&StoredConfig::from(&config))
            .map_err(|error| QueueError::Storage(error.to_string()))?;
        self.inner.locked(&scope, |writes| {
            writes.insert(scope.config(), stored);
            Ok(())
        })?;
        self.inner.committer.durable().await?;
        Ok(config)
    }

    async fn list(
        &self,
        ns: &Namespace,
        after: Option<&QueueName>,
        max: usize,
    ) -> Result<Vec<QueueName>, QueueError> {
        // Config keys are `c ns 0 queue 0`: one prefix scan of the namespace, in name order.
        let mut prefix = vec![keys::CONFIG];
        prefix.extend_from_slice(ns.as_str().as_bytes());
        prefix.push(0);
        let mut names = Vec::new();
        for key in self.inner.tree.scan_prefix(&prefix).keys() {
            let key = key.map_err(|error| QueueError::Storage(error.to_string()))?;
            let Some((_, queue)) = keys::parse_scope(&key) else {
                continue;
            };
            if after.is_some_and(|after| queue.as_str() <= after.as_str()) {
                continue;
            }
            names.push(queue);
            if names.len() == max {
                break;
            }
        }
        Ok(names)
    }

    async fn info(
        &self,
        ns: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<QueueInfo>, QueueError> {
        self.inner.info(&Scope::new(ns, queue))
    }

    async fn publish(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<MessageId>, QueueError> {
        validate_batch(&messages, &self.inner.limits)?;
        let scope = Scope::new(ns, queue);
        let now = self.inner.clock.now_ms();
        let ((ids, emitted), _) = self.inner.locked(&scope, |writes| {
            self.inner
                .publish_locked(writes, &scope, queue, messages, now)
        })?;
        self.inner.committer.durable().await?;
        self.inner.wake_consumers();
        if emitted {
            self.inner.relay_wake.notify_one();
        }
        Ok(ids)
    }

    async fn pull(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        request: &PullRequest,
    ) -> Result<Vec<Delivery>, QueueError> {
        request.validate(&self.inner.limits)?;
        let scope = Scope::new(ns, queue);
        let deadline = Instant::now() + request.wait;
        loop {
            // Subscribe before looking, so that a publish between the look and the wait wakes us.
            let mut available = self.inner.available.subscribe();
            let (deliveries, _) = self.inner.locked(&scope, |writes| {
                let config = self.inner.require_config(&scope, queue)?;
                self.inner
                    .pull_locked(writes, &scope, &config, request, self.inner.clock.now_ms())
            })?;
            // Leases are not waited for: they become durable with the next flush (the next
            // publish, ack or nack of any queue, or sled's own within 500 ms). A crash before
            // that hands the messages out again as first attempts: at least once either way,
            // and the consumer's round trip costs one fsync (its ack), not two.
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            let nap = (deadline - now).min(MAX_NAP);
            tokio::select! {
                _ = available.changed() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn ack(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
    ) -> Result<SettleOutcome, QueueError> {
        self.settle(ns, queue, receipts, None).await
    }

    async fn nack(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
        nack: &Nack,
    ) -> Result<SettleOutcome, QueueError> {
        self.settle(ns, queue, receipts, Some(nack)).await
    }

    async fn dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<DeadLetterPage, QueueError> {
        let scope = Scope::new(ns, queue);
        self.inner.require_config(&scope, queue)?;
        self.inner.dead_letters(&scope, group, after, limit)
    }

    async fn replay_dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError> {
        let scope = Scope::new(ns, queue);
        let now = self.inner.clock.now_ms();
        let (count, wrote) = self.inner.locked(&scope, |writes| {
            self.inner.require_config(&scope, queue)?;
            self.inner
                .replay_locked(writes, &scope, group, selection, now)
        })?;
        if wrote {
            self.inner.committer.durable().await?;
            self.inner.wake_consumers();
        }
        Ok(count)
    }

    async fn purge_dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError> {
        let scope = Scope::new(ns, queue);
        let (count, wrote) = self.inner.locked(&scope, |writes| {
            self.inner.require_config(&scope, queue)?;
            self.inner.purge_locked(writes, &scope, group, selection)
        })?;
        if wrote {
            self.inner.committer.durable().await?;
        }
        Ok(count)
    }

    async fn maintain(&self) -> Result<MaintenanceReport, QueueError> {
        let report = self.inner.maintain_all()?;
        self.inner.committer.durable().await?;
        Ok(report)
    }

    async fn flush(&self) -> Result<(), QueueError> {
        self.inner.db.flush_async().await?;
        Ok(())
    }
}

impl EmbeddedQueue {
    async fn settle(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
        nack: Option<&Nack>,
    ) -> Result<SettleOutcome, QueueError> {
        let parts = delivery::check_settle(receipts, nack, &self.inner.limits)?;
        let scope = Scope::new(ns, queue);
        let now = self.inner.clock.now_ms();
        let (outcome, wrote) = self.inner.locked(&scope, |writes| {
            let config = self.inner.require_config(&scope, queue)?;
            self.inner
                .settle_locked(writes, &scope, &config, receipts, &parts, nack, now)
        })?;
        if wrote {
            self.inner.committer.durable().await?;
            self.inner.wake_consumers();
        }
        Ok(outcome)
    }
}
