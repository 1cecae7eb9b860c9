//! `ferrobase-storage`: S3-compatible object storage for Ferrobase.
//!
//! Buckets and objects of every namespace, over any `object_store` backend (local files under
//! the data directory by default, or an S3 service), with their change events.
//!
//! How an object becomes visible: its body is first streamed into a new, uniquely named blob
//! in the backend (`{ns}/{bucket}/{blob id}`); then one [`RecordStore`] commit writes the
//! object's metadata record (size, ETag, content type, user metadata, which blobs hold the
//! body) and appends its `ferrobase.storage.object.created` event. The record is what makes
//! the object visible, so a failed or aborted upload leaves no visible object and no event,
//! and a crash between the two steps leaves at most an unreferenced blob, which
//! [`Storage::sweep_orphans`] removes. Replaced and deleted bodies are removed after the
//! commit that stops referencing them. Multipart uploads keep each part as a blob of its own;
//! completion only writes a record listing them, so no body is copied.
//!
//! - [`model`]: names, options and the public types; the records kept per object.
//! - [`backend`]: the object backends and streaming blob I/O.
//! - `objects`, `multipart`, `listing`, `sweep`: the operations of [`Storage`].
//! - `conformance` (feature `test-utils`): the suite every backend passes.

pub mod backend;
mod error;
pub mod model;
mod multipart;
mod objects;
mod sweep;

#[cfg(feature = "test-utils")]
pub mod conformance;

use std::sync::Arc;

use bytes::Bytes;
use ferrobase_core::records::{RecordCommit, RecordCondition, RecordStore};
use ferrobase_core::{Clock, Namespace};
use futures::stream::BoxStream;

pub use backend::{Backend, BackendConfig, S3BackendConfig};
pub use error::StorageError;
pub use model::{
    BucketInfo, ByteRange, CompletedPart, GetOptions, ListPage, ListQuery, ObjectInfo, PartInfo,
    PutOptions, ReadConditions, SweepReport, UploadInfo, UploadMarker, UploadPage, UploadQuery,
    WriteConditions,
};

use model::{BucketRecord, validate_bucket};

/// A request or response body: a stream of chunks, never held whole in memory.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Prefixes of the storage records in each namespace's record space.
pub(crate) mod keys {
    pub const BUCKETS: &str = "st/b/";

    pub fn bucket(bucket: &str) -> String {
        format!("{BUCKETS}{bucket}")
    }
    pub fn objects(bucket: &str) -> String {
        format!("st/o/{bucket}/")
    }
    pub fn object(bucket: &str, key: &str) -> String {
        format!("st/o/{bucket}/{key}")
    }
    pub fn uploads(bucket: &str) -> String {
        format!("st/u/{bucket}/")
    }
    pub fn upload(bucket: &str, upload_id: &str) -> String {
        format!("st/u/{bucket}/{upload_id}")
    }
    pub fn parts(upload_id: &str) -> String {
        format!("st/p/{upload_id}/")
    }
    pub fn part(upload_id: &str, part_number: u32) -> String {
        format!("st/p/{upload_id}/{part_number:05}")
    }
}

/// How many times a write retries when another writer changed the same record between its
/// read and its commit.
const WRITE_RETRIES: usize = 16;

/// The storage service: buckets and objects of every namespace.
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Backend,
    records: Arc<dyn RecordStore>,
    clock: Arc<dyn Clock>,
}

/// A body being read, with what it is.
pub struct ObjectBody {
    pub info: ObjectInfo,
    /// The half-open byte span returned, when a range was asked for.
    pub range: Option<std::ops::Range<u64>>,
    pub body: ByteStream,
}

impl std::fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBody")
            .field("info", &self.info)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl Storage {
    pub fn new(backend: Backend, records: Arc<dyn RecordStore>, clock: Arc<dyn Clock>) -> Self {
        Storage {
            backend,
            records,
            clock,
        }
    }

    /// The backend the bodies live in.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub async fn create_bucket(&self, ns: &Namespace, bucket: &str) -> Result<(), StorageError> {
        validate_bucket(bucket)?;
        let record = BucketRecord {
            created_ms: self.now_ms(),
        };
        let key = keys::bucket(bucket);
        let commit = RecordCommit {
            conditions: vec![(key.clone(), RecordCondition::Absent)],
            writes: vec![(key, Some(encode(&record)?))],
            events: Vec::new(),
        };
        match self.records.commit(ns, commit).await {
            Ok(_) => Ok(()),
            Err(ferrobase_core::records::RecordError::ConditionFailed { .. }) => {
                Err(StorageError::BucketAlreadyExists(bucket.to_owned()))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub async fn head_bucket(
        &self,
        ns: &Namespace,
        bucket: &str,
    ) -> Result<BucketInfo, StorageError> {
        validate_bucket(bucket)?;
        let record = self
            .records
            .get(ns, &keys::bucket(bucket))
            .await?
            .ok_or_else(|| StorageError::NoSuchBucket(bucket.to_owned()))?;
        let record: BucketRecord = decode(&record.value)?;
        Ok(BucketInfo {
            name: bucket.to_owned(),
            created_ms: record.created_ms,
        })
    }

    /// Every bucket of the namespace, by name.
    pub async fn list_buckets(&self, ns: &Namespace) -> Result<Vec<BucketInfo>, StorageError> {
        let mut buckets = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .records
                .scan(ns, keys::BUCKETS, after.as_deref(), 1000)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(buckets);
            };
            after = Some(last.clone());
            for (key, record) in page {
                let record: BucketRecord = decode(&record.value)?;
                buckets.push(BucketInfo {
                    name: key.trim_start_matches(keys::BUCKETS).to_owned(),
                    created_ms: record.created_ms,
                });
            }
        }
    }

    /// Deletes an empty bucket (no objects, no multipart uploads in progress).
    pub async fn delete_bucket(&self, ns: &Namespace, bucket: &str) -> Result<(), StorageError> {
        self.head_bucket(ns, bucket).await?;
        let objects = self
            .records
            .scan(ns, &keys::objects(bucket), None, 1)
            .await?;
        let uploads = self
            .records
            .scan(ns, &keys::uploads(bucket), None, 1)
            .await?;
        if !objects.is_empty() || !uploads.is_empty() {
            return Err(StorageError::BucketNotEmpty(bucket.to_owned()));
        }
        let commit = RecordCommit {
            conditions: vec![(keys::bucket(bucket), RecordCondition::Exists)],
            writes: vec![(keys::bucket(bucket), None)],
            events: Vec::new(),
        };
        match self.records.commit(ns, commit).await {
            Ok(_) => Ok(()),
            Err(ferrobase_core::records::RecordError::ConditionFailed { .. }) => {
                Err(StorageError::NoSuchBucket(bucket.to_owned()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// NoSuchBucket unless the bucket exists.
    async fn require_bucket(&self, ns: &Namespace, bucket: &str) -> Result<(), StorageError> {
        self.head_bucket(ns, bucket).await.map(|_| ())
    }
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Bytes, StorageError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|error| StorageError::Records(error.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|error| StorageError::Records(error.to_string()))
}
