//! Object operations: put, get, head, delete, copy and listing.

use bytes::Bytes;
use ferrobase_core::event::Causation;
use ferrobase_core::records::{EventDraft, RecordCommit, RecordCondition, RecordError};
use ferrobase_core::{EventType, Namespace};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::backend::{Written, blob_path};
use crate::idempotency::{Mark, MarkedOutcome};
use crate::model::ExpectedChecksum;
use crate::model::{
    Blob, ListPage, ListQuery, MAX_LIST_KEYS, ObjectInfo, ObjectRecord, WriteConditions, bare_etag,
    validate_bucket, validate_key,
};
use crate::{
    BodyChecks, ByteStream, GetOptions, ObjectBody, PutOptions, Storage, StorageError,
    WRITE_RETRIES, decode, encode, keys,
};

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// The record store's key limit, which bounds bucket name plus key.
const MAX_RECORD_KEY_BYTES: usize = 1023;

/// A new blob id: time-ordered, unique.
pub(crate) fn new_blob_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

pub(crate) fn object_record_key(bucket: &str, key: &str) -> Result<String, StorageError> {
    validate_bucket(bucket)?;
    validate_key(key)?;
    let record_key = keys::object(bucket, key);
    if record_key.len() > MAX_RECORD_KEY_BYTES {
        return Err(StorageError::KeyTooLong {
            len: key.len(),
            max: MAX_RECORD_KEY_BYTES - keys::objects(bucket).len(),
        });
    }
    Ok(record_key)
}

pub(crate) fn created_event(info: &ObjectInfo, causation: Causation) -> EventDraft {
    EventDraft {
        event_type: EventType::StorageObjectCreated,
        subject: format!("{}/{}", info.bucket, info.key),
        data: json!({
            "bucket": info.bucket,
            "key": info.key,
            "size": info.size,
            "etag": info.etag,
            "content_type": info.content_type,
        }),
        causation,
    }
}

/// The answer to a put that was applied before: the object as that put stored it.
fn repeated_put(mark: Mark) -> Result<ObjectInfo, StorageError> {
    match mark.outcome {
        MarkedOutcome::Put { object } => Ok(*object),
        MarkedOutcome::Delete { .. } => Err(StorageError::PreconditionFailed(
            "this write was applied before as a delete".to_owned(),
        )),
    }
}

/// Conditions and record writes that commit together with an object (multipart completion).
pub(crate) type Extra = (Vec<(String, RecordCondition)>, Vec<(String, Option<Bytes>)>);

/// The current record of an object and its version, when it exists.
pub(crate) type Current = Option<(ObjectRecord, u64)>;

impl Storage {
    pub(crate) async fn read_object(
        &self,
        ns: &Namespace,
        record_key: &str,
    ) -> Result<Current, StorageError> {
        match self.records.get(ns, record_key).await? {
            Some(record) => Ok(Some((decode(&record.value)?, record.version))),
            None => Ok(None),
        }
    }

    /// Checks write preconditions against the current object; returns the condition that
    /// pins what was checked for the commit.
    pub(crate) fn write_condition(
        conditions: &WriteConditions,
        current: &Current,
    ) -> Result<RecordCondition, StorageError> {
        let failed = |why: &str| Err(StorageError::PreconditionFailed(why.to_owned()));
        if let Some(list) = &conditions.if_none_match
            && let Some((record, _)) = current
        {
            let tags: Vec<&str> = list.split(',').map(bare_etag).collect();
            if tags.contains(&"*") {
                return failed("If-None-Match: * but the object exists");
            }
            if tags.contains(&record.etag.as_str()) {
                return failed("If-None-Match matches the ETag");
            }
        }
        if let Some(tag) = &conditions.if_match {
            match current {
                None => return failed("If-Match but the object does not exist"),
                Some((record, _)) => {
                    let wanted = bare_etag(tag);
                    if wanted != "*" && wanted != record.etag {
                        return failed("If-Match does not match the ETag");
                    }
                }
            }
        }
        Ok(match current {
            Some((_, version)) => RecordCondition::Version(*version),
            None => RecordCondition::Absent,
        })
    }

    /// Commits `record` as the object at `record_key` with its created event, retrying when a
    /// concurrent writer got there first (unless the caller's conditions forbid that), then
    /// deletes the blobs of the object it replaced.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_object(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        record: ObjectRecord,
        conditions: &WriteConditions,
        causation: Causation,
        extra: Extra,
    ) -> Result<ObjectInfo, StorageError> {
        let record_key = object_record_key(bucket, key)?;
        let info = ObjectInfo::from_record(bucket, key, &record);
        let value = encode(&record)?;
        for _ in 0..WRITE_RETRIES {
            let current = self.read_object(ns, &record_key).await?;
            let condition = Self::write_condition(conditions, &current)?;
            let (mut conditions_extra, writes_extra) = extra.clone();
            let mut commit_conditions = vec![
                self.bucket_condition(ns, bucket).await?,
                (record_key.clone(), condition),
            ];
            commit_conditions.append(&mut conditions_extra);
            let mut writes = vec![(record_key.clone(), Some(value.clone()))];
            writes.extend(writes_extra);
            let commit = RecordCommit {
                conditions: commit_conditions,
                writes,
                events: vec![created_event(&info, causation.clone())],
            };
            match self.records.commit(ns, commit).await {
                Ok(_) => {
                    if let Some((old, _)) = current {
                        self.delete_record_blobs(ns, bucket, &old).await;
                    }
                    return Ok(info);
                }
                Err(RecordError::ConditionFailed { key: failed, .. }) => {
                    if failed == keys::bucket(bucket) {
                        // Deleted or being deleted since: the next round says which.
                        continue;
                    }
                    if failed != record_key {
                        // An extra condition (the multipart upload) failed.
                        return Err(StorageError::PreconditionFailed(failed));
                    }
                    // Another writer changed the object; check the conditions again.
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::PreconditionFailed(
            "too many concurrent writers of this object".to_owned(),
        ))
    }

    pub(crate) async fn delete_record_blobs(
        &self,
        ns: &Namespace,
        bucket: &str,
        record: &ObjectRecord,
    ) {
        self.backend
            .delete_blobs(
                record
                    .blobs
                    .iter()
                    .map(|blob| blob_path(ns, bucket, &blob.id))
                    .collect(),
            )
            .await;
    }

    /// Streams `body` into a new blob at `path` and checks it against what the client
    /// declared; a body that fails a check is removed again.
    pub(crate) async fn store_body(
        &self,
        path: &object_store::path::Path,
        body: ByteStream,
        checks: BodyChecks,
    ) -> Result<Written, StorageError> {
        let md5_limit = self.etags.md5_limit(checks.content_md5.is_some());
        let algorithm = checks.checksum.as_ref().map(|check| check.algorithm);
        let written = self
            .backend
            .write_blob(path, body, md5_limit, checks.content_length, algorithm)
            .await?;
        // A trailer arrives with the end of the body, so only now can it be read.
        let expected_checksum = match checks.checksum.map(|check| check.expected) {
            Some(ExpectedChecksum::Value(value)) => Some(value),
            Some(ExpectedChecksum::AfterBody(read)) => read(),
            Some(ExpectedChecksum::Unknown) | None => None,
        };
        let failed = if let Some(declared) = checks
            .content_length
            .filter(|&declared| declared != written.size)
        {
            Some(StorageError::IncompleteBody(format!(
                "the body was {} bytes, not the {declared} declared",
                written.size
            )))
        } else if checks
            .content_md5
            .is_some_and(|md5| Some(md5) != written.digest.md5())
        {
            Some(StorageError::BadDigest)
        } else if let Some((expected, computed)) = expected_checksum.zip(written.checksum.as_ref())
            && expected.trim() != computed.value
        {
            Some(StorageError::BadChecksum {
                algorithm: computed.algorithm.name().to_ascii_lowercase(),
            })
        } else {
            None
        };
        match failed {
            Some(error) => {
                self.backend.delete_blobs(vec![path.clone()]).await;
                Err(error)
            }
            None => Ok(written),
        }
    }

    /// Stores `body` as `bucket/key`, replacing any object there; visible (with its event)
    /// only once the whole body is stored.
    pub async fn put_object(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        body: ByteStream,
        options: PutOptions,
    ) -> Result<ObjectInfo, StorageError> {
        let record_key = object_record_key(bucket, key)?;
        self.require_bucket(ns, bucket).await?;
        let write_key = options.causation.write_key.clone();
        if let Some(mark) = self.find_mark(ns, write_key.as_deref()).await? {
            return repeated_put(mark);
        }
        // Fail early on preconditions that already fail, before taking the body.
        let current = self.read_object(ns, &record_key).await?;
        Self::write_condition(&options.conditions, &current)?;

        let blob_id = crate::objects::new_blob_id();
        let path = blob_path(ns, bucket, &blob_id);
        let written = self.store_body(&path, body, options.checks).await?;
        let record = ObjectRecord {
            size: written.size,
            etag: written.digest.etag(),
            content_type: options
                .content_type
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            metadata: options.metadata,
            headers: options.headers,
            last_modified_ms: self.now_ms(),
            blobs: vec![Blob {
                id: blob_id,
                size: written.size,
            }],
            parts: None,
            checksum: written.checksum,
            completed_from: None,
        };
        let mut extra: Extra = (Vec::new(), Vec::new());
        let mut mark_key = None;
        if let Some(write_key) = &write_key {
            let object = ObjectInfo::from_record(bucket, key, &record);
            let mark = self.mark_commit(
                write_key,
                MarkedOutcome::Put {
                    object: Box::new(object),
                },
            )?;
            extra.0.push(mark.condition);
            extra.1.push(mark.write);
            mark_key = Some(mark.key);
        }
        let result = self
            .commit_object(
                ns,
                bucket,
                key,
                record,
                &options.conditions,
                options.causation,
                extra,
            )
            .await;
        if result.is_err() {
            self.backend.delete_blobs(vec![path]).await;
        }
        match result {
            // A concurrent run of the same handler applied this write first.
            Err(StorageError::PreconditionFailed(failed)) if Some(&failed) == mark_key.as_ref() => {
                match self.find_mark(ns, write_key.as_deref()).await? {
                    Some(mark) => repeated_put(mark),
                    None => Err(StorageError::PreconditionFailed(failed)),
                }
            }
            other => other,
        }
    }

    /// The object's metadata, after checking the read conditions.
    pub async fn head_object(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        options: &GetOptions,
    ) -> Result<ObjectInfo, StorageError> {
        let record_key = object_record_key(bucket, key)?;
        let Some((record, _)) = self.read_object(ns, &record_key).await? else {
            self.require_bucket(ns, bucket).await?;
            return Err(StorageError::NoSuchKey {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        };
        let info = ObjectInfo::from_record(bucket, key, &record);
        options.conditions.check(&info)?;
        if let Some(range) = options.range {
            range.resolve(info.size)?;
        }
        Ok(info)
    }

    /// The object's body (or the asked range of it) as a stream.
    pub async fn get_object(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        options: &GetOptions,
    ) -> Result<ObjectBody, StorageError> {
        let record_key = object_record_key(bucket, key)?;
        // A concurrent overwrite may delete the blobs of the record just read; read again.
        for _ in 0..WRITE_RETRIES {
            let Some((record, _)) = self.read_object(ns, &record_key).await? else {
                self.require_bucket(ns, bucket).await?;
                return Err(StorageError::NoSuchKey {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                });
            };
            let info = ObjectInfo::from_record(bucket, key, &record);
            options.conditions.check(&info)?;
            let span = match options.range {
                Some(range) => range.resolve(info.size)?,
                None => 0..info.size,
            };
            match self.open_body(ns, bucket, &record, span.clone()).await {
                Ok(body) => {
                    return Ok(ObjectBody {
                        info,
                        range: options.range.map(|_| span),
                        body,
                    });
                }
                Err(StorageError::Backend(message)) if message.contains("not found") => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StorageError::Backend(
            "the object kept changing while it was read".to_owned(),
        ))
    }

    /// Streams `span` of the object: the first overlapping blob is opened now (so that a
    /// vanished blob is noticed before answering), the others when the reader gets to them.
    async fn open_body(
        &self,
        ns: &Namespace,
        bucket: &str,
        record: &ObjectRecord,
        span: std::ops::Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        let mut segments = Vec::new();
        let mut offset = 0u64;
        for blob in &record.blobs {
            let (start, end) = (offset, offset + blob.size);
            offset = end;
            if end <= span.start || start >= span.end || blob.size == 0 {
                continue;
            }
            let from = span.start.max(start) - start;
            let to = span.end.min(end) - start;
            segments.push((blob_path(ns, bucket, &blob.id), from..to));
        }
        if segments.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let mut rest = segments.into_iter();
        let (first_path, first_range) = rest.next().expect("at least one segment");
        let first = self.backend.read_blob(&first_path, first_range).await?;
        let backend = self.backend.clone();
        let tail = futures::stream::iter(rest)
            .then(move |(path, range)| {
                let backend = backend.clone();
                async move {
                    backend
                        .read_blob(&path, range)
                        .await
                        .map_err(std::io::Error::other)
                }
            })
            .try_flatten();
        Ok(first.chain(tail).boxed())
    }

    /// Deletes the object; `false` when there was none (not an error, as in S3).
    pub async fn delete_object(
        &self,
        ns: &Namespace,
        bucket: &str,
        key: &str,
        causation: Causation,
    ) -> Result<bool, StorageError> {
        let record_key = object_record_key(bucket, key)?;
        let write_key = causation.write_key.as_deref();
        for _ in 0..WRITE_RETRIES {
            if let Some(mark) = self.find_mark(ns, write_key).await? {
                return match mark.outcome {
                    MarkedOutcome::Delete { existed } => Ok(existed),
                    MarkedOutcome::Put { .. } => Err(StorageError::PreconditionFailed(
                        "this write was applied before as a put".to_owned(),
                    )),
                };
            }
            let Some((record, version)) = self.read_object(ns, &record_key).await? else {
                self.require_bucket(ns, bucket).await?;
                return Ok(false);
            };
            let mut conditions = vec![(record_key.clone(), RecordCondition::Version(version))];
            let mut writes = vec![(record_key.clone(), None)];
            if let Some(write_key) = write_key {
                let mark = self.mark_commit(write_key, MarkedOutcome::Delete { existed: true })?;
                conditions.push(mark.condition);
                writes.push(mark.write);
            }
            let commit = RecordCommit {
                conditions,
                writes,
                events: vec![EventDraft {
                    event_type: EventType::StorageObjectDeleted,
                    subject: format!("{bucket}/{key}"),
                    data: json!({
                        "bucket": bucket,
                        "key": key,
                        "size": record.size,
                        "etag": record.etag,
                        "content_type": record.content_type,
                    }),
                    causation: causation.clone(),
                }],
            };
            match self.records.commit(ns, commit).await {
                Ok(_) => {
                    self.delete_record_blobs(ns, bucket, &record).await;
                    return Ok(true);
                }
                // The object changed, or a concurrent run of the same handler deleted it
                // first (its mark answers on the next round).
                Err(RecordError::ConditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::PreconditionFailed(
            "too many concurrent writers of this object".to_owned(),
        ))
    }

    /// Copies an object (server side: blob copies, no body through this process). With
    /// `metadata` set, the copy gets that content type and user metadata instead of the
    /// source's (S3's `x-amz-metadata-directive: REPLACE`).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        ns: &Namespace,
        source_bucket: &str,
        source_key: &str,
        source_conditions: &crate::ReadConditions,
        bucket: &str,
        key: &str,
        replace: Option<PutOptions>,
        causation: Causation,
    ) -> Result<ObjectInfo, StorageError> {
        let source_record_key = object_record_key(source_bucket, source_key)?;
        object_record_key(bucket, key)?;
        self.require_bucket(ns, bucket).await?;
        let Some((source, _)) = self.read_object(ns, &source_record_key).await? else {
            self.require_bucket(ns, source_bucket).await?;
            return Err(StorageError::NoSuchKey {
                bucket: source_bucket.to_owned(),
                key: source_key.to_owned(),
            });
        };
        source_conditions
            .check(&ObjectInfo::from_record(source_bucket, source_key, &source))
            .map_err(|error| match error {
                StorageError::NotModified { .. } => {
                    StorageError::PreconditionFailed("the copy source is unchanged".to_owned())
                }
                other => other,
            })?;
        let mut blobs = Vec::with_capacity(source.blobs.len());
        let mut copied = Vec::new();
        for blob in &source.blobs {
            let id = new_blob_id();
            let to = blob_path(ns, bucket, &id);
            if let Err(error) = self
                .backend
                .copy_blob(&blob_path(ns, source_bucket, &blob.id), &to)
                .await
            {
                self.backend.delete_blobs(copied).await;
                return Err(error);
            }
            copied.push(to);
            blobs.push(Blob {
                id,
                size: blob.size,
            });
        }
        let (content_type, metadata, headers, conditions) = match replace {
            Some(options) => (
                options
                    .content_type
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
                options.metadata,
                options.headers,
                options.conditions,
            ),
            None => (
                source.content_type,
                source.metadata,
                source.headers,
                WriteConditions::default(),
            ),
        };
        let record = ObjectRecord {
            size: source.size,
            etag: source.etag,
            content_type,
            metadata,
            headers,
            last_modified_ms: self.now_ms(),
            blobs,
            parts: source.parts,
            // The same bytes: the same checksum.
            checksum: source.checksum,
            completed_from: None,
        };
        let result = self
            .commit_object(
                ns,
                bucket,
                key,
                record,
                &conditions,
                causation,
                (Vec::new(), Vec::new()),
            )
            .await;
        if result.is_err() {
            self.backend.delete_blobs(copied).await;
        }
        result
    }

    /// One page of the bucket's objects in key order, with keys sharing a prefix up to the
    /// delimiter rolled up into common prefixes.
    pub async fn list_objects(
        &self,
        ns: &Namespace,
        bucket: &str,
        query: &ListQuery,
    ) -> Result<ListPage, StorageError> {
        validate_bucket(bucket)?;
        self.require_bucket(ns, bucket).await?;
        if !(1..=MAX_LIST_KEYS).contains(&query.max_keys) {
            return Err(StorageError::InvalidArgument(format!(
                "max-keys must be between 1 and {MAX_LIST_KEYS}"
            )));
        }
        // Keys never hold control characters, so a prefix with one matches nothing, and a
        // start-after key with one is the same bound as a key without it (see `key_bound`).
        if query.prefix.chars().any(char::is_control) {
            return Ok(ListPage::default());
        }
        let after = query.after.as_deref().map(key_bound);
        let base = keys::objects(bucket);
        let scan_prefix = format!("{base}{}", query.prefix);
        let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut page = ListPage::default();
        let mut cursor: Option<String> = after
            .as_ref()
            .filter(|after| after.as_str() >= query.prefix.as_str())
            .map(|after| format!("{base}{after}"));
        let mut emitted = 0usize;
        loop {
            let batch = self
                .records
                .scan(ns, &scan_prefix, cursor.as_deref(), MAX_LIST_KEYS)
                .await?;
            let exhausted = batch.len() < MAX_LIST_KEYS;
            let mut jumped = false;
            for (record_key, record) in batch {
                cursor = Some(record_key.clone());
                let key = &record_key[base.len()..];
                if let Some(after) = &after
                    && key <= after.as_str()
                {
                    continue;
                }
                let rolled = delimiter.and_then(|d| {
                    key[query.prefix.len()..]
                        .find(d)
                        .map(|at| key[..query.prefix.len() + at + d.len()].to_owned())
                });
                if let Some(common) = &rolled
                    && (after.as_deref().is_some_and(|a| common.as_str() <= a)
                        || page.common_prefixes.last() == Some(common))
                {
                    cursor = Some(format!("{base}{common}{}", char::MAX));
                    jumped = true;
                    break;
                }
                if emitted == query.max_keys {
                    page.next = Some(last_emitted(&page));
                    return Ok(page);
                }
                match rolled {
                    Some(common) => {
                        // Skip the rest of the rolled-up keys in one jump.
                        cursor = Some(format!("{base}{common}{}", char::MAX));
                        jumped = true;
                        page.common_prefixes.push(common);
                        emitted += 1;
                        break;
                    }
                    None => {
                        let record: ObjectRecord = decode(&record.value)?;
                        page.objects
                            .push(ObjectInfo::from_record(bucket, key, &record));
                        emitted += 1;
                    }
                }
            }
            if exhausted && !jumped {
                return Ok(page);
            }
        }
    }
}

/// A start-after bound without control characters that the same keys sort after. Before a
/// control character below U+0020 every key character sorts after it, so the bound is what
/// precedes it; before DEL or a C1 control, the key characters that sort after it are those
/// after `~` (0x7E) followed by the greatest character.
fn key_bound(after: &str) -> String {
    match after.char_indices().find(|(_, c)| c.is_control()) {
        None => after.to_owned(),
        Some((at, c)) if c < ' ' => after[..at].to_owned(),
        Some((at, _)) => format!("{}~{}", &after[..at], char::MAX),
    }
}

/// The greatest key or common prefix of a page: the next page starts after it.
fn last_emitted(page: &ListPage) -> String {
    let object = page.objects.last().map(|o| o.key.as_str());
    let prefix = page.common_prefixes.last().map(String::as_str);
    object.max(prefix).unwrap_or_default().to_owned()
}
