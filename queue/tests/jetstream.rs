//! The JetStream engine beyond the conformance suite: several engines (as on several Ferrobase
//! nodes) sharing one NATS server see one set of queues.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ferrobase_core::records::RecordStore;
use ferrobase_core::{ManualClock, Namespace};
use ferrobase_queue::conformance::MemoryRecordStore;
use ferrobase_queue::jetstream::NatsServer;
use ferrobase_queue::{
    JetStreamConfig, JetStreamQueue, NewMessage, PullRequest, Queue, QueueConfig, QueueLimits,
    QueueName, Receipt,
};

fn ns() -> Namespace {
    Namespace::parse("shop").unwrap()
}

fn queue() -> QueueName {
    QueueName::parse("orders").unwrap()
}

async fn node(server: &NatsServer, clock: &Arc<ManualClock>) -> JetStreamQueue {
    let records: Arc<dyn RecordStore> = Arc::new(MemoryRecordStore::default());
    let config = JetStreamConfig {
        url: server.url().to_owned(),
        ..JetStreamConfig::default()
    };
    JetStreamQueue::connect(config, clock.clone(), QueueLimits::default(), records)
        .await
        .expect("engine connects")
}

fn request(max: usize) -> PullRequest {
    PullRequest {
        max,
        lease: Duration::from_secs(60),
        ..PullRequest::default()
    }
}

/// A delivery made by one node settles on another, and each node sees the other's changes to
/// the group rather than a copy it cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_groups_and_receipts() {
    let server = NatsServer::start();
    let clock = ManualClock::starting_now();
    let (a, b) = (node(&server, &clock).await, node(&server, &clock).await);
    a.configure(&ns(), &queue(), QueueConfig::default())
        .await
        .unwrap();
    let messages = (0..6).map(|i| NewMessage::new(format!("m{i}"))).collect();
    b.publish(&ns(), &queue(), messages).await.unwrap();

    let on_a = a.pull(&ns(), &queue(), &request(2)).await.unwrap();
    let on_b = b.pull(&ns(), &queue(), &request(10)).await.unwrap();
    assert_eq!(
        (on_a.len(), on_b.len()),
        (2, 4),
        "each message goes out once"
    );
    // b acks a's deliveries, then a acks b's: a's cached view of the group is out of date.
    let receipts = |d: &[ferrobase_queue::Delivery]| -> Vec<Receipt> {
        d.iter().map(|d| d.receipt.clone()).collect()
    };
    assert_eq!(
        b.ack(&ns(), &queue(), &receipts(&on_a))
            .await
            .unwrap()
            .settled,
        2
    );
    assert_eq!(
        a.ack(&ns(), &queue(), &receipts(&on_b))
            .await
            .unwrap()
            .settled,
        4
    );
    assert!(
        a.pull(&ns(), &queue(), &request(10))
            .await
            .unwrap()
            .is_empty()
    );
    let info = b.info(&ns(), &queue()).await.unwrap().unwrap();
    assert_eq!(info.groups[0].pending, 0);

    // A dedup id published through one node is a repeat through the other.
    let first = a
        .publish(
            &ns(),
            &queue(),
            vec![NewMessage::new("x").with_dedup_id("d")],
        )
        .await
        .unwrap();
    let repeat = b
        .publish(
            &ns(),
            &queue(),
            vec![NewMessage::new("x").with_dedup_id("d")],
        )
        .await
        .unwrap();
    assert_eq!(first, repeat);
}

/// Consumers on two nodes pulling at the same time never get the same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_nodes_deliver_each_message_once() {
    const MESSAGES: usize = 200;
    let server = NatsServer::start();
    let clock = ManualClock::starting_now();
    let nodes = [
        Arc::new(node(&server, &clock).await),
        Arc::new(node(&server, &clock).await),
    ];
    nodes[0]
        .configure(&ns(), &queue(), QueueConfig::default())
        .await
        .unwrap();
    let messages = (0..MESSAGES)
        .map(|i| NewMessage::new(format!("{i}")))
        .collect();
    nodes[1].publish(&ns(), &queue(), messages).await.unwrap();
    let mut consumers = Vec::new();
    for engine in nodes.iter().chain(nodes.iter()) {
        let engine = engine.clone();
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = engine.pull(&ns(), &queue(), &request(7)).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|d| d.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for consumer in consumers {
        for id in consumer.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "{id} delivered twice");
        }
    }
    assert_eq!(total, MESSAGES);
}

/// A group's entry must fit one NATS message, so a group holds at most 4096 messages pending:
/// beyond that, pulls take nothing new until some are finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_holds_a_bounded_number_of_pending_messages() {
    let server = NatsServer::start();
    let clock = ManualClock::starting_now();
    let engine = node(&server, &clock).await;
    engine
        .configure(&ns(), &queue(), QueueConfig::default())
        .await
        .unwrap();
    for batch in 0..5 {
        let messages = (0..1000)
            .map(|i| NewMessage::new(format!("{batch}-{i}")))
            .collect();
        engine.publish(&ns(), &queue(), messages).await.unwrap();
    }
    let mut leased = Vec::new();
    loop {
        let got = engine.pull(&ns(), &queue(), &request(1000)).await.unwrap();
        if got.is_empty() {
            break;
        }
        leased.extend(got);
    }
    assert_eq!(leased.len(), 4096);
    let receipts: Vec<Receipt> = leased[..100].iter().map(|d| d.receipt.clone()).collect();
    engine.ack(&ns(), &queue(), &receipts).await.unwrap();
    let more = engine.pull(&ns(), &queue(), &request(1000)).await.unwrap();
    assert_eq!(more.len(), 100, "finished messages make room");
    assert_eq!(
        more[0].id.0,
        leased[4095].id.0 + 1,
        "in order, none skipped"
    );
}

/// Names at their longest, full of bytes NATS names escape, still make a working queue: the
/// stream name is shortened to fit the server's limit, and two such queues stay apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_names_make_working_queues() {
    let server = NatsServer::start();
    let clock = ManualClock::starting_now();
    let engine = node(&server, &clock).await;
    let ns = Namespace::parse(&format!("n{}", "_".repeat(62))).unwrap();
    let queues = [
        QueueName::parse(&format!("a{}", "._".repeat(63)).replace("..", ".")).unwrap(),
        QueueName::parse(&format!("b{}", "_.".repeat(63))).unwrap(),
    ];
    for (index, queue) in queues.iter().enumerate() {
        engine
            .configure(&ns, queue, QueueConfig::default())
            .await
            .unwrap();
        engine
            .publish(
                &ns,
                queue,
                vec![NewMessage::new(format!("message {index}"))],
            )
            .await
            .unwrap();
    }
    for (index, queue) in queues.iter().enumerate() {
        let got = engine.pull(&ns, queue, &request(10)).await.unwrap();
        let bodies: Vec<String> = got
            .iter()
            .map(|delivery| String::from_utf8(delivery.body.to_vec()).unwrap())
            .collect();
        assert_eq!(bodies, [format!("message {index}")]);
    }
}

/// A record store whose event commits fail while it is closed, as when the change log is
/// unreachable for a while.
#[derive(Debug, Default)]
struct Gate {
    inner: MemoryRecordStore,
    closed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl RecordStore for Gate {
    async fn get(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<ferrobase_core::records::Record>, ferrobase_core::records::RecordError> {
        self.inner.get(ns, key).await
    }

    async fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ferrobase_core::records::Record)>, ferrobase_core::records::RecordError>
    {
        self.inner.scan(ns, prefix, after, limit).await
    }

    async fn commit(
        &self,
        ns: &Namespace,
        commit: ferrobase_core::records::RecordCommit,
    ) -> Result<ferrobase_core::records::RecordOutcome, ferrobase_core::records::RecordError> {
        if !commit.events.is_empty() && self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ferrobase_core::records::RecordError::Storage(
                "the change log is unreachable".into(),
            ));
        }
        self.inner.commit(ns, commit).await
    }
}

/// Messages published while a queue emitted events get their events even when events are
/// switched off before the relay got to them (as on the embedded engine), and only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_messages_published_before_events_were_switched_off_are_relayed() {
    let server = NatsServer::start();
    let clock = ManualClock::starting_now();
    let records = Arc::new(Gate::default());
    let config = JetStreamConfig {
        url: server.url().to_owned(),
        ..JetStreamConfig::default()
    };
    let engine = JetStreamQueue::connect(
        config,
        clock.clone(),
        QueueLimits::default(),
        records.clone(),
    )
    .await
    .unwrap();
    let with_events = QueueConfig {
        events: ferrobase_queue::EventEmission::On,
        ..QueueConfig::default()
    };
    engine
        .configure(&ns(), &queue(), with_events)
        .await
        .unwrap();
    records
        .closed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let batch = vec![NewMessage::new("a"), NewMessage::new("b")];
    engine.publish(&ns(), &queue(), batch).await.unwrap();
    assert!(engine.relay_events().await.is_err() || records.inner.events(&ns()).is_empty());
    engine
        .configure(&ns(), &queue(), QueueConfig::default())
        .await
        .unwrap();
    records
        .closed
        .store(false, std::sync::atomic::Ordering::SeqCst);
    engine
        .publish(&ns(), &queue(), vec![NewMessage::new("c")])
        .await
        .unwrap();
    for _ in 0..2 {
        let _ = engine.relay_events().await;
        engine.maintain().await.unwrap();
    }
    let relayed: Vec<String> = records
        .inner
        .events(&ns())
        .iter()
        .map(|event| event.data["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        relayed.len(),
        2,
        "the two messages published with events on: {relayed:?}"
    );
}
