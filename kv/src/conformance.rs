//! The conformance suite every [`KvEngine`] must pass (feature `test-utils`).
//!
//! Each check is a plain async function over a [`Harness`]; [`kv_conformance_tests!`](crate::kv_conformance_tests) expands
//! them into one `#[tokio::test]` per check for a given engine constructor, so that every
//! engine is held to exactly the same behaviour.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrobase_core::{EventQuery, EventType, ManualClock, Namespace};

use crate::{Check, Key, KvEngine, KvError, ListQuery, Mutation, MutationResult, Retention, Txn};

/// An engine under test and the manual clock it was built with.
#[derive(Debug)]
pub struct Harness {
    pub engine: Arc<dyn KvEngine>,
    pub clock: Arc<ManualClock>,
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).expect("valid namespace")
}

fn key(name: &str) -> Key {
    Key::parse(name).expect("valid key")
}

async fn put(h: &Harness, ns_name: &str, k: &str, value: &str) -> u64 {
    let txn = Txn::put(key(k), Bytes::from(value.to_owned()), "text/plain");
    match h
        .engine
        .commit(&ns(ns_name), txn)
        .await
        .expect("put commits")
        .results[0]
    {
        MutationResult::Put { version, .. } => version,
        ref other => panic!("unexpected result {other:?}"),
    }
}

async fn events(h: &Harness, ns_name: &str) -> Vec<ferrobase_core::Event> {
    let query = EventQuery {
        after: 0,
        limit: 10_000,
        type_filter: None,
    };
    h.engine
        .read(&ns(ns_name), &query)
        .await
        .expect("log reads")
        .events
}

/// A put is readable with its value, content type and version, and logged as one event.
pub async fn put_get_and_event(h: Harness) {
    let version = put(&h, "a", "orders/1", "hello").await;
    let entry = h
        .engine
        .get(&ns("a"), &key("orders/1"))
        .await
        .unwrap()
        .expect("entry exists");
    assert_eq!(entry.value, Bytes::from_static(b"hello"));
    assert_eq!(entry.meta.content_type, "text/plain");
    assert_eq!(entry.meta.version, version);
    assert_eq!(entry.meta.size, 5);
    assert_eq!(entry.meta.expires_at_ms, None);

    let log = events(&h, "a").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event_type, EventType::KvPut);
    assert_eq!(log[0].subject, "orders/1");
    assert_eq!(log[0].source, "/ns/a/kv");
    assert_eq!(log[0].ferrobaseseq, version);
    assert_eq!(log[0].data["version"], version);
    assert_eq!(log[0].data["size"], 5);
    assert_eq!(h.engine.head(&ns("a")).await.unwrap(), version);
    assert!(
        h.engine
            .get(&ns("a"), &key("orders/2"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Versions grow with every write and are never reused, even after delete and re-create.
pub async fn versions_strictly_increase(h: Harness) {
    let v1 = put(&h, "a", "k", "1").await;
    let v2 = put(&h, "a", "k", "2").await;
    h.engine
        .commit(&ns("a"), Txn::delete(key("k")))
        .await
        .unwrap();
    let v3 = put(&h, "a", "k", "3").await;
    assert!(v1 < v2 && v2 < v3, "{v1} < {v2} < {v3}");
    let stale =
        Txn::put(key("k"), Bytes::from_static(b"x"), "text/plain").with_check(Check::Version {
            key: key("k"),
            version: v1,
        });
    assert!(matches!(
        h.engine.commit(&ns("a"), stale).await,
        Err(KvError::CheckFailed { .. })
    ));
}

/// Delete removes the key and logs it; deleting a missing key changes nothing and logs nothing.
pub async fn delete_and_missing_delete(h: Harness) {
    let version = put(&h, "a", "k", "v").await;
    let outcome = h
        .engine
        .commit(&ns("a"), Txn::delete(key("k")))
        .await
        .unwrap();
    assert_eq!(
        outcome.results,
        vec![MutationResult::Delete {
            key: key("k"),
            existed: true
        }]
    );
    assert!(h.engine.get(&ns("a"), &key("k")).await.unwrap().is_none());
    let outcome = h
        .engine
        .commit(&ns("a"), Txn::delete(key("k")))
        .await
        .unwrap();
    assert_eq!(
        outcome.results,
        vec![MutationResult::Delete {
            key: key("k"),
            existed: false
        }]
    );

    let log = events(&h, "a").await;
    assert_eq!(log.len(), 2, "put and one delete: {log:?}");
    assert_eq!(log[1].event_type, EventType::KvDelete);
    assert_eq!(log[1].data["previous_version"], version);
}

/// Compare-and-set: version, exists and absent checks; a failed check writes nothing.
pub async fn compare_and_set(h: Harness) {
    let a = ns("a");
    let v1 = put(&h, "a", "k", "one").await;
    let ok =
        Txn::put(key("k"), Bytes::from_static(b"two"), "text/plain").with_check(Check::Version {
            key: key("k"),
            version: v1,
        });
    h.engine
        .commit(&a, ok)
        .await
        .expect("matching version commits");

    let stale =
        Txn::put(key("k"), Bytes::from_static(b"three"), "text/plain").with_check(Check::Version {
            key: key("k"),
            version: v1,
        });
    match h.engine.commit(&a, stale).await {
        Err(KvError::CheckFailed { index: 0, key, .. }) => assert_eq!(key, "k"),
        other => panic!("expected a failed check, got {other:?}"),
    }
    let create = Txn::put(key("k"), Bytes::from_static(b"x"), "text/plain")
        .with_check(Check::Absent { key: key("k") });
    assert!(matches!(
        h.engine.commit(&a, create).await,
        Err(KvError::CheckFailed { .. })
    ));
    let replace_missing = Txn::put(key("new"), Bytes::from_static(b"x"), "text/plain")
        .with_check(Check::Exists { key: key("new") });
    assert!(matches!(
        h.engine.commit(&a, replace_missing).await,
        Err(KvError::CheckFailed { .. })
    ));
    let create_new = Txn::put(key("new"), Bytes::from_static(b"x"), "text/plain")
        .with_check(Check::Absent { key: key("new") });
    h.engine
        .commit(&a, create_new)
        .await
        .expect("absent key can be created");

    let value = h.engine.get(&a, &key("k")).await.unwrap().unwrap().value;
    assert_eq!(
        value,
        Bytes::from_static(b"two"),
        "failed checks must not write"
    );
    assert_eq!(
        events(&h, "a").await.len(),
        3,
        "only the three successful puts are logged"
    );
}

/// Several checks and mutations apply all or nothing, with one event per mutation.
pub async fn transaction_all_or_nothing(h: Harness) {
    let a = ns("a");
    let v = put(&h, "a", "balance/alice", "10").await;
    put(&h, "a", "old", "x").await;
    let failing = Txn {
        checks: vec![
            Check::Version {
                key: key("balance/alice"),
                version: v,
            },
            Check::Absent { key: key("old") },
        ],
        mutations: vec![
            Mutation::Put {
                key: key("balance/alice"),
                value: Bytes::from_static(b"5"),
                content_type: "text/plain".into(),
                ttl: None,
            },
            Mutation::Delete { key: key("old") },
        ],
        ..Txn::default()
    };
    match h.engine.commit(&a, failing.clone()).await {
        Err(KvError::CheckFailed { index: 1, .. }) => {}
        other => panic!("expected check 1 to fail, got {other:?}"),
    }
    assert_eq!(
        h.engine
            .get(&a, &key("balance/alice"))
            .await
            .unwrap()
            .unwrap()
            .value,
        "10"
    );
    assert!(h.engine.get(&a, &key("old")).await.unwrap().is_some());
    assert_eq!(events(&h, "a").await.len(), 2);

    let passing = Txn {
        checks: failing.checks[..1].to_vec(),
        ..failing
    };
    let outcome = h.engine.commit(&a, passing).await.unwrap();
    assert_eq!(outcome.results.len(), 2);
    assert_eq!(
        h.engine
            .get(&a, &key("balance/alice"))
            .await
            .unwrap()
            .unwrap()
            .value,
        "5"
    );
    assert!(h.engine.get(&a, &key("old")).await.unwrap().is_none());
    let log = events(&h, "a").await;
    let seqs: Vec<u64> = log.iter().map(|e| e.ferrobaseseq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4], "offsets are contiguous");
    assert_eq!(log[2].event_type, EventType::KvPut);
    assert_eq!(log[3].event_type, EventType::KvDelete);
}

/// Malformed transactions are refused before anything is written.
pub async fn invalid_transactions_write_nothing(h: Harness) {
    let a = ns("a");
    let twice = Txn {
        mutations: vec![
            Mutation::Delete { key: key("k") },
            Mutation::Delete { key: key("k") },
        ],
        ..Txn::default()
    };
    assert!(matches!(
        h.engine.commit(&a, twice).await,
        Err(KvError::InvalidArgument(_))
    ));
    assert!(matches!(
        h.engine.commit(&a, Txn::default()).await,
        Err(KvError::InvalidArgument(_))
    ));
    let huge = Txn::put(key("big"), Bytes::from(vec![0u8; 1024 * 1024 + 1]), "x/y");
    assert!(matches!(
        h.engine.commit(&a, huge).await,
        Err(KvError::ValueTooLarge { .. })
    ));
    let zero_ttl = Txn::put(key("t"), Bytes::from_static(b"v"), "x/y").with_ttl(Duration::ZERO);
    assert!(matches!(
        h.engine.commit(&a, zero_ttl).await,
        Err(KvError::InvalidArgument(_))
    ));
    assert!(h.engine.get(&a, &key("big")).await.unwrap().is_none());
    assert!(events(&h, "a").await.is_empty());
}

/// A content type is 1 to 255 visible ASCII characters, as an HTTP header can carry it; the
/// store round-trips exactly those. (Found by the `kv_txn` fuzz target: `_txn` bodies once
/// stored any string, and the sled encoding kept only the low 16 bits of its length.)
pub async fn content_types_are_bounded(h: Harness) {
    let a = ns("a");
    let longest = "t/".to_owned() + &"x".repeat(253);
    for content_type in [
        String::new(),
        "x".repeat(256),
        "y".repeat(65_536 + 3),
        "a\nb".into(),
    ] {
        let txn = Txn::put(key("k"), Bytes::from_static(b"v"), content_type);
        assert!(matches!(
            h.engine.commit(&a, txn).await,
            Err(KvError::InvalidArgument(_))
        ));
    }
    assert!(h.engine.get(&a, &key("k")).await.unwrap().is_none());
    assert!(events(&h, "a").await.is_empty());
    let txn = Txn::put(key("k"), Bytes::from_static(b"v"), longest.clone());
    h.engine
        .commit(&a, txn)
        .await
        .expect("a 255-byte content type is accepted");
    let entry = h.engine.get(&a, &key("k")).await.unwrap().expect("stored");
    assert_eq!(entry.meta.content_type, longest);
    assert_eq!(entry.value, Bytes::from_static(b"v"));
}

/// A TTL'd entry vanishes the moment it expires; the sweep removes it with an expire event.
pub async fn ttl_expiry(h: Harness) {
    let a = ns("a");
    let txn = Txn::put(key("session"), Bytes::from_static(b"s"), "text/plain")
        .with_ttl(Duration::from_secs(60));
    h.engine.commit(&a, txn).await.unwrap();
    put(&h, "a", "keep", "k").await;
    let entry = h
        .engine
        .get(&a, &key("session"))
        .await
        .unwrap()
        .expect("live before expiry");
    assert!(entry.meta.expires_at_ms.is_some());

    h.clock.advance(Duration::from_secs(59));
    assert!(h.engine.get(&a, &key("session")).await.unwrap().is_some());
    assert_eq!(h.engine.expire_due(100).await.unwrap(), 0);

    h.clock.advance(Duration::from_secs(1));
    assert!(
        h.engine.get(&a, &key("session")).await.unwrap().is_none(),
        "invisible at once"
    );
    let listed = list_keys(&h, "a", "").await;
    assert_eq!(listed, vec!["keep"]);
    let guarded = Txn::put(key("x"), Bytes::new(), "x/y").with_check(Check::Exists {
        key: key("session"),
    });
    assert!(matches!(
        h.engine.commit(&a, guarded).await,
        Err(KvError::CheckFailed { .. })
    ));

    assert_eq!(h.engine.expire_due(100).await.unwrap(), 1);
    assert_eq!(
        h.engine.expire_due(100).await.unwrap(),
        0,
        "swept once only"
    );
    let log = events(&h, "a").await;
    let last = log.last().unwrap();
    assert_eq!(last.event_type, EventType::KvExpire);
    assert_eq!(last.subject, "session");
}

/// Overwriting a TTL'd key without a TTL makes it permanent; a newer TTL replaces the older.
pub async fn ttl_overwrite(h: Harness) {
    let a = ns("a");
    let short =
        Txn::put(key("k"), Bytes::from_static(b"1"), "x/y").with_ttl(Duration::from_secs(10));
    h.engine.commit(&a, short).await.unwrap();
    put(&h, "a", "k", "2").await;
    h.clock.advance(Duration::from_secs(11));
    assert_eq!(
        h.engine.get(&a, &key("k")).await.unwrap().unwrap().value,
        "2"
    );
    assert_eq!(h.engine.expire_due(100).await.unwrap(), 0);

    let long =
        Txn::put(key("j"), Bytes::from_static(b"1"), "x/y").with_ttl(Duration::from_secs(10));
    h.engine.commit(&a, long).await.unwrap();
    let longer =
        Txn::put(key("j"), Bytes::from_static(b"2"), "x/y").with_ttl(Duration::from_secs(100));
    h.engine.commit(&a, longer).await.unwrap();
    h.clock.advance(Duration::from_secs(50));
    assert_eq!(h.engine.expire_due(100).await.unwrap(), 0);
    assert!(h.engine.get(&a, &key("j")).await.unwrap().is_some());
}

/// Writing over an expired, not yet swept key first logs its expiry, then the new write.
pub async fn write_over_expired_key(h: Harness) {
    let a = ns("a");
    let txn = Txn::put(key("k"), Bytes::from_static(b"1"), "x/y").with_ttl(Duration::from_secs(1));
    h.engine.commit(&a, txn).await.unwrap();
    h.clock.advance(Duration::from_secs(2));
    let outcome = h.engine.commit(&a, Txn::delete(key("k"))).await.unwrap();
    assert_eq!(
        outcome.results,
        vec![MutationResult::Delete {
            key: key("k"),
            existed: false
        }]
    );
    let types: Vec<EventType> = events(&h, "a").await.iter().map(|e| e.event_type).collect();
    assert_eq!(types, vec![EventType::KvPut, EventType::KvExpire]);
    assert_eq!(h.engine.expire_due(100).await.unwrap(), 0);
}

async fn list_keys(h: &Harness, ns_name: &str, prefix: &str) -> Vec<String> {
    let query = ListQuery {
        prefix: prefix.to_owned(),
        after: None,
        limit: 1000,
    };
    let page = h.engine.list(&ns(ns_name), &query).await.unwrap();
    page.entries
        .into_iter()
        .map(|(k, _)| k.as_str().to_owned())
        .collect()
}

/// Listing filters by prefix, sorts by key and pages with a cursor, without gaps or repeats.
pub async fn list_prefix_and_pagination(h: Harness) {
    for i in 0..25 {
        put(&h, "a", &format!("users/{i:02}"), "u").await;
    }
    put(&h, "a", "usersx", "not under users/").await;
    put(&h, "a", "orders/1", "o").await;
    put(&h, "b", "users/99", "other namespace").await;

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let query = ListQuery {
            prefix: "users/".into(),
            after: after.clone(),
            limit: 10,
        };
        let page = h.engine.list(&ns("a"), &query).await.unwrap();
        pages += 1;
        assert!(page.entries.len() <= 10);
        seen.extend(page.entries.iter().map(|(k, _)| k.as_str().to_owned()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("users/{i:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    assert_eq!(list_keys(&h, "a", "").await.len(), 27);
    assert_eq!(list_keys(&h, "b", "users/").await, vec!["users/99"]);
    let query = ListQuery {
        prefix: "users/".into(),
        after: Some("a".into()),
        limit: 1,
    };
    let page = h.engine.list(&ns("a"), &query).await.unwrap();
    assert_eq!(
        page.entries[0].0.as_str(),
        "users/00",
        "a cursor before the prefix starts it"
    );
}

/// The same key in two namespaces is two keys, with two logs.
pub async fn namespaces_are_isolated(h: Harness) {
    put(&h, "a", "k", "in a").await;
    put(&h, "b", "k", "in b").await;
    assert_eq!(
        h.engine
            .get(&ns("a"), &key("k"))
            .await
            .unwrap()
            .unwrap()
            .value,
        "in a"
    );
    assert_eq!(
        h.engine
            .get(&ns("b"), &key("k"))
            .await
            .unwrap()
            .unwrap()
            .value,
        "in b"
    );
    h.engine
        .commit(&ns("a"), Txn::delete(key("k")))
        .await
        .unwrap();
    assert!(h.engine.get(&ns("b"), &key("k")).await.unwrap().is_some());
    assert_eq!(events(&h, "a").await.len(), 2);
    assert_eq!(events(&h, "b").await.len(), 1);
    assert!(events(&h, "c").await.is_empty());
}

/// Reading the log resumes after an offset, honours the limit and filters by type.
pub async fn log_paging_and_type_filter(h: Harness) {
    for i in 0..5 {
        put(&h, "a", &format!("k{i}"), "v").await;
    }
    h.engine
        .commit(&ns("a"), Txn::delete(key("k0")))
        .await
        .unwrap();
    let a = ns("a");
    let page = h
        .engine
        .read(
            &a,
            &EventQuery {
                after: 2,
                limit: 2,
                type_filter: None,
            },
        )
        .await;
    let page = page.unwrap();
    let seqs: Vec<u64> = page.events.iter().map(|e| e.ferrobaseseq).collect();
    assert_eq!(seqs, vec![3, 4]);
    assert_eq!(page.next_after, 4);
    let deletes = EventQuery {
        after: 0,
        limit: 100,
        type_filter: Some("ferrobase.kv.delete".into()),
    };
    let page = h.engine.read(&a, &deletes).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].ferrobaseseq, 6);
    let all_kv = EventQuery {
        after: 0,
        limit: 100,
        type_filter: Some("ferrobase.kv.".into()),
    };
    assert_eq!(h.engine.read(&a, &all_kv).await.unwrap().events.len(), 6);
    let beyond = EventQuery {
        after: 6,
        limit: 100,
        type_filter: None,
    };
    let page = h.engine.read(&a, &beyond).await.unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.next_after, 6);
}

/// A reader waiting beyond the head wakes when a write lands.
pub async fn wait_beyond_wakes_on_commit(h: Harness) {
    put(&h, "a", "k", "v").await;
    let a = ns("a");
    tokio::time::timeout(Duration::from_secs(5), h.engine.wait_beyond(&a, 0))
        .await
        .expect("returns at once when events exist");
    let engine = h.engine.clone();
    let waiter = tokio::spawn(async move { engine.wait_beyond(&ns("a"), 1).await });
    tokio::task::yield_now().await;
    put(&h, "a", "k", "w").await;
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by the commit")
        .unwrap();
}

/// Retention drops the oldest events by count and by age, and nothing else.
pub async fn retention_by_count_and_age(h: Harness) {
    for i in 0..10 {
        put(&h, "a", &format!("k{i}"), "v").await;
    }
    put(&h, "b", "k", "v").await;
    let by_count = Retention {
        max_age: None,
        max_events: Some(4),
    };
    assert_eq!(h.engine.prune_log(&by_count).await.unwrap(), 6);
    let seqs: Vec<u64> = events(&h, "a")
        .await
        .iter()
        .map(|e| e.ferrobaseseq)
        .collect();
    assert_eq!(seqs, vec![7, 8, 9, 10]);
    assert_eq!(h.engine.retained().await.unwrap(), 5);
    assert_eq!(
        h.engine.head(&ns("a")).await.unwrap(),
        10,
        "pruning keeps the head"
    );

    h.clock.advance(Duration::from_secs(3600));
    put(&h, "a", "fresh", "v").await;
    let by_age = Retention {
        max_age: Some(Duration::from_secs(60)),
        max_events: None,
    };
    assert_eq!(h.engine.prune_log(&by_age).await.unwrap(), 5);
    let seqs: Vec<u64> = events(&h, "a")
        .await
        .iter()
        .map(|e| e.ferrobaseseq)
        .collect();
    assert_eq!(seqs, vec![11]);
    assert!(events(&h, "b").await.is_empty());
    assert_eq!(h.engine.prune_log(&by_age).await.unwrap(), 0);
    // The data itself is untouched by log retention.
    assert!(h.engine.get(&ns("a"), &key("k0")).await.unwrap().is_some());
}

/// Concurrent writers to one namespace get distinct versions and a gap-free log.
pub async fn concurrent_writers_get_contiguous_offsets(h: Harness) {
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let engine = h.engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..25 {
                let txn = Txn::put(
                    key(&format!("w{writer}/{i}")),
                    Bytes::from_static(b"v"),
                    "x/y",
                );
                match engine.commit(&ns("a"), txn).await.unwrap().results[0] {
                    MutationResult::Put { version, .. } => versions.push(version),
                    ref other => panic!("unexpected {other:?}"),
                }
            }
            versions
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.extend(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=200).collect::<Vec<u64>>());
    let seqs: Vec<u64> = events(&h, "a")
        .await
        .iter()
        .map(|e| e.ferrobaseseq)
        .collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
}

/// Records (internal keys) stay out of KV listings and KV events; their commit appends exactly
/// the given events, atomically with the records, and a failed condition writes neither.
pub async fn records_commit_with_their_events(h: Harness) {
    use ferrobase_core::event::Causation;
    use ferrobase_core::records::{EventDraft, RecordCommit, RecordCondition, RecordStore};

    let store = crate::KvRecordStore::new(h.engine.clone());
    let a = ns("a");
    put(&h, "a", "user-key", "v").await;
    let draft = |subject: &str| EventDraft {
        event_type: EventType::StorageObjectCreated,
        subject: subject.to_owned(),
        data: serde_json::json!({"key": subject}),
        causation: Causation::default(),
    };
    let commit = RecordCommit {
        conditions: vec![("objects/b/x".into(), RecordCondition::Absent)],
        writes: vec![("objects/b/x".into(), Some(Bytes::from_static(b"meta")))],
        events: vec![draft("b/x")],
    };
    let outcome = store.commit(&a, commit.clone()).await.unwrap();
    assert_eq!(outcome.event_offsets, vec![2]);
    let record = store
        .get(&a, "objects/b/x")
        .await
        .unwrap()
        .expect("record stored");
    assert_eq!(record.value, Bytes::from_static(b"meta"));
    assert_eq!(record.version, outcome.versions[0]);

    // The same commit again fails its condition: no record change, no event.
    assert!(store.commit(&a, commit).await.is_err());
    let log = events(&h, "a").await;
    let types: Vec<EventType> = log.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        vec![EventType::KvPut, EventType::StorageObjectCreated]
    );
    assert_eq!(log[1].source, "/ns/a/storage");

    // Records are invisible to KV reads and listings, and their versions grow.
    assert_eq!(list_keys(&h, "a", "").await, vec!["user-key"]);
    let overwrite = RecordCommit {
        conditions: vec![(
            "objects/b/x".into(),
            RecordCondition::Version(record.version),
        )],
        writes: vec![("objects/b/x".into(), Some(Bytes::from_static(b"meta2")))],
        events: vec![],
    };
    let second = store.commit(&a, overwrite).await.unwrap();
    assert!(second.versions[0] > record.version);
    assert_eq!(
        events(&h, "a").await.len(),
        2,
        "record writes alone log nothing"
    );
    let scanned = store.scan(&a, "objects/", None, 10).await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].0, "objects/b/x");
    assert_eq!(scanned[0].1.value, Bytes::from_static(b"meta2"));
}

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh engine built by
/// `$make`, an expression of type `fn(Arc<ManualClock>) -> impl Future<Output = Arc<dyn KvEngine>>`
/// (it may also keep a temp dir alive by leaking it into the engine's lifetime).
/// A write carrying a write key (a function's write while it handles an event) applies once:
/// a repeat writes and logs nothing and says so, until the mark's lifetime has passed.
pub async fn writes_with_a_write_key_apply_once(h: Harness) {
    let a = ns("a");
    let keyed = |value: &str| {
        let mut txn = Txn::put(key("report"), Bytes::from(value.to_owned()), "text/plain");
        txn.causation.write_key = Some("01EVENT/f/0".to_owned());
        txn
    };
    h.engine
        .commit(&a, keyed("first"))
        .await
        .expect("first write");
    assert!(matches!(
        h.engine.commit(&a, keyed("retry")).await,
        Err(KvError::AlreadyApplied(_))
    ));
    let stored = h.engine.get(&a, &key("report")).await.unwrap().unwrap();
    assert_eq!(&stored.value[..], b"first");
    assert_eq!(events(&h, "a").await.len(), 1, "the repeat is not logged");
    let listed = h
        .engine
        .list(
            &a,
            &ListQuery {
                prefix: String::new(),
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.entries.len(), 1, "marks are not listed");
    h.clock
        .advance(crate::txn::MARK_LIFETIME + Duration::from_secs(1));
    h.engine
        .commit(&a, keyed("much later"))
        .await
        .expect("the mark expired");
}

#[macro_export]
macro_rules! kv_conformance_tests {
    ($make:expr) => {
        $crate::kv_conformance_tests!(@tests $make;
            put_get_and_event, versions_strictly_increase, delete_and_missing_delete,
            compare_and_set, transaction_all_or_nothing, invalid_transactions_write_nothing,
            content_types_are_bounded,
            ttl_expiry, ttl_overwrite, write_over_expired_key, list_prefix_and_pagination,
            namespaces_are_isolated, log_paging_and_type_filter, wait_beyond_wakes_on_commit,
            retention_by_count_and_age, concurrent_writers_get_contiguous_offsets,
            records_commit_with_their_events, writes_with_a_write_key_apply_once);
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let clock = ::ferrobase_core::ManualClock::starting_now();
                let engine = ($make)(clock.clone()).await;
                $crate::conformance::$name($crate::conformance::Harness { engine, clock }).await;
            }
        )*
    };
}
