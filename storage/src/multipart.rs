//! Multipart uploads: create, upload part, complete, abort, list parts, list uploads.
//!
//! Each part is a blob of its own with a part record (`st/p/{upload}/{part}`) pointing at it;
//! a retried part replaces the record and its old blob. Completion commits, in one step, the
//! object record listing the chosen parts' blobs, the removal of the upload record, and the
//! created event; part records are removed afterwards (records of an upload that no longer
//! exists are garbage for [`crate::Storage::sweep_orphans`]).

use ferrobase_core::Namespace;
use ferrobase_core::event::Causation;
use ferrobase_core::records::{RecordCommit, RecordCondition, RecordError};
use md5::{Digest, Md5};

use crate::backend::blob_path;
use crate::digest::composite_checksum;
use crate::model::{
    Blob, CompletedPart, Completion, MAX_LIST_KEYS, MAX_PART_NUMBER, MIN_PART_BYTES, ObjectRecord,
    PartInfo, PartRecord, UploadInfo, UploadMarker, UploadPage, UploadQuery, UploadRecord,
    WriteConditions, bare_etag, validate_bucket,
};
use crate::objects::{new_blob_id, object_record_key};
use crate::{
    BodyChecks, ByteRange, ByteStream, ChecksumCheck, ExpectedChecksum, GetOptions, ObjectInfo,
    PartSource, PutOptions, Storage, StorageError, WRITE_RETRIES, decode, encode, keys,
};

/// Record writes per commit when removing part records (the record store bounds commits).
const RECORD_BATCH: usize = 100;

impl Storage {
    /// Starts a multipart upload and returns its id.
    pub async fn create_multipart(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        options: PutOptions,
    ) -> Result<String, StorageError> {
        object_record_key(bucket, key)?;
        let upload_id = new_blob_id();
        let record = UploadRecord {
            key: key.to_owned(),
            content_type: options
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            metadata: options.metadata,
            headers: options.headers,
            initiated_ms: self.now_ms(),
            checksum_algorithm: options.checks.checksum.map(|check| check.algorithm),
        };
        let value = encode(&record)?;
        for _ in 0..WRITE_RETRIES {
            let commit = RecordCommit {
                conditions: vec![self.bucket_condition(ns, bucket).await?],
                writes: vec![(keys::upload(bucket, &upload_id), Some(value.clone()))],
                events: Vec::new(),
            };
            match self.records.commit(ns, commit).await {
                Ok(_) => return Ok(upload_id),
                // The bucket changed (a delete began, or gave up): look again.
                Err(RecordError::ConditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::BucketBusy(bucket.to_owned()))
    }

    async fn read_upload(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(UploadRecord, u64), StorageError> {
        validate_bucket(bucket)?;
        let no_such = || StorageError::NoSuchUpload(upload_id.to_owned());
        if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(no_such());
        }
        let record = self
            .records
            .get(ns, &keys::upload(bucket, upload_id))
            .await?
            .ok_or_else(no_such)?;
        let upload: UploadRecord = decode(&record.value)?;
        if upload.key != key {
            return Err(no_such());
        }
        Ok((upload, record.version))
    }

    /// Stores one part (1 to 10,000); uploading a part number again replaces it.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        checks: BodyChecks,
    ) -> Result<PartInfo, StorageError> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(StorageError::InvalidArgument(format!(
                "part numbers run from 1 to {MAX_PART_NUMBER}"
            )));
        }
        let (upload, _) = self.read_upload(ns, bucket, key, upload_id).await?;
        let mut checks = checks;
        // An upload created with a checksum algorithm gets that checksum for every part.
        if let Some(algorithm) = upload.checksum_algorithm {
            match &checks.checksum {
                None => {
                    checks.checksum = Some(ChecksumCheck {
                        algorithm,
                        expected: ExpectedChecksum::Unknown,
                    })
                }
                Some(check) if check.algorithm != algorithm => {
                    return Err(StorageError::InvalidArgument(format!(
                        "the upload was created for {} checksums, not {}",
                        algorithm.name(),
                        check.algorithm.name()
                    )));
                }
                Some(_) => {}
            }
        }
        let blob = new_blob_id();
        let path = blob_path(ns, bucket, &blob);
        let written = self.store_body(&path, body, checks).await?;
        let part = PartRecord {
            etag: written.digest.etag(),
            size: written.size,
            blob,
            last_modified_ms: self.now_ms(),
            checksum: written.checksum,
        };
        let part_key = keys::part(upload_id, part_number);
        let value = encode(&part)?;
        for _ in 0..WRITE_RETRIES {
            let previous = self.records.get(ns, &part_key).await?;
            let condition = match &previous {
                Some(record) => RecordCondition::Version(record.version),
                None => RecordCondition::Absent,
            };
            let commit = RecordCommit {
                conditions: vec![
                    (keys::upload(bucket, upload_id), RecordCondition::Exists),
                    (part_key.clone(), condition),
                ],
                writes: vec![(part_key.clone(), Some(value.clone()))],
                events: Vec::new(),
            };
            match self.records.commit(ns, commit).await {
                Ok(_) => {
                    if let Some(previous) = previous {
                        let old: PartRecord = decode(&previous.value)?;
                        self.backend
                            .delete_blobs(vec![blob_path(ns, bucket, &old.blob)])
                            .await;
                    }
                    return Ok(PartInfo {
                        part_number,
                        etag: part.etag,
                        size: part.size,
                        last_modified_ms: part.last_modified_ms,
                        checksum: part.checksum,
                    });
                }
                Err(RecordError::ConditionFailed { key: failed, .. }) if failed == part_key => {
                    continue;
                }
                Err(error) => {
                    self.backend.delete_blobs(vec![path]).await;
                    return Err(match error {
                        RecordError::ConditionFailed { .. } => {
                            StorageError::NoSuchUpload(upload_id.to_owned())
                        }
                        other => other.into(),
                    });
                }
            }
        }
        self.backend.delete_blobs(vec![path]).await;
        Err(StorageError::PreconditionFailed(
            "too many concurrent uploads of this part".to_owned(),
        ))
    }

    /// Stores a part whose bytes are those of another object, or of a span of it
    /// (UploadPartCopy). The bytes stream through this process into a blob of their own, as
    /// an uploaded part's do, so the part gets its ETag and checksum by the same rules, and the
    /// source may be replaced or deleted meanwhile without touching the part.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        ns: &Namespace,
        source: &PartSource,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<PartInfo, StorageError> {
        self.read_upload(ns, bucket, key, upload_id).await?;
        let range = source
            .range
            .map(|(start, end)| ByteRange::Bounded { start, end });
        let options = GetOptions {
            range,
            conditions: source.conditions.clone(),
        };
        let object = self
            .get_object(ns, &source.bucket, &source.key, &options)
            .await
            .map_err(|error| match error {
                StorageError::NotModified { .. } => {
                    StorageError::PreconditionFailed("the copy source is unchanged".to_owned())
                }
                StorageError::InvalidRange { size } => StorageError::InvalidArgument(format!(
                    "the copy source range is not within the source object of {size} bytes"
                )),
                other => other,
            })?;
        let length = match &object.range {
            Some(span) if span.end - span.start != source.range.map_or(0, |(s, e)| e - s + 1) => {
                return Err(StorageError::InvalidArgument(format!(
                    "the copy source range is not within the source object of {} bytes",
                    object.info.size
                )));
            }
            Some(span) => span.end - span.start,
            None => object.info.size,
        };
        let checks = BodyChecks {
            content_length: Some(length),
            ..BodyChecks::default()
        };
        self.upload_part(ns, bucket, key, upload_id, part_number, object.body, checks)
            .await
    }

    /// Every part record of an upload, in part-number order.
    async fn all_parts(
        &self,
        ns: &Namespace,
        upload_id: &str,
    ) -> Result<Vec<(u32, PartRecord)>, StorageError> {
        let prefix = keys::parts(upload_id);
        let mut parts = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .records
                .scan(ns, &prefix, after.as_deref(), 1000)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(parts);
            };
            after = Some(last.clone());
            for (key, record) in page {
                let number = key[prefix.len()..]
                    .parse::<u32>()
                    .map_err(|_| StorageError::Records(format!("bad part record key {key:?}")))?;
                parts.push((number, decode(&record.value)?));
            }
        }
    }

    /// Parts uploaded so far, after `after` (a part number), at most `max`; and whether more
    /// follow.
    pub async fn list_parts(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: Option<u32>,
        max: usize,
    ) -> Result<(Vec<PartInfo>, bool), StorageError> {
        self.read_upload(ns, bucket, key, upload_id).await?;
        let after = after.map(|n| keys::part(upload_id, n));
        let page = self
            .records
            .scan(ns, &keys::parts(upload_id), after.as_deref(), max + 1)
            .await?;
        let truncated = page.len() > max;
        let prefix_len = keys::parts(upload_id).len();
        let parts = page
            .into_iter()
            .take(max)
            .map(|(record_key, record)| {
                let part: PartRecord = decode(&record.value)?;
                Ok(PartInfo {
                    part_number: record_key[prefix_len..].parse().unwrap_or_default(),
                    etag: part.etag,
                    size: part.size,
                    last_modified_ms: part.last_modified_ms,
                    checksum: part.checksum,
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok((parts, truncated))
    }

    /// Uploads in progress in the bucket whose key starts with `prefix`, by upload id.
    pub async fn list_uploads(
        &self,
        ns: &Namespace,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<UploadInfo>, StorageError> {
        validate_bucket(bucket)?;
        self.require_bucket(ns, bucket).await?;
        let base = keys::uploads(bucket);
        let mut uploads = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.records.scan(ns, &base, after.as_deref(), 1000).await?;
            let Some((last, _)) = page.last() else {
                uploads.sort_by(|a: &UploadInfo, b| {
                    (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id))
                });
                return Ok(uploads);
            };
            after = Some(last.clone());
            for (record_key, record) in page {
                let upload: UploadRecord = decode(&record.value)?;
                if upload.key.starts_with(prefix) {
                    uploads.push(UploadInfo {
                        bucket: bucket.to_owned(),
                        key: upload.key,
                        upload_id: record_key[base.len()..].to_owned(),
                        initiated_ms: upload.initiated_ms,
                    });
                }
            }
        }
    }

    /// One page of the uploads in progress, by key then upload id, with keys sharing a
    /// prefix up to the delimiter rolled up into common prefixes. Reads every upload of the
    /// bucket per page: uploads in progress are few, and their records are keyed by upload id.
    ///
    /// Only uploads whose key is `visible` are listed or rolled up, so a caller who may see
    /// some keys only learns nothing of the others, not even as a common prefix or a marker.
    pub async fn list_uploads_page(
        &self,
        ns: &Namespace,
        bucket: &str,
        query: &UploadQuery,
        visible: impl Fn(&str) -> bool,
    ) -> Result<UploadPage, StorageError> {
        if !(1..=MAX_LIST_KEYS).contains(&query.max_uploads) {
            return Err(StorageError::InvalidArgument(format!(
                "max-uploads must be between 1 and {MAX_LIST_KEYS}"
            )));
        }
        let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut page = UploadPage::default();
        let mut last: Option<UploadMarker> = None;
        for upload in self.list_uploads(ns, bucket, &query.prefix).await? {
            if let Some(marker) = &query.after {
                let after = match &marker.upload_id {
                    Some(id) => (&upload.key, &upload.upload_id) > (&marker.key, id),
                    None => upload.key > marker.key,
                };
                if !after {
                    continue;
                }
            }
            if !visible(&upload.key) {
                continue;
            }
            let rolled = delimiter.and_then(|d| {
                upload.key[query.prefix.len()..]
                    .find(d)
                    .map(|at| upload.key[..query.prefix.len() + at + d.len()].to_owned())
            });
            if let Some(common) = &rolled
                // Rolled up already, on this page or (a marker that is a prefix) the last.
                && (page.common_prefixes.last() == Some(common)
                    || query.after.as_ref().is_some_and(|m| common <= &m.key))
            {
                continue;
            }
            if page.uploads.len() + page.common_prefixes.len() == query.max_uploads {
                page.next = last;
                return Ok(page);
            }
            match rolled {
                Some(common) => {
                    last = Some(UploadMarker {
                        key: common.clone(),
                        upload_id: None,
                    });
                    page.common_prefixes.push(common);
                }
                None => {
                    last = Some(UploadMarker {
                        key: upload.key.clone(),
                        upload_id: Some(upload.upload_id.clone()),
                    });
                    page.uploads.push(upload);
                }
            }
        }
        Ok(page)
    }

    /// Assembles the listed parts into the object: visible, with its event, in one commit.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_multipart(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        conditions: &WriteConditions,
        causation: Causation,
    ) -> Result<ObjectInfo, StorageError> {
        let (upload, upload_version) = match self.read_upload(ns, bucket, key, upload_id).await {
            Err(StorageError::NoSuchUpload(id)) => {
                return self
                    .completed_before(ns, bucket, key, upload_id, parts)
                    .await?
                    .ok_or(StorageError::NoSuchUpload(id));
            }
            other => other?,
        };
        if parts.is_empty() {
            return Err(StorageError::InvalidPart(
                "a multipart upload needs at least one part".to_owned(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(StorageError::InvalidPartOrder);
        }
        let stored = self.all_parts(ns, upload_id).await?;
        let by_number: std::collections::BTreeMap<u32, &PartRecord> =
            stored.iter().map(|(n, p)| (*n, p)).collect();
        let mut md5s = Md5::new();
        let mut part_checksums = Vec::with_capacity(parts.len());
        let mut blobs = Vec::with_capacity(parts.len());
        let mut size = 0u64;
        for (index, wanted) in parts.iter().enumerate() {
            let part = by_number
                .get(&wanted.part_number)
                .filter(|part| part.etag == bare_etag(&wanted.etag))
                .ok_or_else(|| {
                    StorageError::InvalidPart(format!(
                        "part {} was not uploaded with ETag {}",
                        wanted.part_number, wanted.etag
                    ))
                })?;
            if wanted
                .checksum
                .as_ref()
                .is_some_and(|checksum| part.checksum.as_ref() != Some(checksum))
            {
                return Err(StorageError::InvalidPart(format!(
                    "part {} was not uploaded with that checksum",
                    wanted.part_number
                )));
            }
            if index + 1 < parts.len() && part.size < MIN_PART_BYTES {
                return Err(StorageError::EntityTooSmall {
                    part_number: wanted.part_number,
                    size: part.size,
                    min: MIN_PART_BYTES,
                });
            }
            let digest = crate::digest::etag_digest_bytes(&part.etag)
                .ok_or_else(|| StorageError::Records(format!("bad part ETag {}", part.etag)))?;
            md5s.update(digest);
            part_checksums.push(part.checksum.as_ref());
            size += part.size;
            blobs.push(Blob {
                id: part.blob.clone(),
                size: part.size,
            });
        }
        let checksum = upload
            .checksum_algorithm
            .and_then(|algorithm| composite_checksum(algorithm, &part_checksums));
        let record = ObjectRecord {
            size,
            etag: format!("{}-{}", hex::encode(md5s.finalize()), parts.len()),
            content_type: upload.content_type,
            metadata: upload.metadata,
            headers: upload.headers,
            last_modified_ms: self.now_ms(),
            blobs,
            // Part numbers ascend strictly and each names a stored part (1 to 10,000).
            parts: Some(
                u32::try_from(parts.len())
                    .map_err(|_| StorageError::InvalidPart("too many parts".to_owned()))?,
            ),
            checksum,
            completed_from: Some(Completion::new(upload_id, parts)),
        };
        let upload_key = keys::upload(bucket, upload_id);
        let info = self
            .commit_object(
                ns,
                bucket,
                key,
                record,
                conditions,
                causation,
                (
                    vec![(upload_key.clone(), RecordCondition::Version(upload_version))],
                    vec![(upload_key.clone(), None)],
                ),
            )
            .await
            .map_err(|error| match error {
                StorageError::PreconditionFailed(failed) if failed == upload_key => {
                    StorageError::NoSuchUpload(upload_id.to_owned())
                }
                other => other,
            })?;
        let used: std::collections::BTreeSet<u32> = parts.iter().map(|p| p.part_number).collect();
        let mut unused = Vec::new();
        for (number, part) in &stored {
            if !used.contains(number) {
                unused.push(blob_path(ns, bucket, &part.blob));
            }
        }
        self.backend.delete_blobs(unused).await;
        let numbers: Vec<u32> = stored.iter().map(|(n, _)| *n).collect();
        self.delete_part_records(ns, upload_id, numbers).await;
        Ok(info)
    }

    /// The object a completion of `upload_id` with these `parts` made, when it is still the
    /// current object at `key`: a client that retries a completion whose answer it lost gets
    /// that answer again.
    async fn completed_before(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Option<ObjectInfo>, StorageError> {
        let Some((record, _)) = self
            .read_object(ns, &object_record_key(bucket, key)?)
            .await?
        else {
            return Ok(None);
        };
        let same = record.completed_from.as_ref() == Some(&Completion::new(upload_id, parts));
        Ok(same.then(|| ObjectInfo::from_record(bucket, key, &record)))
    }

    /// Abandons an upload: its parts are deleted and nothing becomes visible.
    pub async fn abort_multipart(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        let (_, version) = self.read_upload(ns, bucket, key, upload_id).await?;
        let upload_key = keys::upload(bucket, upload_id);
        let commit = RecordCommit {
            conditions: vec![(upload_key.clone(), RecordCondition::Version(version))],
            writes: vec![(upload_key, None)],
            events: Vec::new(),
        };
        match self.records.commit(ns, commit).await {
            Ok(_) => {}
            Err(RecordError::ConditionFailed { .. }) => {
                return Err(StorageError::NoSuchUpload(upload_id.to_owned()));
            }
            Err(error) => return Err(error.into()),
        }
        let stored = self.all_parts(ns, upload_id).await?;
        let mut blobs = Vec::with_capacity(stored.len());
        let mut numbers = Vec::with_capacity(stored.len());
        for (number, part) in &stored {
            blobs.push(blob_path(ns, bucket, &part.blob));
            numbers.push(*number);
        }
        self.backend.delete_blobs(blobs).await;
        self.delete_part_records(ns, upload_id, numbers).await;
        Ok(())
    }

    /// Removes part records of a finished upload (their blobs are owned elsewhere by now).
    pub(crate) async fn delete_part_records(
        &self,
        ns: &Namespace,
        upload_id: &str,
        numbers: Vec<u32>,
    ) {
        let keys: Vec<String> = numbers
            .into_iter()
            .map(|n| keys::part(upload_id, n))
            .collect();
        for batch in keys.chunks(RECORD_BATCH) {
            let commit = RecordCommit {
                conditions: Vec::new(),
                writes: batch.iter().map(|key| (key.clone(), None)).collect(),
                events: Vec::new(),
            };
            if let Err(error) = self.records.commit(ns, commit).await {
                tracing::warn!(%error, upload_id, "cannot remove part records; the sweep will");
            }
        }
    }
}
