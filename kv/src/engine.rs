//! The [`KvEngine`] trait and the maintenance that runs beside every engine.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrobase_core::{ChangeLog, Namespace};
use tokio::sync::watch;

use crate::{Entry, Key, KvError, ListPage, ListQuery, Txn, TxnOutcome};

/// How long change-log events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Drop events older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many events per namespace.
    pub max_events: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_events: None,
        }
    }
}

/// A key-value backend with a per-namespace change log.
///
/// Every committed mutation appends its event to the namespace log in the same atomic step as
/// the data, so the engine is also the [`ChangeLog`] its events are read from. Entries whose TTL
/// has passed are invisible to every read at once, whether or not they have been swept yet.
#[async_trait]
pub trait KvEngine: ChangeLog {
    /// The live entry under `key`, if any.
    async fn get(&self, ns: &Namespace, key: &Key) -> Result<Option<Entry>, KvError>;

    /// Live keys of `ns` in ascending byte order.
    async fn list(&self, ns: &Namespace, query: &ListQuery) -> Result<ListPage, KvError>;

    /// Applies `txn` all or nothing, appending one event per effective mutation. Returns only
    /// once the change is durable for this engine; a failed check writes nothing.
    async fn commit(&self, ns: &Namespace, txn: Txn) -> Result<TxnOutcome, KvError>;

    /// Removes up to `limit` entries whose TTL has passed, each with a `ferrobase.kv.expire`
    /// event. Returns how many were removed.
    async fn expire_due(&self, limit: usize) -> Result<usize, KvError>;

    /// Drops change-log events beyond `retention`; returns how many were dropped.
    async fn prune_log(&self, retention: &Retention) -> Result<u64, KvError>;

    /// Makes everything committed so far durable (used at shutdown).
    async fn flush(&self) -> Result<(), KvError>;
}

/// Wakes change-log readers waiting for new events. Engines call [`LogNotifier::notify`] after
/// each commit; readers subscribe *before* checking the log head, so no append is missed.
#[derive(Debug)]
pub(crate) struct LogNotifier {
    appended: watch::Sender<u64>,
}

impl LogNotifier {
    pub(crate) fn new() -> Self {
        LogNotifier {
            appended: watch::channel(0).0,
        }
    }

    pub(crate) fn notify(&self) {
        self.appended
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }
}

/// Waits until the log of `ns` has events beyond `after`, using `head` to read the log head.
pub(crate) async fn wait_beyond<E: KvEngine + ?Sized>(
    engine: &E,
    notifier: &LogNotifier,
    ns: &Namespace,
    after: u64,
) {
    let mut appended = notifier.subscribe();
    loop {
        match engine.head(ns).await {
            Ok(head) if head > after => return,
            Ok(_) => {}
            // A failing log is not something to spin on; let the caller re-read and report.
            Err(_) => return,
        }
        if appended.changed().await.is_err() {
            return;
        }
    }
}

/// Runs TTL sweeping and change-log pruning every `interval` until `shutdown` resolves.
pub async fn run_maintenance(
    engine: Arc<dyn KvEngine>,
    interval: Duration,
    retention: Retention,
    shutdown: impl std::future::Future<Output = ()>,
) {
    const SWEEP_BATCH: usize = 1000;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        // Keep sweeping while full batches come back, so a burst of expiries drains quickly.
        loop {
            match engine.expire_due(SWEEP_BATCH).await {
                Ok(removed) if removed == SWEEP_BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "TTL sweep failed");
                    break;
                }
            }
        }
        if let Err(error) = engine.prune_log(&retention).await {
            tracing::warn!(%error, "change-log pruning failed");
        }
    }
}
