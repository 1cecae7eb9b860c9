//! [`RecordStore`] over any [`KvEngine`]: records are internal keys of the namespace (see
//! [`Key::internal`]), so a commit writes them and appends its events in one KV transaction.

use std::sync::Arc;

use async_trait::async_trait;
use ferrobase_core::Namespace;
use ferrobase_core::records::{
    Record, RecordCommit, RecordCondition, RecordError, RecordOutcome, RecordStore,
};

use crate::model::INTERNAL_PREFIX;
use crate::{Check, Key, KvEngine, KvError, ListQuery, Mutation, MutationResult, Txn};

/// The content type records are stored with; they are opaque bytes to the KV engine.
const RECORD_CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Debug, Clone)]
pub struct KvRecordStore {
    kv: Arc<dyn KvEngine>,
}

impl KvRecordStore {
    pub fn new(kv: Arc<dyn KvEngine>) -> Self {
        KvRecordStore { kv }
    }
}

fn record_key(key: &str) -> Result<Key, RecordError> {
    Key::internal(key).map_err(|error| RecordError::Invalid(error.to_string()))
}

impl From<KvError> for RecordError {
    fn from(error: KvError) -> Self {
        match error {
            KvError::CheckFailed { key, reason, .. } => RecordError::ConditionFailed {
                key: key.trim_start_matches(INTERNAL_PREFIX).to_owned(),
                reason,
            },
            KvError::InvalidKey(message) | KvError::InvalidArgument(message) => {
                RecordError::Invalid(message)
            }
            KvError::TxnTooLarge(message) => RecordError::Invalid(message),
            too_large @ KvError::ValueTooLarge { .. } => {
                RecordError::Invalid(too_large.to_string())
            }
            // Record commits carry no write key; should one, its mark is the condition.
            KvError::AlreadyApplied(write_key) => RecordError::ConditionFailed {
                key: format!("idem/{write_key}"),
                reason: "applied before".to_owned(),
            },
            KvError::Storage(message) => RecordError::Storage(message),
        }
    }
}

#[async_trait]
impl RecordStore for KvRecordStore {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Record>, RecordError> {
        let entry = self.kv.get(ns, &record_key(key)?).await?;
        Ok(entry.map(|entry| Record {
            value: entry.value,
            version: entry.meta.version,
        }))
    }

    async fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, RecordError> {
        let query = ListQuery {
            prefix: record_key(prefix)?.as_str().to_owned(),
            after: after
                .map(|after| record_key(after).map(|k| k.as_str().to_owned()))
                .transpose()?,
            limit,
        };
        let page = self.kv.list(ns, &query).await?;
        let mut records = Vec::with_capacity(page.entries.len());
        for (key, _) in page.entries {
            // Listing carries metadata only; values are read one by one. Records are small and
            // scans are for bookkeeping, not hot paths.
            if let Some(entry) = self.kv.get(ns, &key).await? {
                let name = key.record_key().unwrap_or_default().to_owned();
                records.push((
                    name,
                    Record {
                        value: entry.value,
                        version: entry.meta.version,
                    },
                ));
            }
        }
        Ok(records)
    }

    async fn commit(
        &self,
        ns: &Namespace,
        commit: RecordCommit,
    ) -> Result<RecordOutcome, RecordError> {
        let checks = commit
            .conditions
            .iter()
            .map(|(key, condition)| {
                let key = record_key(key)?;
                Ok(match condition {
                    RecordCondition::Absent => Check::Absent { key },
                    RecordCondition::Exists => Check::Exists { key },
                    RecordCondition::Version(version) => Check::Version {
                        key,
                        version: *version,
                    },
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let mutations = commit
            .writes
            .into_iter()
            .map(|(key, value)| {
                let key = record_key(&key)?;
                Ok(match value {
                    Some(value) => Mutation::Put {
                        key,
                        value,
                        content_type: RECORD_CONTENT_TYPE.to_owned(),
                        ttl: None,
                    },
                    None => Mutation::Delete { key },
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let txn = Txn {
            checks,
            mutations,
            events: commit.events,
            ..Txn::default()
        };
        let outcome = self.kv.commit(ns, txn).await?;
        let versions = outcome
            .results
            .iter()
            .map(|result| match result {
                MutationResult::Put { version, .. } => *version,
                MutationResult::Delete { .. } => 0,
            })
            .collect();
        Ok(RecordOutcome {
            versions,
            event_offsets: outcome.event_offsets,
        })
    }
}
