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

/// UploadPartCopy: whole objects and spans of them become parts, checked against the source's
/// conditions and size; the assembled object is the bytes copied, and outlives its source.
pub async fn part_copies(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "pcs").await;
    let data = pattern(MIN_PART_BYTES as usize + 1000, 7);
    let source = h
        .storage
        .put_object(
            &a,
            "pcs",
            "src",
            body(vec![data.clone()]),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let upload = h
        .storage
        .create_multipart(&a, "pcs", "dst", PutOptions::default())
        .await
        .unwrap();
    let from = |range: Option<(u64, u64)>, conditions: ReadConditions| crate::PartSource {
        bucket: "pcs".to_owned(),
        key: "src".to_owned(),
        conditions,
        range,
    };
    let copy = |source: crate::PartSource, number: u32| {
        let (h, a, upload) = (&h, a.clone(), upload.clone());
        async move {
            h.storage
                .upload_part_copy(&a, &source, "pcs", "dst", &upload, number)
                .await
        }
    };
    let whole = copy(from(None, ReadConditions::default()), 1)
        .await
        .unwrap();
    assert_eq!(
        (whole.size, whole.etag.as_str()),
        (data.len() as u64, source.etag.as_str())
    );
    let span = copy(from(Some((10, 109)), ReadConditions::default()), 2)
        .await
        .unwrap();
    assert_eq!(
        (span.size, span.etag.clone()),
        (100, md5_hex(&data[10..110]))
    );
    let size = data.len() as u64;
    for bad in [(size, size + 5), (0, size)] {
        assert!(matches!(
            copy(from(Some(bad), ReadConditions::default()), 3).await,
            Err(StorageError::InvalidArgument(_))
        ));
    }
    let stale = ReadConditions {
        if_match: Some("\"0123\"".to_owned()),
        ..ReadConditions::default()
    };
    assert!(matches!(
        copy(from(None, stale), 3).await,
        Err(StorageError::PreconditionFailed(_))
    ));
    let unchanged = ReadConditions {
        if_none_match: Some(source.etag.clone()),
        ..ReadConditions::default()
    };
    assert!(matches!(
        copy(from(None, unchanged), 3).await,
        Err(StorageError::PreconditionFailed(_))
    ));
    assert!(matches!(
        h.storage
            .upload_part_copy(
                &a,
                &from(None, ReadConditions::default()),
                "pcs",
                "dst",
                "nosuch",
                1
            )
            .await,
        Err(StorageError::NoSuchUpload(_))
    ));
    let missing = crate::PartSource {
        key: "absent".to_owned(),
        ..from(None, ReadConditions::default())
    };
    assert!(matches!(
        copy(missing, 3).await,
        Err(StorageError::NoSuchKey { .. })
    ));
    let parts = [whole, span].map(|part| CompletedPart {
        part_number: part.part_number,
        etag: part.etag,
        checksum: None,
    });
    complete(&h.storage, "pcs", "dst", &upload, &parts)
        .await
        .unwrap();
    h.storage
        .delete_object(&a, "pcs", "src", Causation::default())
        .await
        .unwrap();
    let mut expected = data.to_vec();
    expected.extend_from_slice(&data[10..110]);
    assert_eq!(
        get(&h, "a", "pcs", "dst", GetOptions::default()).await,
        expected
    );
    assert_no_orphans(&h).await;
}
