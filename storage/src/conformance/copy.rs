//! Copy checks: metadata, conditions and events of server-side copies.

use super::*;

/// Copies keep or replace metadata, are independent of their source, and are logged.
pub async fn copy_objects(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "src").await;
    bucket(&h, "a", "dst").await;
    let source = h
        .storage
        .put_object(
            &a,
            "src",
            "k",
            text("payload"),
            PutOptions {
                content_type: Some("text/plain".to_owned()),
                metadata: BTreeMap::from([("m".to_owned(), "1".to_owned())]),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    let copy = h
        .storage
        .copy_object(
            &a,
            "src",
            "k",
            &ReadConditions::default(),
            "dst",
            "copy",
            None,
            Causation::default(),
        )
        .await
        .unwrap();
    assert_eq!(copy.etag, source.etag);
    assert_eq!(copy.content_type, "text/plain");
    assert_eq!(copy.metadata["m"], "1");
    let replaced = h
        .storage
        .copy_object(
            &a,
            "src",
            "k",
            &ReadConditions::default(),
            "src",
            "k2",
            Some(PutOptions {
                content_type: Some("application/json".to_owned()),
                ..PutOptions::default()
            }),
            Causation::default(),
        )
        .await
        .unwrap();
    assert_eq!(replaced.content_type, "application/json");
    assert!(replaced.metadata.is_empty());
    h.storage
        .delete_object(&a, "src", "k", Causation::default())
        .await
        .unwrap();
    assert_eq!(
        get(&h, "a", "dst", "copy", GetOptions::default()).await,
        b"payload"
    );
    assert!(matches!(
        h.storage
            .copy_object(
                &a,
                "src",
                "k",
                &ReadConditions::default(),
                "dst",
                "x",
                None,
                Causation::default()
            )
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));
    assert!(matches!(
        h.storage
            .copy_object(
                &a,
                "src",
                "k2",
                &ReadConditions {
                    if_match: Some("\"other\"".to_owned()),
                    ..Default::default()
                },
                "dst",
                "x",
                None,
                Causation::default()
            )
            .await,
        Err(StorageError::PreconditionFailed(_))
    ));
    let subjects: Vec<String> = events(&h, "a")
        .await
        .into_iter()
        .map(|e| format!("{} {}", e.event_type.as_str(), e.subject))
        .collect();
    assert_eq!(
        subjects,
        [
            "ferrobase.storage.object.created src/k",
            "ferrobase.storage.object.created dst/copy",
            "ferrobase.storage.object.created src/k2",
            "ferrobase.storage.object.deleted src/k",
        ]
    );
    assert_no_orphans(&h).await;
}
