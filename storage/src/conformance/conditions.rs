//! Condition checks: conditional reads and writes, with S3's answers.

use super::*;

/// Conditional reads follow S3: If-Match and If-Unmodified-Since fail with 412,
/// If-None-Match and If-Modified-Since answer "not modified".
pub async fn conditional_reads(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "cnd").await;
    let etag = put(&h, "a", "cnd", "k", "v").await;
    let info = h
        .storage
        .head_object(&a, "cnd", "k", &GetOptions::default())
        .await
        .unwrap();
    let with = |conditions: ReadConditions| GetOptions {
        range: None,
        conditions,
    };
    let outcome = |conditions: ReadConditions| {
        let h = &h;
        let a = a.clone();
        async move {
            h.storage
                .get_object(&a, "cnd", "k", &with(conditions))
                .await
                .map(|_| ())
        }
    };
    assert!(
        outcome(ReadConditions {
            if_match: Some(format!("\"{etag}\"")),
            ..Default::default()
        })
        .await
        .is_ok()
    );
    assert!(matches!(
        outcome(ReadConditions {
            if_match: Some("\"nope\"".to_owned()),
            ..Default::default()
        })
        .await,
        Err(StorageError::PreconditionFailed(_))
    ));
    assert!(matches!(
        outcome(ReadConditions {
            if_none_match: Some(format!("\"{etag}\"")),
            ..Default::default()
        })
        .await,
        Err(StorageError::NotModified { .. })
    ));
    assert!(
        outcome(ReadConditions {
            if_none_match: Some("\"other\"".to_owned()),
            ..Default::default()
        })
        .await
        .is_ok()
    );
    let modified = info.last_modified_ms;
    assert!(matches!(
        outcome(ReadConditions {
            if_modified_since_ms: Some(modified + 5_000),
            ..Default::default()
        })
        .await,
        Err(StorageError::NotModified { .. })
    ));
    assert!(
        outcome(ReadConditions {
            if_modified_since_ms: Some(modified - 5_000),
            ..Default::default()
        })
        .await
        .is_ok()
    );
    assert!(matches!(
        outcome(ReadConditions {
            if_unmodified_since_ms: Some(modified - 5_000),
            ..Default::default()
        })
        .await,
        Err(StorageError::PreconditionFailed(_))
    ));
    assert!(matches!(
        h.storage
            .head_object(
                &a,
                "cnd",
                "k",
                &with(ReadConditions {
                    if_none_match: Some("*".to_owned()),
                    ..Default::default()
                })
            )
            .await,
        Err(StorageError::NotModified { .. })
    ));
}

/// Conditional writes: create-only and compare-and-swap on the ETag; a failed condition
/// writes nothing and logs nothing.
pub async fn conditional_writes(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "wrt").await;
    let create_only = PutOptions {
        conditions: WriteConditions {
            if_none_match_any: true,
            ..Default::default()
        },
        ..PutOptions::default()
    };
    let first = h
        .storage
        .put_object(&a, "wrt", "k", text("one"), create_only.clone())
        .await
        .unwrap();
    assert!(matches!(
        h.storage
            .put_object(&a, "wrt", "k", text("two"), create_only)
            .await,
        Err(StorageError::PreconditionFailed(_))
    ));
    let if_match = |tag: &str| PutOptions {
        conditions: WriteConditions {
            if_match: Some(tag.to_owned()),
            ..Default::default()
        },
        ..PutOptions::default()
    };
    assert!(matches!(
        h.storage
            .put_object(&a, "wrt", "k", text("three"), if_match("\"stale\""))
            .await,
        Err(StorageError::PreconditionFailed(_))
    ));
    assert!(matches!(
        h.storage
            .put_object(&a, "wrt", "missing", text("x"), if_match("*"))
            .await,
        Err(StorageError::PreconditionFailed(_))
    ));
    h.storage
        .put_object(
            &a,
            "wrt",
            "k",
            text("four"),
            if_match(&format!("\"{}\"", first.etag)),
        )
        .await
        .unwrap();
    assert_eq!(
        get(&h, "a", "wrt", "k", GetOptions::default()).await,
        b"four"
    );
    assert_eq!(events(&h, "a").await.len(), 2);
    assert_no_orphans(&h).await;
}
