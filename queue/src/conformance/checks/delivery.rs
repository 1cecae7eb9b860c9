//! Checks of consumption: leases, nacks, dead letters, key order, groups, long polling.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conformance::{DEADLINE, Harness, group, ns, queue, texts};
use crate::{DeadLetterSelection, MessageId, Nack, NewMessage, PullRequest, QueueConfig};

/// An expired lease makes the message available again with the next attempt; the old receipt
/// is stale, the new one works.
pub async fn lease_expiry_redelivers(h: Harness) {
    h.create("lease").await;
    h.publish_texts("lease", &["job"]).await;
    let request = PullRequest {
        lease: Duration::from_secs(5),
        ..PullRequest::default()
    };
    let first = h
        .queue
        .pull(&ns(), &queue("lease"), &request)
        .await
        .unwrap();
    assert_eq!(first[0].attempt, 1);
    h.advance(Duration::from_millis(4999));
    assert!(h.pull("lease", 10).await.is_empty(), "still leased");
    h.advance(Duration::from_millis(1));
    let second = h.pull("lease", 10).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].attempt, 2);
    assert_ne!(second[0].receipt, first[0].receipt);
    assert_eq!(
        h.ack("lease", &first).await,
        0,
        "the expired receipt is stale"
    );
    assert_eq!(h.ack("lease", &second).await, 1);
    h.advance(Duration::from_secs(60));
    assert!(h.pull("lease", 10).await.is_empty());
}

/// A nack returns the message after its delay, counting the attempt and keeping the error.
pub async fn nack_with_delay_and_error(h: Harness) {
    h.create("nack").await;
    h.publish_texts("nack", &["job"]).await;
    let first = h.pull("nack", 1).await;
    let nack = Nack {
        delay: Duration::from_secs(10),
        error: Some("boom".into()),
    };
    let receipts = [first[0].receipt.clone()];
    let outcome = h
        .queue
        .nack(&ns(), &queue("nack"), &receipts, &nack)
        .await
        .unwrap();
    assert_eq!(outcome.settled, 1);
    assert!(h.pull("nack", 1).await.is_empty(), "not before the delay");
    h.advance(Duration::from_secs(10));
    let second = h.pull("nack", 1).await;
    assert_eq!(second[0].attempt, 2);
    // An immediate nack makes it available at once.
    let receipts = [second[0].receipt.clone()];
    h.queue
        .nack(&ns(), &queue("nack"), &receipts, &Nack::default())
        .await
        .unwrap();
    let third = h.pull("nack", 1).await;
    assert_eq!(third[0].attempt, 3);
    let stale = h
        .queue
        .nack(&ns(), &queue("nack"), &receipts, &Nack::default())
        .await;
    assert_eq!(stale.unwrap().settled, 0);
}

/// After `max_deliver` attempts (nacked or expired), the message moves to the group's dead-letter
/// list with its last error; replay brings it back with fresh attempts; purge deletes.
pub async fn max_deliver_dead_letters_replay_and_purge(h: Harness) {
    h.configure(
        "dlq",
        QueueConfig {
            max_deliver: 2,
            ..QueueConfig::default()
        },
    )
    .await;
    let ids = h.publish_texts("dlq", &["nacked", "expired"]).await;
    let short = PullRequest {
        max: 1,
        lease: Duration::from_secs(5),
        ..PullRequest::default()
    };
    let q = queue("dlq");
    for (attempt, error) in [(1, "e1"), (2, "e2")] {
        let got = h.queue.pull(&ns(), &q, &short).await.unwrap();
        assert_eq!(
            (texts(&got)[0].as_str(), got[0].attempt),
            ("nacked", attempt)
        );
        let nack = Nack {
            delay: Duration::ZERO,
            error: Some(error.into()),
        };
        h.queue
            .nack(&ns(), &q, &[got[0].receipt.clone()], &nack)
            .await
            .unwrap();
    }
    for attempt in 1..=2 {
        let got = h.queue.pull(&ns(), &q, &short).await.unwrap();
        assert_eq!(
            (texts(&got)[0].as_str(), got[0].attempt),
            ("expired", attempt)
        );
        h.advance(Duration::from_secs(5));
    }
    assert!(h.pull("dlq", 10).await.is_empty(), "both are dead");

    let page = h
        .queue
        .dead_letters(&ns(), &q, &group("default"), None, 10)
        .await
        .unwrap();
    let summary: Vec<(MessageId, String, u32, String)> = page
        .messages
        .iter()
        .map(|d| {
            let body = String::from_utf8(d.body.to_vec()).unwrap();
            (d.id, body, d.attempts, d.last_error.clone())
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (ids[0], "nacked".into(), 2, "e2".into()),
            (ids[1], "expired".into(), 2, "lease expired".into()),
        ]
    );
    let info = h
        .queue
        .info(&ns(), &q)
        .await
        .unwrap()
        .expect("queue exists");
    let default = info
        .groups
        .iter()
        .find(|g| g.name.as_str() == "default")
        .unwrap();
    assert_eq!((default.pending, default.dead), (0, 2));
    // Other groups have their own lists.
    let other = h
        .queue
        .dead_letters(&ns(), &q, &group("other"), None, 10)
        .await
        .unwrap();
    assert!(other.messages.is_empty());
    // Paging.
    let first_page = h
        .queue
        .dead_letters(&ns(), &q, &group("default"), None, 1)
        .await
        .unwrap();
    assert_eq!(first_page.messages.len(), 1);
    assert_eq!(first_page.next, Some(ids[0]));

    let replayed = h
        .queue
        .replay_dead_letters(
            &ns(),
            &q,
            &group("default"),
            &DeadLetterSelection::Ids(vec![ids[0]]),
        )
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    let back = h.pull("dlq", 10).await;
    assert_eq!(texts(&back), ["nacked"]);
    assert_eq!(back[0].attempt, 1, "replay starts the attempts afresh");
    assert_eq!(h.ack("dlq", &back).await, 1);

    let purged = h
        .queue
        .purge_dead_letters(&ns(), &q, &group("default"), &DeadLetterSelection::All)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let page = h
        .queue
        .dead_letters(&ns(), &q, &group("default"), None, 10)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    h.advance(Duration::from_secs(60));
    assert!(h.pull("dlq", 10).await.is_empty());
}

/// Messages with one key come in publish order, the next only once the previous is finished;
/// other keys and unkeyed messages are not held up.
pub async fn same_key_in_order_one_at_a_time(h: Harness) {
    h.create("keys").await;
    h.publish(
        "keys",
        vec![
            NewMessage::new("k1-a").with_key("k1"),
            NewMessage::new("k1-b").with_key("k1"),
            NewMessage::new("k2-a").with_key("k2"),
            NewMessage::new("none"),
            NewMessage::new("k1-c").with_key("k1"),
        ],
    )
    .await;
    let first = h.pull("keys", 10).await;
    assert_eq!(texts(&first), ["k1-a", "k2-a", "none"]);
    assert_eq!(first[0].key.as_deref(), Some("k1"));
    assert!(h.pull("keys", 10).await.is_empty(), "k1-b waits for k1-a");

    h.ack("keys", &first).await;
    let b = h.pull("keys", 10).await;
    assert_eq!(texts(&b), ["k1-b"]);
    // A nack with delay keeps the key's place: k1-c still waits.
    let nack = Nack {
        delay: Duration::from_secs(5),
        error: None,
    };
    h.queue
        .nack(&ns(), &queue("keys"), &[b[0].receipt.clone()], &nack)
        .await
        .unwrap();
    assert!(h.pull("keys", 10).await.is_empty());
    h.advance(Duration::from_secs(5));
    let b_again = h.pull("keys", 10).await;
    assert_eq!(texts(&b_again), ["k1-b"]);
    assert_eq!(b_again[0].attempt, 2);
    // An expired lease keeps it too.
    h.advance(Duration::from_secs(31));
    let b_third = h.pull("keys", 10).await;
    assert_eq!(texts(&b_third), ["k1-b"]);
    h.ack("keys", &b_third).await;
    assert_eq!(texts(&h.pull("keys", 10).await), ["k1-c"]);
}

/// Competing consumers never hold two messages of one key at once, and see each key's messages
/// in publish order.
pub async fn key_order_under_concurrent_consumers(h: Harness) {
    const KEYS: usize = 5;
    const PER_KEY: usize = 40;
    const CONSUMERS: usize = 4;
    h.create("concurrent").await;
    let mut messages = Vec::new();
    for i in 0..PER_KEY {
        for k in 0..KEYS {
            messages.push(NewMessage::new(format!("{k}:{i}")).with_key(format!("key-{k}")));
        }
    }
    // Several batches, so that consumers start while publishing goes on.
    let publisher = {
        let queue_engine = h.queue.clone();
        tokio::spawn(async move {
            for chunk in messages.chunks(25) {
                queue_engine
                    .publish(&ns(), &queue("concurrent"), chunk.to_vec())
                    .await
                    .expect("publish");
            }
        })
    };
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<String, Vec<usize>>>> = Arc::default();
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let (engine, in_flight, seen) = (h.queue.clone(), in_flight.clone(), seen.clone());
        consumers.push(tokio::spawn(async move {
            let deadline = Instant::now() + DEADLINE;
            let request = PullRequest {
                max: 3,
                wait: Duration::from_millis(20),
                lease: Duration::from_secs(600),
                ..PullRequest::default()
            };
            loop {
                let done: usize = seen.lock().unwrap().values().map(Vec::len).sum();
                if done == KEYS * PER_KEY {
                    return;
                }
                assert!(Instant::now() < deadline, "consumers too slow");
                let got = engine
                    .pull(&ns(), &queue("concurrent"), &request)
                    .await
                    .unwrap();
                for delivery in &got {
                    let key = delivery.key.clone().expect("keyed");
                    assert!(
                        in_flight.lock().unwrap().insert(key.clone()),
                        "two messages of {key} in flight at once"
                    );
                    let text = String::from_utf8(delivery.body.to_vec()).unwrap();
                    let index: usize = text.split(':').nth(1).unwrap().parse().unwrap();
                    seen.lock().unwrap().entry(key).or_default().push(index);
                }
                tokio::task::yield_now().await;
                for delivery in &got {
                    // Out of flight before the ack: after it, the next may go out at once.
                    in_flight
                        .lock()
                        .unwrap()
                        .remove(delivery.key.as_deref().unwrap());
                    let outcome = engine
                        .ack(
                            &ns(),
                            &queue("concurrent"),
                            std::slice::from_ref(&delivery.receipt),
                        )
                        .await
                        .unwrap();
                    assert_eq!(outcome.settled, 1);
                }
            }
        }));
    }
    publisher.await.unwrap();
    for consumer in consumers {
        consumer.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    for k in 0..KEYS {
        assert_eq!(
            seen[&format!("key-{k}")],
            (0..PER_KEY).collect::<Vec<_>>(),
            "key-{k} in publish order, each once"
        );
    }
}

/// Each group sees every message; consumers of one group compete; a group created later starts
/// at the oldest retained message.
pub async fn groups_are_independent(h: Harness) {
    h.create("fan").await;
    h.publish_texts("fan", &["1", "2", "3"]).await;
    let a = h.pull_as("fan", "a", 10).await;
    assert_eq!(texts(&a), ["1", "2", "3"]);
    assert!(
        h.pull_as("fan", "a", 10).await.is_empty(),
        "a's consumers compete"
    );
    h.ack("fan", &a).await;
    let b = h.pull_as("fan", "b", 2).await;
    assert_eq!(texts(&b), ["1", "2"]);
    // Receipts carry their group: b's receipt does not settle anything in a.
    assert_eq!(h.ack("fan", &b).await, 2);
    assert_eq!(texts(&h.pull_as("fan", "b", 10).await), ["3"]);
    h.publish_texts("fan", &["4"]).await;
    assert_eq!(texts(&h.pull_as("fan", "a", 10).await), ["4"]);
}

/// A waiting pull returns as soon as a message is published; with nothing, it returns empty
/// after its wait.
pub async fn long_poll_wakes_on_publish(h: Harness) {
    h.create("poll").await;
    let started = Instant::now();
    let request = PullRequest {
        wait: Duration::from_millis(200),
        ..PullRequest::default()
    };
    assert!(
        h.queue
            .pull(&ns(), &queue("poll"), &request)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(190), "waited");

    let waiting = {
        let engine = h.queue.clone();
        tokio::spawn(async move {
            let request = PullRequest {
                wait: Duration::from_secs(15),
                ..PullRequest::default()
            };
            let started = Instant::now();
            let got = engine.pull(&ns(), &queue("poll"), &request).await.unwrap();
            (got, started.elapsed())
        })
    };
    h.publish_texts("poll", &["wake up"]).await;
    let (got, waited) = waiting.await.unwrap();
    assert_eq!(texts(&got), ["wake up"]);
    assert!(
        waited < Duration::from_secs(10),
        "woken by the publish, not the timeout"
    );
}
