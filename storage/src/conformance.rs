//! The conformance suite every storage backend must pass (feature `test-utils`).
//!
//! Each check is a plain async function over a [`Harness`]; [`storage_conformance_tests!`](crate::storage_conformance_tests)
//! expands them into one `#[tokio::test]` per check for a given constructor, so that local
//! files and S3 are held to exactly the same behaviour.
//!
//! The object and bucket checks live here; condition, listing, multipart, copy, bucket race,
//! idempotency, ETag, checksum and kept-header checks in the submodules of the same names.

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
    BodyChecks, ByteRange, ByteStream, CompletedPart, GetOptions, ListQuery, PutOptions,
    ReadConditions, Storage, StorageError, UploadMarker, UploadPage, UploadQuery, WriteConditions,
};

mod buckets;
mod checksums;
mod conditions;
mod copy;
mod cors;
mod etags;
mod headers;
mod idempotency;
mod listing;
mod multipart;

pub use buckets::{bucket_delete_interrupted, bucket_delete_races_a_put};
pub use checksums::checksums_are_checked_and_kept;
pub use conditions::{conditional_reads, conditional_writes};
pub use copy::{copy_objects, part_copies};
pub use cors::bucket_cors;
pub use etags::etags_follow_the_policy;
pub use headers::headers_are_kept;
pub use idempotency::function_writes_apply_once;
pub use listing::listing;
pub use multipart::{
    abandoned_uploads_are_aborted_by_the_sweep, multipart_abort_and_small_parts, multipart_upload,
    multipart_upload_listing,
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

/// The ETag of a body too large for an MD5 ETag.
fn blake3_etag(data: &[u8]) -> String {
    format!("{}-1", hex::encode(&blake3::hash(data).as_bytes()[..16]))
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

/// Completes an upload in namespace `a`, without conditions.
async fn complete(
    storage: &Storage,
    bucket: &str,
    key: &str,
    upload: &str,
    parts: &[CompletedPart],
) -> Result<crate::ObjectInfo, StorageError> {
    storage
        .complete_multipart(
            &ns("a"),
            bucket,
            key,
            upload,
            parts,
            &WriteConditions::default(),
            Causation::default(),
        )
        .await
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
    let kept = h
        .storage
        .create_multipart(&a, "photos", "big", PutOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        h.storage.delete_bucket(&a, "photos").await,
        Err(StorageError::BucketNotEmpty(_))
    ));
    assert_eq!(
        h.storage
            .list_uploads(&a, "photos", "")
            .await
            .unwrap()
            .len(),
        1,
        "a bucket kept for its objects keeps its uploads"
    );
    h.storage
        .abort_multipart(&a, "photos", "big", &kept)
        .await
        .unwrap();
    // Uploads in progress alone do not keep a bucket: they are aborted with it.
    let upload = h
        .storage
        .create_multipart(&a, "docs", "big", PutOptions::default())
        .await
        .unwrap();
    h.storage
        .upload_part(
            &a,
            "docs",
            "big",
            &upload,
            1,
            text("part"),
            BodyChecks::default(),
        )
        .await
        .unwrap();
    h.storage.delete_bucket(&a, "docs").await.unwrap();
    assert!(matches!(
        h.storage.abort_multipart(&a, "docs", "big", &upload).await,
        Err(StorageError::NoSuchUpload(_))
    ));
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

/// A body that does not match its Content-MD5, or that fails midway, stores nothing, logs
/// nothing and leaves no blob behind.
pub async fn failed_uploads_leave_nothing(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "fai").await;
    let wrong = PutOptions {
        checks: BodyChecks {
            content_md5: Some(Md5::digest(b"something else").into()),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    };
    assert!(matches!(
        h.storage
            .put_object(&a, "fai", "k", text("data"), wrong)
            .await,
        Err(StorageError::BadDigest)
    ));
    let right = PutOptions {
        checks: BodyChecks {
            content_md5: Some(Md5::digest(b"data").into()),
            ..BodyChecks::default()
        },
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
    // Larger bodies are being written while they arrive: cut off late, or with a wrong
    // digest, they leave nothing either.
    let cut_late: ByteStream =
        futures::stream::iter((0..3).map(|seed| Ok(pattern(1024 * 1024, seed))).chain(
            std::iter::once(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "client went away",
            ))),
        ))
        .boxed();
    assert!(matches!(
        h.storage
            .put_object(&a, "fai", "k", cut_late, PutOptions::default())
            .await,
        Err(StorageError::IncompleteBody(_))
    ));
    let large = (0..3)
        .map(|seed| pattern(1024 * 1024, seed))
        .collect::<Vec<_>>();
    let wrong_large = PutOptions {
        checks: BodyChecks {
            content_md5: Some(Md5::digest(b"something else").into()),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    };
    assert!(matches!(
        h.storage
            .put_object(&a, "fai", "k", body(large), wrong_large)
            .await,
        Err(StorageError::BadDigest)
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

/// Bodies larger than the upload buffer stream through in chunks and read back intact; over
/// the default policy's 8 MiB, their ETag is BLAKE3-based.
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
    assert_eq!(info.etag, blake3_etag(&whole));
    let read = get(&h, "a", "large", "blob", GetOptions::default()).await;
    assert!(read == whole, "the body read back differs");
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
            copy_objects, namespaces_are_isolated, orphan_sweep, key_rules,
            bucket_delete_races_a_put, bucket_delete_interrupted, multipart_upload_listing,
            function_writes_apply_once, etags_follow_the_policy,
            checksums_are_checked_and_kept, abandoned_uploads_are_aborted_by_the_sweep,
            part_copies, headers_are_kept, bucket_cors);
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
