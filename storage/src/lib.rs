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
//! - [`cors`]: the CORS rules a bucket keeps, and which one a request matches.
//! - [`digest`]: what ETags are made of, and hashing bodies as they stream.
//! - `objects` (with listing), `multipart`, `sweep`: the operations of [`Storage`].
//! - `idempotency`: puts and deletes a function makes while handling an event, applied once
//!   however often the handler runs.
//! - `conformance` (feature `test-utils`): the suite every backend passes.

pub mod backend;
pub mod cors;
pub mod digest;
mod error;
mod idempotency;
pub mod model;
mod multipart;
mod objects;
mod sweep;

#[cfg(feature = "test-utils")]
pub mod conformance;

use std::sync::Arc;

use bytes::Bytes;
use ferrobase_core::records::{RecordCommit, RecordCondition, RecordError, RecordStore};
use ferrobase_core::{Clock, Namespace};
use futures::stream::BoxStream;

pub use backend::{Backend, BackendConfig, S3BackendConfig};
pub use cors::{CorsRule, matching_rule};
pub use digest::{Checksum, ChecksumAlgorithm, EtagPolicy, check_body};
pub use error::StorageError;
pub use model::{
    BodyChecks, BucketInfo, ByteRange, ChecksumCheck, CompletedPart, ExpectedChecksum, GetOptions,
    ListPage, ListQuery, ObjectHeaders, ObjectInfo, PartInfo, PartSource, PutOptions,
    ReadConditions, SweepReport, UploadInfo, UploadMarker, UploadPage, UploadQuery,
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

/// How long a multipart upload may stay incomplete by default: abandoned uploads would
/// otherwise hold their parts' bytes forever.
pub const DEFAULT_UPLOAD_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// How many times a write retries when another writer changed the same record between its
/// read and its commit.
const WRITE_RETRIES: usize = 16;

/// How long a bucket's deleting mark holds off writes. A delete checks emptiness within
/// milliseconds; an older mark was left by a crash and is cleared by the next write.
const STALE_DELETE_MARK_MS: u64 = 60_000;

/// The storage service: buckets and objects of every namespace.
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Backend,
    records: Arc<dyn RecordStore>,
    clock: Arc<dyn Clock>,
    etags: EtagPolicy,
    /// Multipart uploads older than this are aborted by the sweep; `None`: never.
    upload_lifetime: Option<std::time::Duration>,
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
            etags: EtagPolicy::default(),
            upload_lifetime: Some(DEFAULT_UPLOAD_LIFETIME),
        }
    }

    /// How long a multipart upload may stay incomplete before the sweep aborts it (default
    /// 7 days, as Cloudflare R2 does; `None`: never, as S3 without a lifecycle rule).
    pub fn with_upload_lifetime(mut self, lifetime: Option<std::time::Duration>) -> Self {
        self.upload_lifetime = lifetime;
        self
    }

    /// Which bodies get an MD5 ETag (default: up to 8 MiB, or with `Content-MD5`).
    pub fn with_etag_policy(mut self, etags: EtagPolicy) -> Self {
        self.etags = etags;
        self
    }

    /// The metadata store (tests wrap it to force interleavings).
    pub fn records(&self) -> &Arc<dyn RecordStore> {
        &self.records
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
            deleting_since_ms: None,
            cors: None,
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

    /// Deletes a bucket without objects, aborting the multipart uploads still in progress in
    /// it (as S3 does for general-purpose buckets).
    ///
    /// Checking that the bucket is empty and removing it are two steps, so the bucket is
    /// marked as being deleted first and removed only if its record is still the marked
    /// version. An object or upload commit pins an unmarked version of the record (see
    /// `Storage::bucket_condition`): it either committed before the mark, and the check
    /// sees it, or it fails. Without the mark, a PUT committing between the check and the
    /// removal would leave an object in no bucket, which a new bucket of the same name would
    /// show.
    pub async fn delete_bucket(&self, ns: &Namespace, bucket: &str) -> Result<(), StorageError> {
        validate_bucket(bucket)?;
        let key = keys::bucket(bucket);
        for _ in 0..WRITE_RETRIES {
            let Some(current) = self.records.get(ns, &key).await? else {
                return Err(StorageError::NoSuchBucket(bucket.to_owned()));
            };
            let mut record: BucketRecord = decode(&current.value)?;
            record.deleting_since_ms = Some(self.now_ms());
            let marked = match self
                .write_bucket(ns, &key, current.version, Some(encode(&record)?))
                .await
            {
                Ok(version) => version,
                Err(RecordError::ConditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            let objects = self
                .records
                .scan(ns, &keys::objects(bucket), None, 1)
                .await?;
            if objects.is_empty() {
                // No upload can start while the mark holds, nor complete into an object.
                for upload in self.list_uploads(ns, bucket, "").await? {
                    match self
                        .abort_multipart(ns, bucket, &upload.key, &upload.upload_id)
                        .await
                    {
                        Ok(()) | Err(StorageError::NoSuchUpload(_)) => {}
                        Err(error) => return Err(error),
                    }
                }
            }
            let uploads = self
                .records
                .scan(ns, &keys::uploads(bucket), None, 1)
                .await?;
            if !objects.is_empty() || !uploads.is_empty() {
                record.deleting_since_ms = None;
                match self
                    .write_bucket(ns, &key, marked, Some(encode(&record)?))
                    .await
                {
                    // A condition failure: another delete marked it since, and will finish.
                    Ok(_) | Err(RecordError::ConditionFailed { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
                return Err(StorageError::BucketNotEmpty(bucket.to_owned()));
            }
            match self.write_bucket(ns, &key, marked, None).await {
                Ok(_) => return Ok(()),
                Err(RecordError::ConditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::BucketBusy(bucket.to_owned()))
    }

    /// Writes (or with `None` removes) the bucket record if it is still at `version`;
    /// returns the new version.
    async fn write_bucket(
        &self,
        ns: &Namespace,
        key: &str,
        version: u64,
        value: Option<Bytes>,
    ) -> Result<u64, RecordError> {
        let commit = RecordCommit {
            conditions: vec![(key.to_owned(), RecordCondition::Version(version))],
            writes: vec![(key.to_owned(), value)],
            events: Vec::new(),
        };
        let outcome = self.records.commit(ns, commit).await?;
        Ok(outcome.versions.first().copied().unwrap_or_default())
    }

    /// The commit condition that pins the bucket for a write adding an object or an upload:
    /// NoSuchBucket when it is gone, BucketBusy while a delete is checking that it is empty.
    pub(crate) async fn bucket_condition(
        &self,
        ns: &Namespace,
        bucket: &str,
    ) -> Result<(String, RecordCondition), StorageError> {
        let key = keys::bucket(bucket);
        for _ in 0..WRITE_RETRIES {
            let Some(current) = self.records.get(ns, &key).await? else {
                return Err(StorageError::NoSuchBucket(bucket.to_owned()));
            };
            let record: BucketRecord = decode(&current.value)?;
            let Some(since) = record.deleting_since_ms else {
                return Ok((key, RecordCondition::Version(current.version)));
            };
            if self.now_ms().saturating_sub(since) < STALE_DELETE_MARK_MS {
                return Err(StorageError::BucketBusy(bucket.to_owned()));
            }
            // A mark this old was left by a delete that crashed: clear it. Were that delete
            // still running, the new version makes its removal fail.
            let cleared = BucketRecord {
                deleting_since_ms: None,
                ..record
            };
            match self
                .write_bucket(ns, &key, current.version, Some(encode(&cleared)?))
                .await
            {
                Ok(_) | Err(RecordError::ConditionFailed { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::BucketBusy(bucket.to_owned()))
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
