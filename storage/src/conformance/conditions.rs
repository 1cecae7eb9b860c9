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
            if_none_match: Some("*".to_owned()),
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
    // If-None-Match with ETags: refused while the object has one of them.
    let if_none_match = |tags: &str| PutOptions {
        conditions: WriteConditions {
            if_none_match: Some(tags.to_owned()),
            ..Default::default()
        },
        ..PutOptions::default()
    };
    let four = md5_hex(b"four");
    assert!(matches!(
        h.storage
            .put_object(
                &a,
                "wrt",
                "k",
                text("five"),
                if_none_match(&format!("\"x\", \"{four}\""))
            )
            .await,
        Err(StorageError::PreconditionFailed(_))
    ));
    h.storage
        .put_object(
            &a,
            "wrt",
            "fresh",
            text("new"),
            if_none_match(&format!("\"{four}\"")),
        )
        .await
        .unwrap();
    // CompleteMultipartUpload is held to the same conditions against the current object.
    let upload = h
        .storage
        .create_multipart(&a, "wrt", "k", PutOptions::default())
        .await
        .unwrap();
    let part = h
        .storage
        .upload_part(
            &a,
            "wrt",
            "k",
            &upload,
            1,
            text("part"),
            BodyChecks::default(),
        )
        .await
        .unwrap();
    let parts = [CompletedPart {
        part_number: 1,
        etag: part.etag,
        checksum: None,
    }];
    let complete = |conditions: WriteConditions| {
        let (h, a, upload, parts) = (&h, a.clone(), upload.clone(), parts.clone());
        async move {
            h.storage
                .complete_multipart(
                    &a,
                    "wrt",
                    "k",
                    &upload,
                    &parts,
                    &conditions,
                    Causation::default(),
                )
                .await
        }
    };
    for failing in [
        if_match("\"stale\"").conditions,
        if_none_match(&four).conditions,
        if_none_match("*").conditions,
    ] {
        assert!(matches!(
            complete(failing).await,
            Err(StorageError::PreconditionFailed(_))
        ));
    }
    complete(if_match(&four).conditions).await.unwrap();
    assert_eq!(
        get(&h, "a", "wrt", "k", GetOptions::default()).await,
        b"part"
    );
    assert_eq!(events(&h, "a").await.len(), 4);
    assert_no_orphans(&h).await;
}
