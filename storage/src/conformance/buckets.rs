//! Bucket delete races: a delete checks that the bucket is empty, then removes it; writes
//! that land in between must not leave objects in no bucket.
//!
//! The interleavings are forced, not hoped for: the delete runs over a record store that
//! runs the competing write (or a failure) at the moment of the emptiness check.

use std::sync::Mutex;

use async_trait::async_trait;
use ferrobase_core::records::{Record, RecordCommit, RecordError, RecordOutcome, RecordStore};

use super::*;
use crate::{ObjectInfo, keys};

/// What to do at the delete's emptiness check, once.
#[derive(Debug)]
enum AtCheck {
    /// PUT `key` through this storage (which does not go through the hook) and keep the result.
    Put { storage: Storage, key: String },
    /// Fail the check as a broken metadata store would, as if the delete crashed there.
    Fail,
}

/// A record store that acts at the first scan of a bucket's objects.
#[derive(Debug)]
struct Interleave {
    inner: Arc<dyn RecordStore>,
    objects_prefix: String,
    at_check: tokio::sync::Mutex<Option<AtCheck>>,
    put: Mutex<Option<Result<ObjectInfo, StorageError>>>,
}

#[async_trait]
impl RecordStore for Interleave {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Record>, RecordError> {
        self.inner.get(ns, key).await
    }

    async fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, RecordError> {
        let found = self.inner.scan(ns, prefix, after, limit).await?;
        if prefix == self.objects_prefix {
            match self.at_check.lock().await.take() {
                Some(AtCheck::Put { storage, key }) => {
                    let bucket = prefix.trim_start_matches("st/o/").trim_end_matches('/');
                    let put = storage
                        .put_object(ns, bucket, &key, text("late"), PutOptions::default())
                        .await;
                    *self.put.lock().expect("lock") = Some(put);
                }
                Some(AtCheck::Fail) => {
                    return Err(RecordError::Storage("the disk went away".to_owned()));
                }
                None => {}
            }
        }
        Ok(found)
    }

    async fn commit(
        &self,
        ns: &Namespace,
        commit: RecordCommit,
    ) -> Result<RecordOutcome, RecordError> {
        self.inner.commit(ns, commit).await
    }
}

/// `h.storage` with its record store wrapped so that `at_check` happens during the first
/// emptiness check of `bucket`.
fn interleaved(h: &Harness, bucket: &str, at_check: AtCheck) -> (Storage, Arc<Interleave>) {
    let records = Arc::new(Interleave {
        inner: h.storage.records().clone(),
        objects_prefix: keys::objects(bucket),
        at_check: tokio::sync::Mutex::new(Some(at_check)),
        put: Mutex::new(None),
    });
    let storage = Storage::new(
        h.storage.backend().clone(),
        records.clone(),
        h.clock.clone(),
    );
    (storage, records)
}

/// A PUT that commits while a delete checks that the bucket is empty either keeps the
/// bucket or fails: never both succeed, leaving an object that a new bucket of the same
/// name would show.
pub async fn bucket_delete_races_a_put(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "doomed").await;
    let (racing, hook) = interleaved(
        &h,
        "doomed",
        AtCheck::Put {
            storage: h.storage.clone(),
            key: "late.txt".to_owned(),
        },
    );
    let deleted = racing.delete_bucket(&a, "doomed").await;
    let late_put = hook.put.lock().expect("lock").take().expect("the PUT ran");
    match (&deleted, &late_put) {
        (Ok(()), Err(StorageError::BucketBusy(_))) => {}
        other => panic!("expected the delete to win and the PUT to be refused, got {other:?}"),
    }
    bucket(&h, "a", "doomed").await;
    let listed = h
        .storage
        .list_objects(&a, "doomed", &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.objects, Vec::new(), "the new bucket is empty");
    assert!(
        events(&h, "a").await.is_empty(),
        "the refused PUT emitted nothing"
    );
    assert_no_orphans(&h).await;

    // A delete that finds the bucket not empty lets writes in again.
    put(&h, "a", "doomed", "kept.txt", "v").await;
    assert!(matches!(
        h.storage.delete_bucket(&a, "doomed").await,
        Err(StorageError::BucketNotEmpty(_))
    ));
    put(&h, "a", "doomed", "also.txt", "v").await;
}

/// A delete that dies during its check holds writes off only for a while: a later write
/// clears the mark it left, and a later delete works.
pub async fn bucket_delete_interrupted(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "halfway").await;
    let (racing, _) = interleaved(&h, "halfway", AtCheck::Fail);
    assert!(matches!(
        racing.delete_bucket(&a, "halfway").await,
        Err(StorageError::Records(_))
    ));
    h.storage.head_bucket(&a, "halfway").await.unwrap();
    let refused = h
        .storage
        .put_object(&a, "halfway", "k", text("v"), PutOptions::default())
        .await;
    assert!(
        matches!(refused, Err(StorageError::BucketBusy(_))),
        "{refused:?}"
    );
    h.clock.advance(Duration::from_secs(120));
    put(&h, "a", "halfway", "k", "v").await;
    h.storage
        .delete_object(&a, "halfway", "k", Causation::default())
        .await
        .unwrap();
    h.storage.delete_bucket(&a, "halfway").await.unwrap();
    assert_no_orphans(&h).await;
}
