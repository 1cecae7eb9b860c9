//! Writes applied once: a put or delete made by a function while it handles an event carries
//! the write's idempotency key (`Causation::write_key`). The commit that applies the write also
//! records a mark under that key, on the condition that no mark is there yet; a retry of the
//! handler finds the mark and gets the first attempt's answer instead of writing again (and
//! instead of appending a second event). Marks are removed by the orphan sweep once they are
//! older than any retry schedule.

use std::time::Duration;

use bytes::Bytes;
use ferrobase_core::Namespace;
use ferrobase_core::records::{RecordCommit, RecordCondition};
use serde::{Deserialize, Serialize};

use crate::model::ObjectInfo;
use crate::{Storage, StorageError, decode, encode};

/// How long a mark is kept: longer than any retry schedule of a rule.
pub(crate) const MARK_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

const MARKS: &str = "st/i/";

/// What the first application of a write answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Mark {
    pub at_ms: u64,
    pub outcome: MarkedOutcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum MarkedOutcome {
    Put { object: Box<ObjectInfo> },
    Delete { existed: bool },
}

/// A write's mark: the condition and the record write that go into the write's commit.
pub(crate) struct MarkCommit {
    pub key: String,
    pub condition: (String, RecordCondition),
    pub write: (String, Option<Bytes>),
}

pub(crate) fn mark_key(write_key: &str) -> String {
    format!("{MARKS}{write_key}")
}

impl Storage {
    /// The mark of an earlier application of the write `write_key`, if there is one.
    pub(crate) async fn find_mark(
        &self,
        ns: &Namespace,
        write_key: Option<&str>,
    ) -> Result<Option<Mark>, StorageError> {
        let Some(write_key) = write_key else {
            return Ok(None);
        };
        match self.records.get(ns, &mark_key(write_key)).await? {
            Some(record) => Ok(Some(decode(&record.value)?)),
            None => Ok(None),
        }
    }

    /// The commit parts that record `outcome` for `write_key` once.
    pub(crate) fn mark_commit(
        &self,
        write_key: &str,
        outcome: MarkedOutcome,
    ) -> Result<MarkCommit, StorageError> {
        let key = mark_key(write_key);
        let mark = Mark {
            at_ms: self.now_ms(),
            outcome,
        };
        Ok(MarkCommit {
            condition: (key.clone(), RecordCondition::Absent),
            write: (key.clone(), Some(encode(&mark)?)),
            key,
        })
    }

    /// Deletes the namespace's marks older than [`MARK_LIFETIME`] (by the injected clock).
    pub(crate) async fn expire_marks(&self, ns: &Namespace) -> Result<u64, StorageError> {
        let now_ms = self.now_ms();
        let lifetime_ms = MARK_LIFETIME.as_millis() as u64;
        let mut expired = Vec::new();
        for (key, record) in self.scan_all(ns, MARKS).await? {
            let mark: Mark = decode(&record.value)?;
            if now_ms.saturating_sub(mark.at_ms) >= lifetime_ms {
                expired.push(key);
            }
        }
        for batch in expired.chunks(100) {
            let commit = RecordCommit {
                writes: batch.iter().map(|key| (key.clone(), None)).collect(),
                ..RecordCommit::default()
            };
            self.records.commit(ns, commit).await?;
        }
        Ok(expired.len() as u64)
    }
}
