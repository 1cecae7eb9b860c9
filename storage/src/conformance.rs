//! The conformance suite every storage backend must pass (feature `test-utils`).
//!
//! Each check is a plain async function over a [`Harness`]; [`storage_conformance_tests!`]
//! expands them into one `#[tokio::test]` per check for a given constructor, so that local
//! files and S3 are held to exactly the same behaviour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrobase_core::event::Causation;
use ferrobase_core::{ChangeLog, Event, EventQuery, EventType, ManualClock, Namespace};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::ObjectStoreExt;

use crate::model::MIN_PART_BYTES;
use crate::{
    ByteRange, ByteStream, CompletedPart, GetOptions, ListQuery, PutOptions, ReadConditions,
    Storage, StorageError, WriteConditions,
};

/// A storage service under test, the change log its records go to, and its manual clock.
#[derive(Debug)]
pub struct Harness {
    pub storage: Storage,
    pub events: Arc<dyn ChangeLog>,
    pub clock: Arc<ManualClock>,
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).expect("valid namespace")
}

/// A body of the given chunks.
pub fn body(chunks: Vec<Bytes>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(Ok)).boxed()
}

fn text(value: &str) -> ByteStream {
    body(vec![Bytes::from(value.to_owned())])
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u8) -> Bytes {
    let mut state = 0x9E37_79B9u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

async fn read_all(stream: ByteStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("body reads");
    chunks.concat()
}

async fn get(h: &Harness, ns_name: &str, bucket: &str, key: &str, options: GetOptions) -> Vec<u8> {
    let object = h
        .storage
        .get_object(&ns(ns_name), bucket, key, &options)
        .await
        .expect("object reads");
    read_all(object.body).await
}

async fn put(h: &Harness, ns_name: &str, bucket: &str, key: &str, value: &str) -> String {
    h.storage
        .put_object(
            &ns(ns_name),
            bucket,
            key,
            text(value),
            PutOptions::default(),
        )
        .await
        .expect("put succeeds")
        .etag
}

async fn events(h: &Harness, ns_name: &str) -> Vec<Event> {
    let query = EventQuery {
        after: 0,
        limit: 10_000,
        type_filter: None,
    };
    h.events
        .read(&ns(ns_name), &query)
        .await
        .expect("log reads")
        .events
}

/// No blob is left that no record references: a sweep that ignores age finds nothing.
async fn assert_no_orphans(h: &Harness) {
    let report = h
        .storage
        .sweep_orphans(Duration::ZERO)
        .await
        .expect("sweep runs");
    assert_eq!(report.blobs_deleted, 0, "orphaned blobs were left behind");
}

async fn bucket(h: &Harness, ns_name: &str, name: &str) {
    h.storage
        .create_bucket(&ns(ns_name), name)
        .await
        .expect("bucket created");
}

/// Buckets are created once, listed, and deleted only when empty.
pub async fn bucket_lifecycle(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "photos").await;
    bucket(&h, "a", "docs").await;
    assert!(matches!(
        h.storage.create_bucket(&a, "photos").await,
        Err(StorageError::BucketAlreadyExists(_))
    ));
    for bad in ["ab", "Upper", "-dash", "has_underscore", "a..b"] {
        assert!(
            matches!(
                h.storage.create_bucket(&a, bad).await,
                Err(StorageError::InvalidBucketName { .. })
            ),
            "{bad} accepted"
        );
    }
    let names: Vec<String> = h
        .storage
        .list_buckets(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["docs", "photos"]);
    h.storage.head_bucket(&a, "photos").await.unwrap();

    put(&h, "a", "photos", "cat.jpg", "meow").await;
    assert!(matches!(
        h.storage.delete_bucket(&a, "photos").await,
        Err(StorageError::BucketNotEmpty(_))
    ));
    let upload = h
        .storage
        .create_multipart(&a, "docs", "big", PutOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(
            h.storage.delete_bucket(&a, "docs").await,
            Err(StorageError::BucketNotEmpty(_))
        ),
        "an upload in progress keeps the bucket"
    );
    h.storage
        .abort_multipart(&a, "docs", "big", &upload)
        .await
        .unwrap();
    h.storage.delete_bucket(&a, "docs").await.unwrap();
    assert!(matches!(
        h.storage.head_bucket(&a, "docs").await,
        Err(StorageError::NoSuchBucket(_))
    ));
    assert!(matches!(
        h.storage.delete_bucket(&a, "docs").await,
        Err(StorageError::NoSuchBucket(_))
    ));
    assert!(matches!(
        h.storage
            .put_object(&a, "docs", "k", text("v"), PutOptions::default())
            .await,
        Err(StorageError::NoSuchBucket(_))
    ));
    assert!(matches!(
        h.storage
            .get_object(&a, "docs", "k", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchBucket(_))
    ));
}

/// Put, get, head and delete, with metadata, MD5 ETags and one event per change.
pub async fn put_get_head_delete_with_events(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "files").await;
    let metadata = BTreeMap::from([("owner".to_owned(), "alice".to_owned())]);
    let info = h
        .storage
        .put_object(
            &a,
            "files",
            "notes/today.txt",
            body(vec![
                Bytes::from_static(b"hello "),
                Bytes::from_static(b"world"),
            ]),
            PutOptions {
                content_type: Some("text/plain".to_owned()),
                metadata: metadata.clone(),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(info.size, 11);
    assert_eq!(info.etag, md5_hex(b"hello world"));

    let object = h
        .storage
        .get_object(&a, "files", "notes/today.txt", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(object.info.content_type, "text/plain");
    assert_eq!(object.info.metadata, metadata);
    assert_eq!(object.range, None);
    assert_eq!(read_all(object.body).await, b"hello world");

    let head = h
        .storage
        .head_object(&a, "files", "notes/today.txt", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(head, info);

    // An empty object is an object too.
    let empty = h
        .storage
        .put_object(&a, "files", "empty", body(vec![]), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (empty.size, empty.etag.as_str()),
        (0, md5_hex(b"").as_str())
    );
    assert_eq!(
        get(&h, "a", "files", "empty", GetOptions::default()).await,
        b""
    );
    assert_eq!(empty.content_type, "application/octet-stream");

    assert!(
        h.storage
            .delete_object(&a, "files", "notes/today.txt", Causation::default())
            .await
            .unwrap()
    );
    assert!(
        !h.storage
            .delete_object(&a, "files", "notes/today.txt", Causation::default())
            .await
            .unwrap()
    );
    assert!(matches!(
        h.storage
            .get_object(&a, "files", "notes/today.txt", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));
    assert!(matches!(
        h.storage
            .head_object(&a, "files", "notes/today.txt", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));

    let log = events(&h, "a").await;
    let kinds: Vec<(EventType, &str)> = log
        .iter()
        .map(|e| (e.event_type, e.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventType::StorageObjectCreated, "files/notes/today.txt"),
            (EventType::StorageObjectCreated, "files/empty"),
            (EventType::StorageObjectDeleted, "files/notes/today.txt"),
        ]
    );
    assert_eq!(log[0].source, "/ns/a/storage");
    assert_eq!(log[0].data["bucket"], "files");
    assert_eq!(log[0].data["key"], "notes/today.txt");
    assert_eq!(log[0].data["size"], 11);
    assert_eq!(log[0].data["etag"], md5_hex(b"hello world"));
    assert_eq!(log[0].data["content_type"], "text/plain");
    assert_eq!(log[2].data["size"], 11);
    assert_no_orphans(&h).await;
}

/// Overwriting replaces the body and frees the old one.
pub async fn overwrite_replaces_body(h: Harness) {
    bucket(&h, "a", "bb1").await;
    put(&h, "a", "bb1", "k", "first").await;
    put(&h, "a", "bb1", "k", "second, longer").await;
    assert_eq!(
        get(&h, "a", "bb1", "k", GetOptions::default()).await,
        b"second, longer"
    );
    assert_eq!(events(&h, "a").await.len(), 2);
    assert_no_orphans(&h).await;
}

/// Ranges: bounded, open-ended, suffix, clipped at the end, and unsatisfiable.
pub async fn range_reads(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "rng").await;
    put(&h, "a", "rng", "digits", "0123456789").await;
    let read = |range: ByteRange| {
        let h = &h;
        async move {
            let object = h
                .storage
                .get_object(
                    &ns("a"),
                    "rng",
                    "digits",
                    &GetOptions {
                        range: Some(range),
                        ..GetOptions::default()
                    },
                )
                .await
                .unwrap();
            (object.range.clone().unwrap(), read_all(object.body).await)
        }
    };
    assert_eq!(
        read(ByteRange::parse("bytes=2-4").unwrap()).await,
        (2..5, b"234".to_vec())
    );
    assert_eq!(read(ByteRange::From(7)).await, (7..10, b"789".to_vec()));
    assert_eq!(read(ByteRange::Suffix(3)).await, (7..10, b"789".to_vec()));
    assert_eq!(
        read(ByteRange::Bounded { start: 8, end: 100 }).await,
        (8..10, b"89".to_vec())
    );
    assert_eq!(
        read(ByteRange::Suffix(50)).await,
        (0..10, b"0123456789".to_vec())
    );
    for bad in [
        ByteRange::From(10),
        ByteRange::Bounded { start: 20, end: 30 },
        ByteRange::Suffix(0),
    ] {
        assert!(matches!(
            h.storage
                .get_object(
                    &a,
                    "rng",
                    "digits",
                    &GetOptions {
                        range: Some(bad),
                        ..GetOptions::default()
                    }
                )
                .await,
            Err(StorageError::InvalidRange { size: 10 })
        ));
    }
    for bad in ["bytes=5-2", "bytes=-", "items=0-1", "bytes=a-b"] {
        assert!(ByteRange::parse(bad).is_err(), "{bad} parsed");
    }
}

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

/// A body that does not match its Content-MD5, or that fails midway, stores nothing, logs
/// nothing and leaves no blob behind.
pub async fn failed_uploads_leave_nothing(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "fai").await;
    let wrong = PutOptions {
        content_md5: Some(Md5::digest(b"something else").into()),
        ..PutOptions::default()
    };
    assert!(matches!(
        h.storage
            .put_object(&a, "fai", "k", text("data"), wrong)
            .await,
        Err(StorageError::BadDigest)
    ));
    let right = PutOptions {
        content_md5: Some(Md5::digest(b"data").into()),
        ..PutOptions::default()
    };
    h.storage
        .put_object(&a, "fai", "checked", text("data"), right)
        .await
        .unwrap();

    let broken: ByteStream = futures::stream::iter(vec![
        Ok(pattern(1024 * 1024, 1)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ])
    .boxed();
    assert!(matches!(
        h.storage
            .put_object(&a, "fai", "k", broken, PutOptions::default())
            .await,
        Err(StorageError::IncompleteBody(_))
    ));
    assert!(matches!(
        h.storage
            .head_object(&a, "fai", "k", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));
    let log = events(&h, "a").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].subject, "fai/checked");
    assert_no_orphans(&h).await;
}

/// Bodies larger than the upload buffer stream through in chunks and read back intact.
pub async fn large_bodies_stream(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "large").await;
    let chunks: Vec<Bytes> = (0..20).map(|i| pattern(1024 * 1024, i)).collect();
    let whole = chunks.concat();
    let info = h
        .storage
        .put_object(&a, "large", "blob", body(chunks), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(info.size, whole.len() as u64);
    assert_eq!(info.etag, md5_hex(&whole));
    let read = get(&h, "a", "large", "blob", GetOptions::default()).await;
    assert!(read == whole, "the body read back differs");
}

/// Listing: prefix, delimiter, pagination with a cursor, start-after.
pub async fn listing(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "lst").await;
    let keys = ["a/1", "a/2", "a/b/3", "b", "c/x/y", "d", "e/"];
    for key in keys {
        put(&h, "a", "lst", key, key).await;
    }
    let list = |query: ListQuery| {
        let h = &h;
        let a = a.clone();
        async move { h.storage.list_objects(&a, "lst", &query).await.unwrap() }
    };
    let names = |page: &crate::ListPage| -> Vec<String> {
        page.objects.iter().map(|o| o.key.clone()).collect()
    };
    let all = list(ListQuery::default()).await;
    assert_eq!(names(&all), keys);
    assert_eq!(all.next, None);
    assert_eq!(all.objects[0].size, 3);

    let slash = Some("/".to_owned());
    let top = list(ListQuery {
        delimiter: slash.clone(),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(names(&top), ["b", "d"]);
    assert_eq!(top.common_prefixes, ["a/", "c/", "e/"]);

    let under_a = list(ListQuery {
        prefix: "a/".to_owned(),
        delimiter: slash.clone(),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(names(&under_a), ["a/1", "a/2"]);
    assert_eq!(under_a.common_prefixes, ["a/b/"]);

    // Pages of two, keys and prefixes counted alike, resumed from the cursor.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(ListQuery {
            delimiter: slash.clone(),
            after: after.clone(),
            max_keys: 2,
            ..ListQuery::default()
        })
        .await;
        assert!(page.objects.len() + page.common_prefixes.len() <= 2);
        seen.extend(names(&page));
        seen.extend(page.common_prefixes.clone());
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["a/", "b", "c/", "d", "e/"]);

    let start_after = list(ListQuery {
        after: Some("b".to_owned()),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(names(&start_after), ["c/x/y", "d", "e/"]);

    // Many keys, paged without loss or repetition.
    for i in 0..250 {
        put(&h, "a", "lst", &format!("many/{i:04}"), "x").await;
    }
    let mut count = 0;
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = list(ListQuery {
            prefix: "many/".to_owned(),
            after: after.clone(),
            max_keys: 100,
            ..ListQuery::default()
        })
        .await;
        pages += 1;
        for (i, object) in page.objects.iter().enumerate() {
            assert_eq!(object.key, format!("many/{:04}", count + i));
        }
        count += page.objects.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!((count, pages), (250, 3));
    assert!(matches!(
        h.storage
            .list_objects(
                &a,
                "lst",
                &ListQuery {
                    max_keys: 0,
                    ..ListQuery::default()
                }
            )
            .await,
        Err(StorageError::InvalidArgument(_))
    ));
}

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
            None,
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
            .upload_part(&a, "mpu", "big.bin", &upload, 1, broken, None)
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
            })
            .collect()
    };
    let complete = |parts: Vec<CompletedPart>| {
        let h = &h;
        let a = a.clone();
        let upload = upload.clone();
        async move {
            h.storage
                .complete_multipart(
                    &a,
                    "mpu",
                    "big.bin",
                    &upload,
                    &parts,
                    &WriteConditions::default(),
                    Causation::default(),
                )
                .await
        }
    };
    assert!(matches!(
        complete(completed(&[(2, &p2.etag), (1, &p1.etag)])).await,
        Err(StorageError::InvalidPartOrder)
    ));
    assert!(matches!(
        complete(completed(&[(1, &p1.etag), (2, "0000")])).await,
        Err(StorageError::InvalidPart(_))
    ));
    assert!(matches!(
        complete(completed(&[(1, &p1.etag), (3, &p2.etag)])).await,
        Err(StorageError::InvalidPart(_))
    ));
    assert!(matches!(
        complete(completed(&[(1, &p1.etag), (2, &p1.etag)])).await,
        Err(StorageError::InvalidPart(_))
    ));
    let info = complete(completed(&[(1, &p1.etag), (2, &p2.etag)]))
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

    assert!(matches!(
        complete(completed(&[(1, &p1.etag)])).await,
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
        },
        CompletedPart {
            part_number: 2,
            etag: p2.etag,
        },
    ];
    assert!(matches!(
        h.storage
            .complete_multipart(
                &a,
                "mpu",
                "big.bin",
                &upload,
                &parts,
                &WriteConditions::default(),
                Causation::default()
            )
            .await,
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

/// Namespaces never see each other's buckets or objects.
pub async fn namespaces_are_isolated(h: Harness) {
    bucket(&h, "a", "shared-name").await;
    bucket(&h, "b", "shared-name").await;
    put(&h, "a", "shared-name", "k", "from a").await;
    assert!(matches!(
        h.storage
            .get_object(&ns("b"), "shared-name", "k", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));
    assert!(matches!(
        h.storage.head_bucket(&ns("cnd"), "shared-name").await,
        Err(StorageError::NoSuchBucket(_))
    ));
    assert!(events(&h, "b").await.is_empty());
    assert_eq!(h.storage.list_buckets(&ns("cnd")).await.unwrap().len(), 0);
}

/// A blob nothing references (a crash between writing a body and committing its record)
/// is removed once it is older than the sweep's minimum age, and referenced ones never are.
pub async fn orphan_sweep(h: Harness) {
    bucket(&h, "a", "swp").await;
    put(&h, "a", "swp", "kept", "kept").await;
    let orphan = object_store::path::Path::from("a/swp/01orphanedblob");
    h.storage
        .backend()
        .store()
        .put(&orphan, Bytes::from_static(b"lost").into())
        .await
        .unwrap();
    let young = h
        .storage
        .sweep_orphans(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        young.blobs_deleted, 0,
        "young blobs may be writes in flight"
    );
    h.clock.advance(Duration::from_secs(7200));
    let old = h
        .storage
        .sweep_orphans(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((old.blobs_deleted, old.bytes_deleted), (1, 4));
    assert_eq!(
        get(&h, "a", "swp", "kept", GetOptions::default()).await,
        b"kept"
    );
}

/// Keys: long, odd and invalid ones.
pub async fn key_rules(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "keys").await;
    for key in [
        "with space",
        "ünïcödé/ключ",
        "a//b",
        "trailing/",
        ".hidden",
        "x?y&z=1#f",
    ] {
        put(&h, "a", "keys", key, key).await;
        assert_eq!(
            get(&h, "a", "keys", key, GetOptions::default()).await,
            key.as_bytes()
        );
    }
    assert!(matches!(
        h.storage
            .put_object(
                &a,
                "keys",
                &"k".repeat(1100),
                text("v"),
                PutOptions::default()
            )
            .await,
        Err(StorageError::KeyTooLong { .. })
    ));
    assert!(matches!(
        h.storage
            .put_object(&a, "keys", "", text("v"), PutOptions::default())
            .await,
        Err(StorageError::InvalidKey(_))
    ));
    assert!(matches!(
        h.storage
            .put_object(&a, "keys", "bell\u{7}", text("v"), PutOptions::default())
            .await,
        Err(StorageError::InvalidKey(_))
    ));
}

/// Expands every check into a `#[tokio::test]` for one backend. `$make` is an async function
/// taking the `Arc<ManualClock>` and returning `(Storage, Arc<dyn ChangeLog>)`.
#[macro_export]
macro_rules! storage_conformance_tests {
    ($make:expr) => {
        $crate::storage_conformance_tests!(@tests $make;
            bucket_lifecycle, put_get_head_delete_with_events, overwrite_replaces_body,
            range_reads, conditional_reads, conditional_writes, failed_uploads_leave_nothing,
            large_bodies_stream, listing, multipart_upload, multipart_abort_and_small_parts,
            copy_objects, namespaces_are_isolated, orphan_sweep, key_rules);
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let clock = ::ferrobase_core::ManualClock::starting_now();
                let (storage, events) = ($make)(clock.clone()).await;
                $crate::conformance::$name($crate::conformance::Harness {
                    storage,
                    events,
                    clock,
                })
                .await;
            }
        )*
    };
}
