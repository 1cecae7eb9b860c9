//! Removing what crashes and interrupted work leave behind: blobs no record references, part
//! records of uploads that no longer exist, and multipart uploads abandoned for longer than
//! the storage's upload lifetime.

use std::collections::HashSet;
use std::time::Duration;

use ferrobase_core::Namespace;
use ferrobase_core::records::{RecordCommit, RecordCondition, RecordError};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::model::{ObjectRecord, PartRecord, UploadRecord};
use crate::{Storage, StorageError, SweepReport, decode};

impl Storage {
    /// Deletes blobs that no object or live upload references and that are older than
    /// `min_age` (younger ones may belong to writes in flight), and part records whose upload
    /// is gone. Safe to run while the service is in use.
    pub async fn sweep_orphans(&self, min_age: Duration) -> Result<SweepReport, StorageError> {
        let mut report = SweepReport::default();
        let top = self.backend.store.list_with_delimiter(None).await?;
        for dir in top.common_prefixes {
            let Some(name) = dir.parts().next() else {
                continue;
            };
            let Ok(ns) = Namespace::parse_stored(name.as_ref()) else {
                continue;
            };
            let swept = self.sweep_namespace(&ns, &dir, min_age).await?;
            report.blobs_deleted += swept.blobs_deleted;
            report.bytes_deleted += swept.bytes_deleted;
            report.uploads_aborted += swept.uploads_aborted;
        }
        Ok(report)
    }

    async fn sweep_namespace(
        &self,
        ns: &Namespace,
        dir: &Path,
        min_age: Duration,
    ) -> Result<SweepReport, StorageError> {
        let uploads_aborted = self.abort_stale_uploads(ns).await?;
        // Uploads, then parts, then objects: a completion committed between two scans is
        // seen by one of them, so no blob in use is missed. The parts of uploads aborted
        // just now are dead parts here, and their blobs orphans.
        let uploads: HashSet<String> = self
            .scan_all(ns, "st/u/")
            .await?
            .into_iter()
            .filter_map(|(key, _)| key.rsplit('/').next().map(str::to_owned))
            .collect();
        let mut referenced = HashSet::new();
        let mut dead_parts = Vec::new();
        for (key, value) in self.scan_all(ns, "st/p/").await? {
            let upload = key.split('/').nth(2).unwrap_or_default();
            if uploads.contains(upload) {
                let part: PartRecord = decode(&value)?;
                referenced.insert(part.blob);
            } else {
                dead_parts.push(key);
            }
        }
        for (_, value) in self.scan_all(ns, "st/o/").await? {
            let object: ObjectRecord = decode(&value)?;
            referenced.extend(object.blobs.into_iter().map(|blob| blob.id));
        }
        for batch in dead_parts.chunks(100) {
            let commit = RecordCommit {
                writes: batch.iter().map(|key| (key.clone(), None)).collect(),
                ..RecordCommit::default()
            };
            self.records.commit(ns, commit).await?;
        }

        let now_ms = self.now_ms() as i64;
        let mut report = SweepReport {
            uploads_aborted,
            ..SweepReport::default()
        };
        let blobs: Vec<_> = self.backend.store.list(Some(dir)).try_collect().await?;
        for meta in blobs {
            let Some(id) = meta.location.filename() else {
                continue;
            };
            let age_ms = now_ms - meta.last_modified.timestamp_millis();
            if referenced.contains(id) || age_ms < min_age.as_millis() as i64 {
                continue;
            }
            match self.backend.store.delete(&meta.location).await {
                Ok(()) => {
                    report.blobs_deleted += 1;
                    report.bytes_deleted += meta.size;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        let marks = self.expire_marks(ns).await?;
        if marks > 0 {
            tracing::debug!(%ns, marks, "forgot expired idempotency marks");
        }
        // Staging files age by the wall clock of the file system, not the injected clock.
        let (staged, staged_bytes) = self.backend.sweep_staging(ns.as_str(), min_age).await?;
        report.blobs_deleted += staged;
        report.bytes_deleted += staged_bytes;
        if report.blobs_deleted > 0 {
            tracing::info!(%ns, blobs = report.blobs_deleted, bytes = report.bytes_deleted, "removed orphaned blobs");
        }
        Ok(report)
    }

    /// Aborts the uploads of `ns` initiated longer ago than the upload lifetime: removes
    /// their records, each only if unchanged since read, so that a completion racing with
    /// the sweep wins. Their parts go with the rest of the sweep.
    async fn abort_stale_uploads(&self, ns: &Namespace) -> Result<u64, StorageError> {
        let Some(lifetime) = self.upload_lifetime else {
            return Ok(0);
        };
        let cutoff_ms = self.now_ms().saturating_sub(lifetime.as_millis() as u64);
        let mut aborted = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .records
                .scan(ns, "st/u/", after.as_deref(), 1000)
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (key, record) in page {
                let upload: UploadRecord = decode(&record.value)?;
                if upload.initiated_ms >= cutoff_ms {
                    continue;
                }
                let commit = RecordCommit {
                    conditions: vec![(key.clone(), RecordCondition::Version(record.version))],
                    writes: vec![(key.clone(), None)],
                    events: Vec::new(),
                };
                match self.records.commit(ns, commit).await {
                    Ok(_) => {
                        aborted += 1;
                        tracing::info!(%ns, upload = %key, key = %upload.key, "aborted an abandoned multipart upload");
                    }
                    // Completed or aborted meanwhile: nothing left to do.
                    Err(RecordError::ConditionFailed { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(aborted)
    }

    pub(crate) async fn scan_all(
        &self,
        ns: &Namespace,
        prefix: &str,
    ) -> Result<Vec<(String, bytes::Bytes)>, StorageError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .records
                .scan(ns, prefix, after.as_deref(), 1000)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(all);
            };
            after = Some(last.clone());
            all.extend(page.into_iter().map(|(key, record)| (key, record.value)));
        }
    }
}
