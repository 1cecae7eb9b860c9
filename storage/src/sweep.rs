//! Removing what crashes and interrupted work leave behind: blobs no record references, part
//! records of uploads that no longer exist, and multipart uploads abandoned for longer than
//! the storage's upload lifetime.

use std::collections::HashSet;
use std::time::Duration;

use ferrobase_core::Namespace;
use ferrobase_core::records::{Record, RecordCommit, RecordCondition, RecordError};
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
        // Uploads, then parts, then objects: a completion committed between two scans is
        // seen by one of them, so no blob in use is missed. The parts of uploads aborted
        // just now are dead parts here, and their blobs orphans.
        let (uploads, uploads_aborted) = self.live_uploads(ns).await?;
        let mut referenced = HashSet::new();
        let mut dead_parts = Vec::new();
        for (key, record) in self.scan_all(ns, "st/p/").await? {
            let upload = key.split('/').nth(2).unwrap_or_default();
            if uploads.contains(upload) {
                let part: PartRecord = decode(&record.value)?;
                referenced.insert(part.blob);
            } else {
                dead_parts.push(key);
            }
        }
        for (_, record) in self.scan_all(ns, "st/o/").await? {
            let object: ObjectRecord = decode(&record.value)?;
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

    /// The ids of the namespace's live uploads, after aborting those initiated longer ago
    /// than the upload lifetime: each record is removed only if unchanged since read, so
    /// that a completion racing with the sweep wins. Returns the ids and the count aborted.
    async fn live_uploads(&self, ns: &Namespace) -> Result<(HashSet<String>, u64), StorageError> {
        let cutoff_ms = self
            .upload_lifetime
            .map(|lifetime| self.now_ms().saturating_sub(lifetime.as_millis() as u64));
        let mut live = HashSet::new();
        let mut aborted = 0;
        for (key, record) in self.scan_all(ns, "st/u/").await? {
            let id = key.rsplit('/').next().unwrap_or_default().to_owned();
            let upload: UploadRecord = decode(&record.value)?;
            if cutoff_ms.is_none_or(|cutoff| upload.initiated_ms >= cutoff) {
                live.insert(id);
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
                // Completed or aborted meanwhile: its parts are no longer this upload's.
                Err(RecordError::ConditionFailed { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok((live, aborted))
    }

    pub(crate) async fn scan_all(
        &self,
        ns: &Namespace,
        prefix: &str,
    ) -> Result<Vec<(String, Record)>, StorageError> {
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
            all.extend(page);
        }
    }
}
