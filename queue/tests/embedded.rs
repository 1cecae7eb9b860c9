//! What only the embedded engine can be asked: state across reopening its directory, and the
//! outbox relay's exactly-once delivery when a change-log commit fails on either side.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrobase_core::records::{Record, RecordCommit, RecordError, RecordOutcome, RecordStore};
use ferrobase_core::{Clock, ManualClock, Namespace};
use ferrobase_queue::conformance::MemoryRecordStore;
use ferrobase_queue::{
    EmbeddedQueue, EventEmission, NewMessage, PullRequest, Queue, QueueConfig, QueueLimits,
    QueueName,
};

fn ns() -> Namespace {
    Namespace::parse("shop").unwrap()
}

fn queue() -> QueueName {
    QueueName::parse("jobs").unwrap()
}

/// Opens `dir`, retrying while the previous engine's background tasks still hold the database.
async fn reopen(dir: &Path, clock: Arc<dyn Clock>, records: Arc<dyn RecordStore>) -> EmbeddedQueue {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match EmbeddedQueue::open(dir, clock.clone(), QueueLimits::default(), records.clone()) {
            Ok(engine) => return engine,
            Err(error) => {
                assert!(Instant::now() < deadline, "cannot reopen: {error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_reopening() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let clock = ManualClock::starting_now();
    let records: Arc<dyn RecordStore> = Arc::new(MemoryRecordStore::default());
    let engine = reopen(dir.path(), clock.clone(), records.clone()).await;
    engine
        .configure(&ns(), &queue(), QueueConfig::default())
        .await
        .unwrap();
    engine
        .publish(
            &ns(),
            &queue(),
            vec![
                NewMessage::new("acked"),
                NewMessage::new("leased"),
                NewMessage::new("new"),
            ],
        )
        .await
        .unwrap();
    let request = PullRequest {
        max: 2,
        lease: Duration::from_secs(10),
        ..PullRequest::default()
    };
    let got = engine.pull(&ns(), &queue(), &request).await.unwrap();
    engine
        .ack(&ns(), &queue(), &[got[0].receipt.clone()])
        .await
        .unwrap();
    drop(engine);

    let engine = reopen(dir.path(), clock.clone(), records).await;
    let info = engine
        .info(&ns(), &queue())
        .await
        .unwrap()
        .expect("config kept");
    assert_eq!(info.config, QueueConfig::default());
    let now = engine
        .pull(&ns(), &queue(), &PullRequest::default())
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = now.iter().map(|d| d.body.as_ref()).collect();
    assert_eq!(
        bodies,
        [b"new".as_ref()],
        "the lease holds across the reopen"
    );
    clock.advance(Duration::from_secs(10));
    let back = engine
        .pull(&ns(), &queue(), &PullRequest::default())
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body.as_ref(), b"leased");
    assert_eq!(back[0].attempt, 2, "attempts are durable");
    // The old receipt still names the old lease: stale now.
    let stale = engine
        .ack(&ns(), &queue(), &[got[1].receipt.clone()])
        .await
        .unwrap();
    assert_eq!(stale.settled, 0);
}

/// A record store that fails one commit, either before applying it or after (as if the
/// process died before hearing the answer).
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryRecordStore,
    /// 0: work; 1: fail the next commit after applying it; 2: fail it without applying.
    mode: AtomicU8,
}

#[async_trait]
impl RecordStore for Flaky {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Record>, RecordError> {
        self.inner.get(ns, key).await
    }

    async fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, RecordError> {
        self.inner.scan(ns, prefix, after, limit).await
    }

    async fn commit(
        &self,
        ns: &Namespace,
        commit: RecordCommit,
    ) -> Result<RecordOutcome, RecordError> {
        match self.mode.swap(0, Ordering::SeqCst) {
            1 => {
                self.inner.commit(ns, commit).await?;
                Err(RecordError::Storage("connection lost after commit".into()))
            }
            2 => Err(RecordError::Storage("connection lost before commit".into())),
            _ => self.inner.commit(ns, commit).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_appends_each_event_exactly_once_across_failures() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let records = Arc::new(Flaky::default());
    let engine = EmbeddedQueue::open(
        dir.path(),
        ManualClock::starting_now(),
        QueueLimits::default(),
        records.clone(),
    )
    .unwrap();
    let config = QueueConfig {
        events: EventEmission::On,
        ..QueueConfig::default()
    };
    engine.configure(&ns(), &queue(), config).await.unwrap();
    // Let the relay drain anything on its own first, then fail deliberately.
    engine.relay_events().await.unwrap();

    for mode in [1, 2] {
        records.mode.store(mode, Ordering::SeqCst);
        let batch = vec![NewMessage::new("a"), NewMessage::new("b")];
        engine.publish(&ns(), &queue(), batch).await.unwrap();
        // Whoever relays first (the background relay or this call) meets the failure; then
        // relaying until the outbox is empty must leave each event exactly once.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let _ = engine.relay_events().await;
            let expected = if mode == 1 { 2 } else { 4 };
            let events = records.inner.events(&ns());
            if events.len() >= expected && records.mode.load(Ordering::SeqCst) == 0 {
                assert_eq!(events.len(), expected, "no duplicates (mode {mode})");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "events not relayed (mode {mode})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Nothing further trickles in.
    engine.relay_events().await.unwrap();
    let events = records.inner.events(&ns());
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e.data["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_maintenance_run_reclaims_any_backlog() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let records: Arc<dyn RecordStore> = Arc::new(MemoryRecordStore::default());
    let engine = reopen(dir.path(), ManualClock::starting_now(), records).await;
    engine
        .configure(&ns(), &queue(), QueueConfig::default())
        .await
        .unwrap();
    // More than one maintenance pass deletes at once.
    let total = 25_000;
    for batch in 0..total / 1000 {
        let messages = (0..1000)
            .map(|i| NewMessage::new(format!("{batch}-{i}")).with_dedup_id(format!("{batch}-{i}")))
            .collect();
        engine.publish(&ns(), &queue(), messages).await.unwrap();
    }
    let request = PullRequest {
        max: 1000,
        ..PullRequest::default()
    };
    let mut consumed = 0;
    while consumed < total {
        let got = engine.pull(&ns(), &queue(), &request).await.unwrap();
        assert!(!got.is_empty());
        let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
        engine.ack(&ns(), &queue(), &receipts).await.unwrap();
        consumed += got.len();
    }
    let report = engine.maintain().await.unwrap();
    assert_eq!(report.consumed, total as u64);
    let info = engine.info(&ns(), &queue()).await.unwrap().unwrap();
    assert_eq!(info.messages, 0);
}
