//! Multipart upload checks: parts, retries, completion, abort and the part rules.

use super::*;

async fn upload_part(
    h: &Harness,
    upload: &str,
    number: u32,
    data: Bytes,
) -> Result<crate::PartInfo, StorageError> {
    let chunks = data
        .chunks(1024 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    h.storage
        .upload_part(
            &ns("a"),
            "mpu",
            "big.bin",
            upload,
            number,
            body(chunks),
            BodyChecks::default(),
        )
        .await
}

/// Multipart: parts, a retried part, listing, completion with S3's ETag, ranged reads across
/// parts, and exactly one event.
pub async fn multipart_upload(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "mpu").await;
    let options = PutOptions {
        content_type: Some("application/x-test".to_owned()),
        metadata: BTreeMap::from([("kind".to_owned(), "multi".to_owned())]),
        ..PutOptions::default()
    };
    let upload = h
        .storage
        .create_multipart(&a, "mpu", "big.bin", options)
        .await
        .unwrap();
    let part1 = pattern(MIN_PART_BYTES as usize, 1);
    let part2 = pattern(1000, 2);
    // The first attempt at part 1 is interrupted; the retry replaces it.
    let broken: ByteStream = futures::stream::iter(vec![
        Ok(pattern(1024, 9)),
        Err(std::io::Error::other("interrupted")),
    ])
    .boxed();
    assert!(
        h.storage
            .upload_part(
                &a,
                "mpu",
                "big.bin",
                &upload,
                1,
                broken,
                BodyChecks::default()
            )
            .await
            .is_err()
    );
    upload_part(&h, &upload, 1, pattern(2048, 7)).await.unwrap();
    let p1 = upload_part(&h, &upload, 1, part1.clone()).await.unwrap();
    let p2 = upload_part(&h, &upload, 2, part2.clone()).await.unwrap();
    assert_eq!(p1.etag, md5_hex(&part1));
    let (parts, truncated) = h
        .storage
        .list_parts(&a, "mpu", "big.bin", &upload, None, 1000)
        .await
        .unwrap();
    assert!(!truncated);
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.part_number, p.size))
            .collect::<Vec<_>>(),
        [(1, part1.len() as u64), (2, 1000)]
    );
    let (first, truncated) = h
        .storage
        .list_parts(&a, "mpu", "big.bin", &upload, None, 1)
        .await
        .unwrap();
    assert!(truncated && first.len() == 1);
    let (rest, _) = h
        .storage
        .list_parts(&a, "mpu", "big.bin", &upload, Some(1), 1)
        .await
        .unwrap();
    assert_eq!(rest[0].part_number, 2);
    let uploads = h.storage.list_uploads(&a, "mpu", "big").await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].upload_id, upload);
    assert!(
        h.storage
            .list_uploads(&a, "mpu", "other")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        events(&h, "a").await.is_empty(),
        "nothing is visible before completion"
    );
    assert!(matches!(
        h.storage
            .head_object(&a, "mpu", "big.bin", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));

    let completed = |parts: &[(u32, &str)]| -> Vec<CompletedPart> {
        parts
            .iter()
            .map(|(n, e)| CompletedPart {
                part_number: *n,
                etag: format!("\"{e}\""),
                ..CompletedPart::default()
            })
            .collect()
    };
    let finish = |parts: Vec<CompletedPart>| {
        let (h, upload) = (&h, upload.clone());
        async move { complete(&h.storage, "mpu", "big.bin", &upload, &parts).await }
    };
    assert!(matches!(
        finish(completed(&[(2, &p2.etag), (1, &p1.etag)])).await,
        Err(StorageError::InvalidPartOrder)
    ));
    assert!(matches!(
        finish(completed(&[(1, &p1.etag), (2, "0000")])).await,
        Err(StorageError::InvalidPart(_))
    ));
    assert!(matches!(
        finish(completed(&[(1, &p1.etag), (3, &p2.etag)])).await,
        Err(StorageError::InvalidPart(_))
    ));
    assert!(matches!(
        finish(completed(&[(1, &p1.etag), (2, &p1.etag)])).await,
        Err(StorageError::InvalidPart(_))
    ));
    let info = finish(completed(&[(1, &p1.etag), (2, &p2.etag)]))
        .await
        .unwrap();
    let mut md5s = Md5::new();
    md5s.update(Md5::digest(&part1));
    md5s.update(Md5::digest(&part2));
    assert_eq!(info.etag, format!("{}-2", hex::encode(md5s.finalize())));
    assert_eq!(info.size, part1.len() as u64 + 1000);
    assert_eq!(info.parts, Some(2));
    assert_eq!(info.content_type, "application/x-test");
    assert_eq!(info.metadata["kind"], "multi");

    let whole = [part1.as_ref(), part2.as_ref()].concat();
    assert!(get(&h, "a", "mpu", "big.bin", GetOptions::default()).await == whole);
    let across = part1.len() as u64 - 10;
    let ranged = get(
        &h,
        "a",
        "mpu",
        "big.bin",
        GetOptions {
            range: Some(ByteRange::Bounded {
                start: across,
                end: across + 19,
            }),
            ..GetOptions::default()
        },
    )
    .await;
    assert_eq!(ranged, whole[across as usize..across as usize + 20]);

    // A retried completion with the same parts answers the same object, once; with other
    // parts the upload is gone.
    let events_before = events(&h, "a").await.len();
    let again = finish(completed(&[(1, &p1.etag), (2, &p2.etag)]))
        .await
        .unwrap();
    assert_eq!(again, info);
    assert_eq!(events(&h, "a").await.len(), events_before);
    assert!(matches!(
        finish(completed(&[(1, &p1.etag)])).await,
        Err(StorageError::NoSuchUpload(_))
    ));
    assert!(
        h.storage
            .list_uploads(&a, "mpu", "")
            .await
            .unwrap()
            .is_empty()
    );
    let log = events(&h, "a").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event_type, EventType::StorageObjectCreated);
    assert_eq!(log[0].data["etag"], info.etag.as_str());
    assert_no_orphans(&h).await;
}

/// Parts too small, or an abort: nothing becomes visible, nothing is logged, nothing is left.
pub async fn multipart_abort_and_small_parts(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "mpu").await;
    let upload = h
        .storage
        .create_multipart(&a, "mpu", "big.bin", PutOptions::default())
        .await
        .unwrap();
    let p1 = upload_part(&h, &upload, 1, pattern(100, 1)).await.unwrap();
    let p2 = upload_part(&h, &upload, 2, pattern(100, 2)).await.unwrap();
    let parts = [
        CompletedPart {
            part_number: 1,
            etag: p1.etag,
            ..CompletedPart::default()
        },
        CompletedPart {
            part_number: 2,
            etag: p2.etag,
            ..CompletedPart::default()
        },
    ];
    assert!(matches!(
        complete(&h.storage, "mpu", "big.bin", &upload, &parts).await,
        Err(StorageError::EntityTooSmall { part_number: 1, .. })
    ));
    assert!(matches!(
        h.storage
            .abort_multipart(&a, "mpu", "other-key", &upload)
            .await,
        Err(StorageError::NoSuchUpload(_))
    ));
    h.storage
        .abort_multipart(&a, "mpu", "big.bin", &upload)
        .await
        .unwrap();
    assert!(matches!(
        h.storage
            .list_parts(&a, "mpu", "big.bin", &upload, None, 10)
            .await,
        Err(StorageError::NoSuchUpload(_))
    ));
    assert!(matches!(
        upload_part(&h, &upload, 3, pattern(10, 3)).await,
        Err(StorageError::NoSuchUpload(_))
    ));
    assert!(matches!(
        h.storage
            .abort_multipart(&a, "mpu", "big.bin", &upload)
            .await,
        Err(StorageError::NoSuchUpload(_))
    ));
    assert!(matches!(
        h.storage
            .head_object(&a, "mpu", "big.bin", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));
    assert!(events(&h, "a").await.is_empty());
    assert_no_orphans(&h).await;
    h.storage.delete_bucket(&a, "mpu").await.unwrap();
}

/// Uploads in progress list in pages by key, then upload id, resuming after the markers,
/// with keys rolled up to the delimiter.
pub async fn multipart_upload_listing(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "ups").await;
    let mut made = Vec::new();
    for key in ["mp/a", "mp/a", "mp/b", "mp/dir/x", "other"] {
        let id = h
            .storage
            .create_multipart(&a, "ups", key, PutOptions::default())
            .await
            .unwrap();
        made.push((key.to_owned(), id));
    }
    made.sort();
    let list = |query: UploadQuery| {
        let storage = h.storage.clone();
        let a = a.clone();
        async move { storage.list_uploads_page(&a, "ups", &query, |_| true).await }
    };
    let keys = |page: &UploadPage| -> Vec<String> {
        page.uploads
            .iter()
            .map(|upload| upload.key.clone())
            .collect()
    };

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(UploadQuery {
            after: after.clone(),
            max_uploads: 2,
            ..UploadQuery::default()
        })
        .await
        .unwrap();
        seen.extend(
            page.uploads
                .iter()
                .map(|upload| (upload.key.clone(), upload.upload_id.clone())),
        );
        let Some(next) = page.next else { break };
        let (last_key, last_id) = seen.last().expect("a full page");
        assert_eq!(
            (&next.key, next.upload_id.as_ref()),
            (last_key, Some(last_id))
        );
        after = Some(next);
    }
    assert_eq!(seen, made);

    let after_a = list(UploadQuery {
        after: Some(UploadMarker {
            key: "mp/a".to_owned(),
            upload_id: None,
        }),
        ..UploadQuery::default()
    })
    .await
    .unwrap();
    assert_eq!(keys(&after_a), ["mp/b", "mp/dir/x", "other"]);

    let rolled = UploadQuery {
        prefix: "mp/".to_owned(),
        delimiter: Some("/".to_owned()),
        max_uploads: 3,
        ..UploadQuery::default()
    };
    let first = list(rolled.clone()).await.unwrap();
    assert_eq!(keys(&first), ["mp/a", "mp/a", "mp/b"]);
    let rest = list(UploadQuery {
        after: first.next.clone(),
        ..rolled.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        (keys(&rest), rest.common_prefixes.clone()),
        (vec![], vec!["mp/dir/".to_owned()])
    );
    assert_eq!(rest.next, None);
    // A marker that is a common prefix skips the uploads rolled up into it.
    let after_prefix = list(UploadQuery {
        after: Some(UploadMarker {
            key: "mp/dir/".to_owned(),
            upload_id: None,
        }),
        ..rolled
    })
    .await
    .unwrap();
    assert_eq!(after_prefix, UploadPage::default());
    assert!(matches!(
        list(UploadQuery {
            max_uploads: 0,
            ..UploadQuery::default()
        })
        .await,
        Err(StorageError::InvalidArgument(_))
    ));
    // Keys that are not visible are neither listed nor rolled up, on any page.
    let visible = |key: &str| key.starts_with("mp/a") || key == "other";
    let hidden = UploadQuery {
        delimiter: Some("/".to_owned()),
        max_uploads: 1,
        ..UploadQuery::default()
    };
    let first = h
        .storage
        .list_uploads_page(&a, "ups", &hidden, visible)
        .await
        .unwrap();
    assert_eq!(first.common_prefixes, ["mp/"]);
    let second = h
        .storage
        .list_uploads_page(
            &a,
            "ups",
            &UploadQuery {
                after: first.next.clone(),
                ..hidden.clone()
            },
            visible,
        )
        .await
        .unwrap();
    assert_eq!(
        (keys(&second), second.next),
        (vec!["other".to_owned()], None)
    );
    let only_mp = UploadQuery {
        prefix: "mp/".to_owned(),
        delimiter: Some("/".to_owned()),
        ..UploadQuery::default()
    };
    let page = h
        .storage
        .list_uploads_page(&a, "ups", &only_mp, visible)
        .await
        .unwrap();
    assert_eq!(
        (keys(&page), page.common_prefixes),
        (vec!["mp/a".to_owned(), "mp/a".to_owned()], vec![])
    );
}

/// An upload left incomplete longer than the upload lifetime is aborted by the sweep, with
/// its parts' bytes; a younger one, and one completed in time, are left alone. (All three
/// are uploads of one key, as S3 allows.)
pub async fn abandoned_uploads_are_aborted_by_the_sweep(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "mpu").await;
    let start = || {
        let (h, a) = (&h, a.clone());
        async move {
            h.storage
                .create_multipart(&a, "mpu", "big.bin", PutOptions::default())
                .await
                .unwrap()
        }
    };
    let abandoned = start().await;
    upload_part(&h, &abandoned, 1, pattern(4096, 1))
        .await
        .unwrap();
    let completed = start().await;
    let part = upload_part(&h, &completed, 1, pattern(100, 2)).await;
    let part = part.unwrap();

    // Six days on, nothing is old enough.
    h.clock.advance(Duration::from_secs(6 * 24 * 3600));
    let report = h
        .storage
        .sweep_orphans(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.uploads_aborted, 0);
    complete(
        &h.storage,
        "mpu",
        "big.bin",
        &completed,
        &[CompletedPart {
            part_number: 1,
            etag: part.etag,
            ..CompletedPart::default()
        }],
    )
    .await
    .unwrap();
    let young = start().await;

    // Past seven days the abandoned upload goes, with its part.
    h.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let report = h
        .storage
        .sweep_orphans(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.uploads_aborted, 1);
    assert_eq!((report.blobs_deleted, report.bytes_deleted), (1, 4096));
    let uploads = h.storage.list_uploads(&a, "mpu", "").await.unwrap();
    assert_eq!(
        uploads
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect::<Vec<_>>(),
        [young.as_str()]
    );
    assert!(matches!(
        upload_part(&h, &abandoned, 2, pattern(10, 3)).await,
        Err(StorageError::NoSuchUpload(_))
    ));
    assert_eq!(
        get(&h, "a", "mpu", "big.bin", GetOptions::default()).await,
        pattern(100, 2).to_vec()
    );

    // Without a lifetime nothing is aborted, however old.
    let keep = h.storage.clone().with_upload_lifetime(None);
    h.clock.advance(Duration::from_secs(30 * 24 * 3600));
    let report = keep.sweep_orphans(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(report.uploads_aborted, 0);
    assert_eq!(
        h.storage.list_uploads(&a, "mpu", "").await.unwrap().len(),
        1
    );
    assert_no_orphans(&h).await;
}
