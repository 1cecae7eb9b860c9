//! What the engine keeps in memory per queue — its stream, a cached copy of its record,
//! recently seen envelopes, one lock per group — and how it reads and updates them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream;
use ferrobase_core::Namespace;

use super::Inner;
use super::envelope::Envelope;
use super::lane::Lane;
use super::names::Names;
use super::records::{QueueRecord, Written, from_json, read, storage, to_json, write};
use crate::{GroupName, QueueError, QueueName};

/// How long a queue's configuration read from the server is trusted before it is read again
/// (a change made on another node takes effect here within this time).
const RECORD_TTL: Duration = Duration::from_secs(1);
/// Envelope bytes cached per queue, so that consumers on the publishing node need no reads.
const CACHE_BYTES: usize = 32 << 20;

/// What the engine keeps in memory about one queue.
#[derive(Debug)]
pub(super) struct Handle {
    pub(super) ns: Namespace,
    pub(super) queue: QueueName,
    pub(super) names: Names,
    pub(super) stream: stream::Stream,
    pub(super) record: Mutex<CachedRecord>,
    pub(super) envelopes: Mutex<EnvelopeCache>,
    pub(super) groups: Mutex<HashMap<GroupName, Arc<Lane>>>,
    /// Serialises this process's publishes that carry dedup ids.
    pub(super) dedup_lock: tokio::sync::Mutex<()>,
    pub(super) maintain_lock: tokio::sync::Mutex<()>,
    /// The queue emitted events at some point while this process knew it: envelopes marked
    /// for events may still wait for the relay after events were switched off.
    pub(super) emitted_events: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
pub(super) struct CachedRecord {
    pub(super) record: QueueRecord,
    pub(super) revision: u64,
    pub(super) read_at: Instant,
}

#[derive(Debug, Default)]
pub(super) struct EnvelopeCache {
    pub(super) by_seq: BTreeMap<u64, Arc<Envelope>>,
    pub(super) bytes: usize,
}

impl EnvelopeCache {
    pub(super) fn insert(&mut self, envelope: Arc<Envelope>) {
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

    pub(super) fn forget_below(&mut self, seq: u64) {
        let kept = self.by_seq.split_off(&seq);
        for old in std::mem::replace(&mut self.by_seq, kept).into_values() {
            self.bytes = self
                .bytes
                .saturating_sub(old.items.iter().map(|i| i.body.len() + 32).sum());
        }
    }
}

impl Inner {
    /// The queue's handle; [`QueueError::QueueNotFound`] when it was never configured.
    pub(super) async fn handle(
        &self,
        ns: &Namespace,
        queue: &QueueName,
    ) -> Result<Arc<Handle>, QueueError> {
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

    pub(super) fn remember(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        names: Names,
        stream: stream::Stream,
        record: QueueRecord,
        revision: u64,
    ) -> Arc<Handle> {
        let emitted_events = record.config.emits_events().into();
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
            emitted_events,
        };
        self.lock_handles()
            .entry((ns.clone(), queue.clone()))
            .or_insert_with(|| Arc::new(handle))
            .clone()
    }

    pub(super) async fn ensure_stream(&self, names: &Names) -> Result<stream::Stream, QueueError> {
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
    pub(super) async fn record(&self, handle: &Handle) -> Result<QueueRecord, QueueError> {
        {
            let cached = handle.lock_record();
            if cached.read_at.elapsed() < RECORD_TTL {
                return Ok(cached.record.clone());
            }
        }
        self.fresh_record(handle).await.map(|(record, _)| record)
    }

    pub(super) async fn fresh_record(
        &self,
        handle: &Handle,
    ) -> Result<(QueueRecord, u64), QueueError> {
        let found = read(&self.queues, handle.names.queue_key()).await?;
        let raw = found
            .value
            .ok_or_else(|| QueueError::Storage("a queue record disappeared".into()))?;
        let record: QueueRecord = from_json(&raw)?;
        handle.cache_record(record.clone(), found.revision);
        Ok((record, found.revision))
    }

    /// Applies `change` to the queue record with compare-and-set, retrying on conflicts.
    pub(super) async fn update_record(
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
    pub(super) async fn envelope_from(
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
    pub(super) async fn envelope_at(
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
    pub(super) fn emitting(&self) -> Vec<Arc<Handle>> {
        self.lock_handles()
            .values()
            .filter(|h| h.has_events_to_relay())
            .cloned()
            .collect()
    }
}

impl Handle {
    pub(super) fn lock_record(&self) -> std::sync::MutexGuard<'_, CachedRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn lock_envelopes(&self) -> std::sync::MutexGuard<'_, EnvelopeCache> {
        self.envelopes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether envelopes of this queue may carry events: it emits them now, or did earlier
    /// while this process knew it (envelopes keep the mark they were published with).
    pub(super) fn has_events_to_relay(&self) -> bool {
        self.emitted_events
            .load(std::sync::atomic::Ordering::Relaxed)
            || self.lock_record().record.config.emits_events()
    }

    pub(super) fn cache_record(&self, record: QueueRecord, revision: u64) {
        if record.config.emits_events() {
            self.emitted_events
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
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
}
