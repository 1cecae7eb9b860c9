//! Idempotency checks: a function's puts and deletes, retried with the same write key, are
//! applied once and logged once.

use super::*;

fn by_function(write_key: &str) -> Causation {
    Causation {
        cause: Some("activation".to_owned()),
        depth: 1,
        write_key: Some(write_key.to_owned()),
    }
}

async fn keyed_put(h: &Harness, key: &str, value: &str, write_key: &str) -> ObjectInfoSummary {
    let info = h
        .storage
        .put_object(
            &ns("a"),
            "files",
            key,
            text(value),
            PutOptions {
                causation: by_function(write_key),
                ..PutOptions::default()
            },
        )
        .await
        .expect("put succeeds");
    ObjectInfoSummary {
        etag: info.etag,
        size: info.size,
    }
}

#[derive(Debug, PartialEq, Eq)]
struct ObjectInfoSummary {
    etag: String,
    size: u64,
}

async fn body_of(h: &Harness, key: &str) -> String {
    String::from_utf8(get(h, "a", "files", key, GetOptions::default()).await).unwrap()
}

/// A repeated write key answers the first application and changes nothing, even when the
/// object changed in between; marks expire with the sweep after their lifetime.
pub async fn function_writes_apply_once(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "files").await;
    let first = keyed_put(&h, "report.txt", "first", "01EV/f/0").await;
    let logged = events(&h, "a").await.len();

    // The retry (different body, same key) gets the first answer; nothing is written.
    assert_eq!(
        keyed_put(&h, "report.txt", "retry", "01EV/f/0").await,
        first
    );
    assert_eq!(body_of(&h, "report.txt").await, "first");
    // Someone else writes; the retry still does not overwrite them.
    put(&h, "a", "files", "report.txt", "someone else").await;
    assert_eq!(
        keyed_put(&h, "report.txt", "retry", "01EV/f/0").await,
        first
    );
    assert_eq!(body_of(&h, "report.txt").await, "someone else");
    assert_eq!(
        events(&h, "a").await.len(),
        logged + 1,
        "only the other write is logged"
    );

    // Deletes: applied once; a re-created object survives the retry.
    let delete = |write_key: &'static str| {
        let storage = &h.storage;
        let a = a.clone();
        async move {
            storage
                .delete_object(&a, "files", "report.txt", by_function(write_key))
                .await
                .expect("delete succeeds")
        }
    };
    assert!(delete("01EV/f/1").await);
    put(&h, "a", "files", "report.txt", "again").await;
    assert!(
        delete("01EV/f/1").await,
        "the retry answers like the first run"
    );
    assert_eq!(body_of(&h, "report.txt").await, "again");
    let log = events(&h, "a").await;
    let deleted = log
        .iter()
        .filter(|e| e.event_type == EventType::StorageObjectDeleted)
        .count();
    assert_eq!(deleted, 1, "one delete event");
    // A write key used by a put cannot be replayed as a delete.
    assert!(matches!(
        h.storage
            .delete_object(&a, "files", "report.txt", by_function("01EV/f/0"))
            .await,
        Err(StorageError::PreconditionFailed(_))
    ));

    // Marks are internal: listings show objects only.
    let page = h
        .storage
        .list_objects(&a, "files", &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_no_orphans(&h).await;

    // After their lifetime the sweep forgets the marks; the key then writes again.
    h.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    h.storage.sweep_orphans(Duration::ZERO).await.unwrap();
    keyed_put(&h, "report.txt", "much later", "01EV/f/0").await;
    assert_eq!(body_of(&h, "report.txt").await, "much later");
}
