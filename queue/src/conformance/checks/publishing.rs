//! Checks of publishing and of a queue's lifetime: batches, delays, dedup, retention,
//! reclaiming, events, configuration.

use std::time::Duration;

use ferrobase_core::{EventType, Namespace};

use crate::conformance::{Harness, eventually, ns, queue, texts};
use crate::{
    EventEmission, NewMessage, PullRequest, QueueConfig, QueueError, QueueName, Receipt, Retention,
};

/// Published messages come out in order with their ids, bodies and first attempt; acked ones
/// never come back, and their receipts go stale.
pub async fn publish_pull_ack(h: Harness) {
    h.create("jobs").await;
    let ids = h.publish_texts("jobs", &["a", "b", "c"]).await;
    assert_eq!(ids.len(), 3);
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "ids grow: {ids:?}");
    let first = h.pull("jobs", 2).await;
    assert_eq!(texts(&first), ["a", "b"]);
    assert_eq!(first[0].id, ids[0]);
    assert!(first.iter().all(|d| d.attempt == 1 && d.key.is_none()));
    let rest = h.pull("jobs", 10).await;
    assert_eq!(texts(&rest), ["c"]);
    assert!(
        h.pull("jobs", 10).await.is_empty(),
        "leased messages are not handed out twice"
    );

    assert_eq!(h.ack("jobs", &first).await, 2);
    assert_eq!(h.ack("jobs", &rest).await, 1);
    h.advance(Duration::from_secs(3600));
    assert!(
        h.pull("jobs", 10).await.is_empty(),
        "acked messages stay gone"
    );
    let receipts: Vec<Receipt> = first.iter().map(|d| d.receipt.clone()).collect();
    let again = h.queue.ack(&ns(), &queue("jobs"), &receipts).await.unwrap();
    assert_eq!(again.settled, 0);
    assert_eq!(again.stale, receipts);
}

/// Unknown queues are not found; malformed requests are refused before anything happens.
pub async fn unknown_queues_and_invalid_requests(h: Harness) {
    let missing = h
        .queue
        .publish(&ns(), &queue("nope"), vec![NewMessage::new("x")])
        .await;
    assert!(
        matches!(missing, Err(QueueError::QueueNotFound(_))),
        "{missing:?}"
    );
    let pulled = h
        .queue
        .pull(&ns(), &queue("nope"), &PullRequest::default())
        .await;
    assert!(
        matches!(pulled, Err(QueueError::QueueNotFound(_))),
        "{pulled:?}"
    );
    let bad_config = QueueConfig {
        max_deliver: 0,
        ..QueueConfig::default()
    };
    assert!(matches!(
        h.queue.configure(&ns(), &queue("q"), bad_config).await,
        Err(QueueError::InvalidArgument(_))
    ));
    h.create("q").await;
    let zero = PullRequest {
        max: 0,
        ..PullRequest::default()
    };
    assert!(matches!(
        h.queue.pull(&ns(), &queue("q"), &zero).await,
        Err(QueueError::InvalidArgument(_))
    ));
    let garbage = [Receipt::from_text("not-a-receipt")];
    assert!(matches!(
        h.queue.ack(&ns(), &queue("q"), &garbage).await,
        Err(QueueError::InvalidArgument(_))
    ));
    assert!(matches!(
        h.queue.publish(&ns(), &queue("q"), vec![]).await,
        Err(QueueError::InvalidArgument(_))
    ));
}

/// A batch with one bad message publishes nothing; a good batch gets consecutive ids.
pub async fn batch_is_all_or_nothing(h: Harness) {
    h.create("batch").await;
    let bad = vec![
        NewMessage::new("fine"),
        NewMessage::new("bad key").with_key("a\u{7}b"),
        NewMessage::new("also fine"),
    ];
    let refused = h.queue.publish(&ns(), &queue("batch"), bad).await;
    assert!(
        matches!(refused, Err(QueueError::InvalidArgument(_))),
        "{refused:?}"
    );
    assert!(
        h.pull("batch", 10).await.is_empty(),
        "nothing of the refused batch"
    );

    let messages = (0..100).map(|i| NewMessage::new(format!("m{i}"))).collect();
    let ids = h.publish("batch", messages).await;
    for pair in ids.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "consecutive ids in a batch");
    }
    let pulled = h.pull("batch", 1000).await;
    assert_eq!(pulled.len(), 100);
    assert_eq!(texts(&pulled)[99], "m99");
}

/// A delayed message is not delivered before its time; others pass it.
pub async fn delayed_messages_wait(h: Harness) {
    h.create("later").await;
    h.publish(
        "later",
        vec![
            NewMessage::new("slow").with_delay(Duration::from_secs(10)),
            NewMessage::new("fast"),
        ],
    )
    .await;
    assert_eq!(texts(&h.pull("later", 10).await), ["fast"]);
    h.advance(Duration::from_secs(9));
    assert!(h.pull("later", 10).await.is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(texts(&h.pull("later", 10).await), ["slow"]);
}

/// A dedup id repeated within the window is accepted once (same id back); after the window it
/// publishes again.
pub async fn dedup_within_window(h: Harness) {
    h.configure(
        "dedup",
        QueueConfig {
            dedup_window: Duration::from_secs(60),
            ..QueueConfig::default()
        },
    )
    .await;
    let first = h
        .publish("dedup", vec![NewMessage::new("one").with_dedup_id("d1")])
        .await;
    let repeat = h
        .publish(
            "dedup",
            vec![NewMessage::new("one again").with_dedup_id("d1")],
        )
        .await;
    assert_eq!(first, repeat);
    let batch = h
        .publish(
            "dedup",
            vec![
                NewMessage::new("two").with_dedup_id("d2"),
                NewMessage::new("two again").with_dedup_id("d2"),
                NewMessage::new("three"),
            ],
        )
        .await;
    assert_eq!(batch[0], batch[1]);
    assert_ne!(batch[0], batch[2]);
    let pulled = h.pull("dedup", 10).await;
    assert_eq!(texts(&pulled), ["one", "two", "three"]);
    h.ack("dedup", &pulled).await;

    h.advance(Duration::from_secs(61));
    h.queue.maintain().await.unwrap();
    let later = h
        .publish(
            "dedup",
            vec![NewMessage::new("one, later").with_dedup_id("d1")],
        )
        .await;
    assert_ne!(later, first, "outside the window the id publishes again");
    assert_eq!(texts(&h.pull("dedup", 10).await), ["one, later"]);
}

/// Retention drops all but the newest `max_messages`, and messages older than `max_age` (those
/// are never delivered, even before maintenance runs).
pub async fn retention_by_count_and_age(h: Harness) {
    h.configure(
        "count",
        QueueConfig {
            retention: Retention {
                max_age: None,
                max_messages: Some(3),
            },
            ..QueueConfig::default()
        },
    )
    .await;
    h.publish_texts("count", &["1", "2", "3", "4", "5"]).await;
    let report = h.queue.maintain().await.unwrap();
    assert_eq!(report.expired, 2);
    assert_eq!(texts(&h.pull("count", 10).await), ["3", "4", "5"]);

    h.configure(
        "age",
        QueueConfig {
            retention: Retention {
                max_age: Some(Duration::from_secs(60)),
                max_messages: None,
            },
            ..QueueConfig::default()
        },
    )
    .await;
    h.publish_texts("age", &["old-1", "old-2"]).await;
    h.advance(Duration::from_secs(30));
    h.publish_texts("age", &["young"]).await;
    h.advance(Duration::from_secs(31));
    assert_eq!(texts(&h.pull("age", 10).await), ["young"]);
    let report = h.queue.maintain().await.unwrap();
    assert_eq!(report.expired, 2);
    let info = h.queue.info(&ns(), &queue("age")).await.unwrap().unwrap();
    assert_eq!(info.messages, 1, "only the young, leased message is stored");
}

/// Messages every group has finished are reclaimed; without any group they are kept.
pub async fn consumed_messages_are_reclaimed(h: Harness) {
    h.create("reclaim").await;
    h.publish_texts("reclaim", &["a", "b", "c"]).await;
    h.queue.maintain().await.unwrap();
    let info = h
        .queue
        .info(&ns(), &queue("reclaim"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.messages, 3, "no group yet: kept for the first one");
    let got = h.pull("reclaim", 2).await;
    h.ack("reclaim", &got).await;
    let report = h.queue.maintain().await.unwrap();
    assert_eq!(report.consumed, 2);
    let info = h
        .queue
        .info(&ns(), &queue("reclaim"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.messages, 1);
    assert_eq!(info.groups.len(), 1);
    assert_eq!(texts(&h.pull("reclaim", 10).await), ["c"]);
}

/// Queues with events on append one `ferrobase.queue.message` per published message; others
/// append none.
pub async fn events_only_when_configured(h: Harness) {
    h.create("quiet").await;
    h.configure(
        "loud",
        QueueConfig {
            events: EventEmission::On,
            ..QueueConfig::default()
        },
    )
    .await;
    h.publish_texts("quiet", &["q1", "q2"]).await;
    let ids = h
        .publish(
            "loud",
            vec![
                NewMessage::new("l1").with_key("k"),
                NewMessage::new("l2"),
                NewMessage::new("l2 again").with_dedup_id("d"),
                NewMessage::new("l2 once more").with_dedup_id("d"),
            ],
        )
        .await;
    let events = eventually("three queue events", || async {
        let events = h.records.events(&ns());
        (events.len() >= 3).then_some(events)
    })
    .await;
    assert_eq!(
        events.len(),
        3,
        "one per published message, none for the repeat"
    );
    for (event, id) in events.iter().zip(&ids) {
        assert_eq!(event.event_type, EventType::QueueMessage);
        assert_eq!(event.subject, "loud");
        assert_eq!(event.source, "/ns/conformance/queue");
        assert_eq!(event.data["queue"], "loud");
        assert_eq!(event.data["id"], id.to_string());
    }
    assert_eq!(events[0].data["key"], "k");
    assert_eq!(events[0].data["size"], 2);
    // Nothing more arrives later (no duplicates from the relay).
    h.publish_texts("loud", &["l3"]).await;
    let events = eventually("the fourth event", || async {
        let events = h.records.events(&ns());
        (events.len() >= 4).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.subject == "loud"));
}

/// Configuration reads back as stored and can be replaced; messages stay.
pub async fn configuration_is_stored_and_replaced(h: Harness) {
    assert!(h.queue.info(&ns(), &queue("cfg")).await.unwrap().is_none());
    let config = QueueConfig {
        max_deliver: 7,
        retention: Retention {
            max_age: Some(Duration::from_secs(3600)),
            max_messages: Some(1000),
        },
        events: EventEmission::Off,
        dedup_window: Duration::from_secs(30),
    };
    h.configure("cfg", config.clone()).await;
    h.publish_texts("cfg", &["kept"]).await;
    let info = h.queue.info(&ns(), &queue("cfg")).await.unwrap().unwrap();
    assert_eq!(info.config, config);
    assert_eq!(info.messages, 1);
    let replaced = QueueConfig {
        max_deliver: 3,
        ..config
    };
    h.configure("cfg", replaced.clone()).await;
    let info = h.queue.info(&ns(), &queue("cfg")).await.unwrap().unwrap();
    assert_eq!(info.config, replaced);
    assert_eq!(texts(&h.pull("cfg", 10).await), ["kept"]);
}

pub async fn queues_list_by_name_within_their_namespace(h: Harness) {
    assert!(h.queue.list(&ns(), None, 10).await.unwrap().is_empty());
    for name in ["b.jobs", "a", "c-1"] {
        h.create(name).await;
    }
    let other = Namespace::parse("elsewhere").unwrap();
    h.queue
        .configure(&other, &queue("a0"), QueueConfig::default())
        .await
        .unwrap();
    let names = |list: Vec<QueueName>| -> Vec<String> {
        list.iter().map(|q| q.as_str().to_owned()).collect()
    };
    let all = h.queue.list(&ns(), None, 10).await.unwrap();
    assert_eq!(names(all), ["a", "b.jobs", "c-1"]);
    let first = h.queue.list(&ns(), None, 2).await.unwrap();
    assert_eq!(names(first), ["a", "b.jobs"]);
    let rest = h
        .queue
        .list(&ns(), Some(&queue("b.jobs")), 2)
        .await
        .unwrap();
    assert_eq!(names(rest), ["c-1"]);
    assert_eq!(names(h.queue.list(&other, None, 10).await.unwrap()), ["a0"]);
}
