//! The NATS JetStream engine, for clusters: several Ferrobase nodes share one NATS server (or
//! cluster) and stay correct together.
//!
//! Layout on the server (names in [`names`]):
//! - one stream per queue, the durable message log. One stream message is one whole publish
//!   call (the batch [`envelope`]), so a batch is all or nothing; a message id packs the
//!   envelope's sequence and the message's index. Publishes carry `Nats-Msg-Id`, so a retried
//!   publish is stored once.
//! - KV buckets for everything else ([`records`]): queue records (configuration, groups,
//!   floor), one entry per consumer group (cursor, leases, attempts, delayed and nacked
//!   entries, key order, dead ids), dead letters with their bodies, and dedup ids. Group
//!   entries change only by compare-and-set on their revision; inside one process the steps of
//!   concurrent callers on one group are combined into one write instead of conflicting.
//!
//! Time comes from the injected [`Clock`], never from server timers: delays, leases, the
//! dedup window and retention by age are all computed by the engine, which is what lets the
//! conformance suite move time by hand. Retention and reclaiming are done by `maintain()`,
//! which moves the queue's floor and purges the stream below it.
//!
//! Events: the stream is the outbox. A publish to a queue with events on marks its envelope;
//! the [`relay`] reads envelopes past a cursor record kept in the [`RecordStore`] and appends
//! their events together with the advanced cursor, under a version condition, so each event
//! reaches the change log once even with several nodes relaying.
//!
//! - [`handle`]: what the engine keeps in memory per queue (stream, cached record, recent
//!   envelopes, group locks).
//! - [`lane`]: how steps on a group's entry are applied: compare-and-set, and concurrent steps
//!   combined into one write.
//! - [`publish`]: publishing and dedup. [`consume`]: pull, ack, nack. [`dead`]: the
//!   dead-letter list. [`maintain`]: retention, reclaiming, the queue overview.
//! - `NatsServer` (feature `test-utils`): a `nats-server -js` on a free port for tests.

mod consume;
mod dead;
mod envelope;
mod group_codec;
mod handle;
mod lane;
mod maintain;
mod names;
mod publish;
mod records;
mod relay;
#[cfg(feature = "test-utils")]
mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_trait::async_trait;
use ferrobase_core::records::RecordStore;
use ferrobase_core::{Clock, Namespace};
use tokio::sync::{Notify, watch};

use self::envelope::MAX_ENVELOPE;
use self::handle::Handle;
use self::names::Names;
use self::records::{QueueRecord, Written, from_json, read, storage, to_json, write};
use crate::embedded::StoredConfig;
use crate::engine::MaintenanceReport;
use crate::{
    DeadLetterPage, DeadLetterSelection, Delivery, EventEmission, GroupName, MessageId, Nack,
    NewMessage, PullRequest, Queue, QueueConfig, QueueError, QueueInfo, QueueLimits, QueueName,
    Receipt, SettleOutcome,
};

#[cfg(feature = "test-utils")]
pub use self::server::NatsServer;

/// Where the JetStream engine finds its server and how it names what it creates there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// NATS server URL, e.g. `nats://127.0.0.1:4222` (several, comma-separated, for a cluster).
    pub url: String,
    /// Prefix of every stream, bucket and subject the engine creates: 1 to 32 of `A-Z a-z 0-9 -`.
    /// Deployments sharing a server need different prefixes. Default `ferrobase`.
    pub prefix: String,
    /// Replicas of each stream and bucket: 1 on a single server, 3 in a typical cluster.
    pub replicas: usize,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        JetStreamConfig {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "ferrobase".into(),
            replicas: 1,
        }
    }
}

/// The JetStream-backed queue engine. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct JetStreamQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    config: JetStreamConfig,
    queues: kv::Store,
    groups: kv::Store,
    dead: kv::Store,
    dedup: kv::Store,
    clock: Arc<dyn Clock>,
    limits: QueueLimits,
    records: Arc<dyn RecordStore>,
    handles: Mutex<HashMap<(Namespace, QueueName), Arc<Handle>>>,
    /// Bumped whenever this process made messages available, to wake long-polling pulls.
    available: watch::Sender<u64>,
    relay_wake: Arc<Notify>,
}

impl JetStreamQueue {
    /// Connects to the server and creates the engine's buckets when missing. Must run inside a
    /// tokio runtime, which hosts the event relay.
    pub async fn connect(
        config: JetStreamConfig,
        clock: Arc<dyn Clock>,
        limits: QueueLimits,
        records: Arc<dyn RecordStore>,
    ) -> Result<Self, QueueError> {
        let prefix_ok = (1..=32).contains(&config.prefix.len())
            && config
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !prefix_ok {
            return Err(QueueError::invalid(
                "the JetStream prefix must be 1 to 32 of A-Z, a-z, 0-9 and '-'",
            ));
        }
        if limits.max_batch >= MAX_ENVELOPE {
            return Err(QueueError::invalid(format!(
                "max_batch must be below {MAX_ENVELOPE} with the JetStream engine"
            )));
        }
        let client = async_nats::connect(&config.url)
            .await
            .map_err(|e| storage("connecting to NATS", e))?;
        let js = jetstream::new(client.clone());
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: format!("{}_{name}", config.prefix),
            history: 1,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            ..Default::default()
        };
        // Dedup entries are judged by the engine's clock; the server forgets them only long
        // after any window (at most a day) has passed.
        let dedup_age = Duration::from_secs(26 * 3600);
        let inner = Inner {
            queues: ensure_bucket(&js, bucket("queues", Duration::ZERO)).await?,
            groups: ensure_bucket(&js, bucket("groups", Duration::ZERO)).await?,
            dead: ensure_bucket(&js, bucket("dead", Duration::ZERO)).await?,
            dedup: ensure_bucket(&js, bucket("dedup", dedup_age)).await?,
            client,
            js,
            config,
            clock,
            limits,
            records,
            handles: Mutex::default(),
            available: watch::channel(0).0,
            relay_wake: Arc::new(Notify::new()),
        };
        let inner = Arc::new(inner);
        relay::spawn(Arc::downgrade(&inner), inner.relay_wake.clone());
        Ok(JetStreamQueue { inner })
    }

    /// Relays every pending event to the change log now (the background relay does this on its
    /// own; tests and shutdown call it to be sure).
    pub async fn relay_events(&self) -> Result<usize, QueueError> {
        self.inner.relay_once().await
    }
}

/// Opens a KV bucket, creating it when missing. The bucket's stream is created directly, with
/// the settings a KV bucket has, because the client's own bucket creation first reads account
/// details in a form that nats-server 2.9 does not answer with.
async fn ensure_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, QueueError> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let stream = stream::Config {
        name: format!("KV_{}", config.bucket),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history,
        max_age: config.max_age,
        storage: config.storage,
        num_replicas: config.num_replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120).min(if config.max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            config.max_age
        }),
        ..Default::default()
    };
    // Another node may create it at the same moment: either way it exists afterwards.
    let created = js.get_or_create_stream(stream).await;
    js.get_key_value(&config.bucket)
        .await
        .map_err(|error| match created {
            Err(create) => storage("creating a KV bucket", create),
            Ok(_) => storage("opening a KV bucket", error),
        })
}

impl Inner {
    fn lock_handles(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(Namespace, QueueName), Arc<Handle>>> {
        // The map is only ever inserted into; a panic elsewhere cannot leave it inconsistent.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_consumers(&self) {
        self.available.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[async_trait]
impl Queue for JetStreamQueue {
    async fn list(
        &self,
        ns: &Namespace,
        after: Option<&QueueName>,
        max: usize,
    ) -> Result<Vec<QueueName>, QueueError> {
        self.inner.list_queues(ns, after, max).await
    }

    async fn configure(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        config: QueueConfig,
    ) -> Result<QueueConfig, QueueError> {
        config.validate()?;
        let inner = &self.inner;
        let names = Names::new(&inner.config.prefix, ns, queue);
        let stream = inner.ensure_stream(&names).await?;
        let stored = StoredConfig::from(&config);
        loop {
            let found = read(&inner.queues, names.queue_key()).await?;
            let mut record = match &found.value {
                Some(raw) => from_json(raw)?,
                None => QueueRecord {
                    ns: ns.as_str().to_owned(),
                    queue: queue.as_str().to_owned(),
                    config: stored.clone(),
                    groups: Default::default(),
                    floor: 0,
                },
            };
            record.config = stored.clone();
            let written = write(
                &inner.queues,
                names.queue_key(),
                to_json(&record)?,
                found.revision,
            )
            .await?;
            if let Written::At(revision) = written {
                let handle = inner.remember(ns, queue, names, stream, record.clone(), revision);
                handle.cache_record(record, revision);
                break;
            }
        }
        if config.events == EventEmission::On {
            inner.relay_wake.notify_one();
        }
        Ok(config)
    }

    async fn info(
        &self,
        ns: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<QueueInfo>, QueueError> {
        match self.inner.handle(ns, queue).await {
            Ok(handle) => self.inner.info(&handle).await.map(Some),
            Err(QueueError::QueueNotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn publish(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<MessageId>, QueueError> {
        crate::model::validate_batch(&messages, &self.inner.limits)?;
        let handle = self.inner.handle(ns, queue).await?;
        self.inner.publish(&handle, messages).await
    }

    async fn pull(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        request: &PullRequest,
    ) -> Result<Vec<Delivery>, QueueError> {
        request.validate(&self.inner.limits)?;
        let handle = self.inner.handle(ns, queue).await?;
        self.inner.pull(&handle, request).await
    }

    async fn ack(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
    ) -> Result<SettleOutcome, QueueError> {
        self.inner.settle(ns, queue, receipts, None).await
    }

    async fn nack(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        receipts: &[Receipt],
        nack: &Nack,
    ) -> Result<SettleOutcome, QueueError> {
        self.inner.limits.check_nack(nack)?;
        self.inner.settle(ns, queue, receipts, Some(nack)).await
    }

    async fn dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<DeadLetterPage, QueueError> {
        let handle = self.inner.handle(ns, queue).await?;
        self.inner.dead_letters(&handle, group, after, limit).await
    }

    async fn replay_dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError> {
        let handle = self.inner.handle(ns, queue).await?;
        self.inner.replay(&handle, group, selection).await
    }

    async fn purge_dead_letters(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        group: &GroupName,
        selection: &DeadLetterSelection,
    ) -> Result<u64, QueueError> {
        let handle = self.inner.handle(ns, queue).await?;
        self.inner.purge_dead(&handle, group, selection).await
    }

    async fn maintain(&self) -> Result<MaintenanceReport, QueueError> {
        self.inner.maintain_all().await
    }

    async fn flush(&self) -> Result<(), QueueError> {
        // Every write was acknowledged by the server once stored; only the connection's
        // outgoing buffer may hold something.
        self.inner
            .client
            .flush()
            .await
            .map_err(|e| storage("flushing the NATS connection", e))
    }
}
