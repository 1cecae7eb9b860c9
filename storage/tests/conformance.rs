//! Runs the storage conformance suite against local files and against the `AmazonS3` backend
//! on a real S3 server process (moto) on loopback.

mod moto;

use std::sync::Arc;

use ferrobase_core::records::RecordStore;
use ferrobase_core::{ChangeLog, ManualClock};
use ferrobase_kv::{KvEngine, KvLimits, KvRecordStore, MemoryEngine};
use ferrobase_storage::{Backend, BackendConfig, Storage};

/// Metadata and events in an in-memory KV engine: the record store is not under test here.
fn records(clock: Arc<ManualClock>) -> (Arc<dyn RecordStore>, Arc<dyn ChangeLog>) {
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new(clock, KvLimits::default()));
    (Arc::new(KvRecordStore::new(engine.clone())), engine)
}

mod local {
    use super::*;

    async fn make(clock: Arc<ManualClock>) -> (Storage, Arc<dyn ChangeLog>) {
        // The directory must outlive the storage; it lives under target/ and goes with
        // `cargo clean`.
        let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir")
            .keep();
        let backend = Backend::open(&BackendConfig::Local { root }).expect("local backend");
        let (records, events) = records(clock.clone());
        (Storage::new(backend, records, clock), events)
    }

    ferrobase_storage::storage_conformance_tests!(make);

    /// A multipart write cut off by a crash leaves a staging file (`{blob}#{n}`) that
    /// listings do not show; the sweep removes it once old enough.
    #[tokio::test]
    async fn sweep_removes_staging_files_left_by_a_crash() {
        let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let clock = ManualClock::starting_now();
        let backend = Backend::open(&BackendConfig::Local {
            root: root.path().to_owned(),
        })
        .unwrap();
        let (records, _) = records(clock.clone());
        let storage = Storage::new(backend, records, clock);
        let ns = ferrobase_core::Namespace::parse("a").unwrap();
        storage.create_bucket(&ns, "crash").await.unwrap();
        let dir = root.path().join("a").join("crash");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("01blob#1"), b"partial").unwrap();
        let kept = storage
            .sweep_orphans(std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            kept.blobs_deleted, 0,
            "a young staging file may be a write in flight"
        );
        let swept = storage
            .sweep_orphans(std::time::Duration::ZERO)
            .await
            .unwrap();
        assert_eq!((swept.blobs_deleted, swept.bytes_deleted), (1, 7));
        assert!(!dir.join("01blob#1").exists());
    }
}

mod s3 {
    use super::*;

    async fn make(clock: Arc<ManualClock>) -> (Storage, Arc<dyn ChangeLog>) {
        let config = moto::shared().fresh_bucket().await;
        let backend = Backend::open(&BackendConfig::S3(config)).expect("S3 backend");
        let (records, events) = records(clock.clone());
        (Storage::new(backend, records, clock), events)
    }

    ferrobase_storage::storage_conformance_tests!(make);
}
