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
//!   entries change only by compare-and-set on their revision; inside one process a lock per
//!   (queue, group) keeps the steps of its callers from conflicting with each other.
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
//! - [`publish`]: publishing and dedup. [`consume`]: pull, ack, nack, dead letters.
//!   [`maintain`]: retention, reclaiming, the queue overview.
//! - `NatsServer` (feature `test-utils`): a `nats-server -js` on a free port for tests.

mod consume;
mod envelope;
mod maintain;
mod names;
mod publish;
mod records;
mod relay;
#[cfg(feature = "test-utils")]
mod server;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream};
use async_trait::async_trait;
use ferrobase_core::records::RecordStore;
use ferrobase_core::{Clock, Namespace};
use tokio::sync::{Notify, watch};

use self::envelope::{Envelope, MAX_ENVELOPE};
use self::names::Names;
use self::records::{GroupState, QueueRecord, Written, from_json, read, storage, to_json, write};
use crate::embedded::StoredConfig;
use crate::engine::MaintenanceReport;
use crate::{
    DeadLetterPage, DeadLetterSelection, Delivery, EventEmission, GroupName, MessageId, Nack,
    NewMessage, PullRequest, Queue, QueueConfig, QueueError, QueueInfo, QueueLimits, QueueName,
    Receipt, SettleOutcome,
};

#[cfg(feature = "test-utils")]
pub use self::server::NatsServer;

/// How long a queue's configuration read from the server is trusted before it is read again
/// (a change made on another node takes effect here within this time).
const RECORD_TTL: Duration = Duration::from_secs(1);
/// Envelope bytes cached per queue, so that consumers on the publishing node need no reads.
const CACHE_BYTES: usize = 32 << 20;

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

/// What the engine keeps in memory about one queue.
#[derive(Debug)]
struct Handle {
    ns: Namespace,
    queue: QueueName,
    names: Names,
    stream: stream::Stream,
    record: Mutex<CachedRecord>,
    envelopes: Mutex<EnvelopeCache>,
    groups: Mutex<HashMap<GroupName, Arc<tokio::sync::Mutex<GroupSlot>>>>,
    /// Serialises this process's publishes that carry dedup ids.
    dedup_lock: tokio::sync::Mutex<()>,
    maintain_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct CachedRecord {
    record: QueueRecord,
    revision: u64,
    read_at: Instant,
}

/// A group's entry as last read or written by this process, and its revision.
#[derive(Debug, Default)]
struct GroupSlot {
    state: GroupState,
    revision: u64,
    loaded: bool,
}

#[derive(Debug, Default)]
struct EnvelopeCache {
    by_seq: BTreeMap<u64, Arc<Envelope>>,
    bytes: usize,
}

impl EnvelopeCache {
    fn insert(&mut self, envelope: Arc<Envelope>) {
        let size: usize = envelope.items.iter().map(|i| i.body.len() + 32).sum();
        if self.by_seq.insert(envelope.seq, envelope).is_none() {
            self.bytes += size;
        }
        while self.bytes > CACHE_BYTES {
            let Some((_, old)) = self.by_seq.pop_first() else {
                break;
            };
            self.bytes = self
                .bytes
                .saturating_sub(old.items.iter().map(|i| i.body.len() + 32).sum());
        }
    }

    fn forget_below(&mut self, seq: u64) {
        let kept = self.by_seq.split_off(&seq);
        for old in std::mem::replace(&mut self.by_seq, kept).into_values() {
            self.bytes = self
                .bytes
                .saturating_sub(old.items.iter().map(|i| i.body.len() + 32).sum());
        }
    }
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

    /// The queue's handle; [`QueueError::QueueNotFound`] when it was never configured.
    async fn handle(&self, ns: &Namespace, queue: &QueueName) -> Result<Arc<Handle>, QueueError> {
        if let Some(handle) = self.lock_handles().get(&(ns.clone(), queue.clone())) {
            return Ok(handle.clone());
        }
        let names = Names::new(&self.config.prefix, ns, queue);
        let found = read(&self.queues, names.queue_key()).await?;
        let Some(raw) = found.value else {
            return Err(QueueError::QueueNotFound(queue.as_str().to_owned()));
        };
        let record: QueueRecord = from_json(&raw)?;
        let stream = self.ensure_stream(&names).await?;
        Ok(self.remember(ns, queue, names, stream, record, found.revision))
    }

    fn remember(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        names: Names,
        stream: stream::Stream,
        record: QueueRecord,
        revision: u64,
    ) -> Arc<Handle> {
        let handle = Handle {
            ns: ns.clone(),
            queue: queue.clone(),
            names,
            stream,
            record: Mutex::new(CachedRecord {
                record,
                revision,
                read_at: Instant::now(),
            }),
            envelopes: Mutex::default(),
            groups: Mutex::default(),
            dedup_lock: tokio::sync::Mutex::new(()),
            maintain_lock: tokio::sync::Mutex::new(()),
        };
        self.lock_handles()
            .entry((ns.clone(), queue.clone()))
            .or_insert_with(|| Arc::new(handle))
            .clone()
    }

    async fn ensure_stream(&self, names: &Names) -> Result<stream::Stream, QueueError> {
        let config = stream::Config {
            name: names.stream().to_owned(),
            subjects: vec![names.all_subjects()],
            storage: stream::StorageType::File,
            num_replicas: self.config.replicas,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        self.js
            .get_or_create_stream(config)
            .await
            .map_err(|e| storage("creating the queue's stream", e))
    }

    /// The queue's record, read again when the cached copy is older than [`RECORD_TTL`].
    async fn record(&self, handle: &Handle) -> Result<QueueRecord, QueueError> {
        {
            let cached = handle.lock_record();
            if cached.read_at.elapsed() < RECORD_TTL {
                return Ok(cached.record.clone());
            }
        }
        self.fresh_record(handle).await.map(|(record, _)| record)
    }

    async fn fresh_record(&self, handle: &Handle) -> Result<(QueueRecord, u64), QueueError> {
        let found = read(&self.queues, handle.names.queue_key()).await?;
        let raw = found
            .value
            .ok_or_else(|| QueueError::Storage("a queue record disappeared".into()))?;
        let record: QueueRecord = from_json(&raw)?;
        handle.cache_record(record.clone(), found.revision);
        Ok((record, found.revision))
    }

    /// Applies `change` to the queue record with compare-and-set, retrying on conflicts.
    async fn update_record(
        &self,
        handle: &Handle,
        change: impl Fn(&mut QueueRecord),
    ) -> Result<QueueRecord, QueueError> {
        loop {
            let (mut record, revision) = self.fresh_record(handle).await?;
            change(&mut record);
            let written = write(
                &self.queues,
                handle.names.queue_key(),
                to_json(&record)?,
                revision,
            )
            .await?;
            if let Written::At(revision) = written {
                handle.cache_record(record.clone(), revision);
                return Ok(record);
            }
        }
    }

    /// The envelope at `seq` or, when there is none (purged), the next one.
    async fn envelope_from(
        &self,
        handle: &Handle,
        seq: u64,
    ) -> Result<Option<Arc<Envelope>>, QueueError> {
        let seq = seq.max(1);
        if let Some(envelope) = handle.lock_envelopes().by_seq.get(&seq) {
            return Ok(Some(envelope.clone()));
        }
        let message = match handle
            .stream
            .direct_get_next_for_subject(handle.names.all_subjects(), Some(seq))
            .await
        {
            Ok(message) => message,
            Err(error) if error.kind() == stream::DirectGetErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(storage("reading the queue's stream", error)),
        };
        let envelope = Envelope::decode(message.sequence, &message.payload).ok_or_else(|| {
            QueueError::Storage(format!(
                "stream message {} is no envelope",
                message.sequence
            ))
        })?;
        let envelope = Arc::new(envelope);
        handle.lock_envelopes().insert(envelope.clone());
        Ok(Some(envelope))
    }

    /// The envelope at exactly `seq`, if the stream still has it.
    async fn envelope_at(
        &self,
        handle: &Handle,
        seq: u64,
    ) -> Result<Option<Arc<Envelope>>, QueueError> {
        Ok(self
            .envelope_from(handle, seq)
            .await?
            .filter(|envelope| envelope.seq == seq))
    }

    /// Handles of the queues this process knows to emit events.
    fn emitting(&self) -> Vec<Arc<Handle>> {
        self.lock_handles()
            .values()
            .filter(|h| h.lock_record().record.config.emits_events())
            .cloned()
            .collect()
    }
}

impl Handle {
    fn lock_record(&self) -> std::sync::MutexGuard<'_, CachedRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_envelopes(&self) -> std::sync::MutexGuard<'_, EnvelopeCache> {
        self.envelopes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_record(&self, record: QueueRecord, revision: u64) {
        let mut cached = self.lock_record();
        // Never go back to an older revision read concurrently.
        if revision >= cached.revision {
            *cached = CachedRecord {
                record,
                revision,
                read_at: Instant::now(),
            };
        }
    }

    fn group_slot(&self, group: &GroupName) -> Arc<tokio::sync::Mutex<GroupSlot>> {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(group.clone())
            .or_default()
            .clone()
    }
}

#[async_trait]
impl Queue for JetStreamQueue {
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
        if nack.delay > self.inner.limits.max_delay {
            return Err(QueueError::invalid(format!(
                "the nack delay exceeds the limit of {:?}",
                self.inner.limits.max_delay
            )));
        }
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
