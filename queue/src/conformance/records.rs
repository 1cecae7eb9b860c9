//! An in-memory [`RecordStore`] for the conformance suite: enough to see which events a queue
//! engine appends, without depending on the KV crate.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use ferrobase_core::records::{
    Record, RecordCommit, RecordCondition, RecordError, RecordOutcome, RecordStore,
};
use ferrobase_core::{Clock, Event, Namespace, SystemClock};

#[derive(Debug, Default)]
pub struct MemoryRecordStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    records: HashMap<(Namespace, String), Record>,
    events: HashMap<Namespace, Vec<Event>>,
    /// Per namespace: the last offset handed out, shared by events and record versions.
    offsets: HashMap<Namespace, u64>,
}

impl MemoryRecordStore {
    /// Every event appended to `ns`, oldest first.
    pub fn events(&self, ns: &Namespace) -> Vec<Event> {
        let state = self.state.lock().expect("record store lock");
        state.events.get(ns).cloned().unwrap_or_default()
    }
}

#[async_trait]
impl RecordStore for MemoryRecordStore {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Record>, RecordError> {
        let state = self.state.lock().expect("record store lock");
        Ok(state.records.get(&(ns.clone(), key.to_owned())).cloned())
    }

    async fn scan(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, RecordError> {
        let state = self.state.lock().expect("record store lock");
        let mut found: Vec<(String, Record)> = state
            .records
            .iter()
            .filter(|((record_ns, key), _)| {
                record_ns == ns && key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a)
            })
            .map(|((_, key), record)| (key.clone(), record.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.truncate(limit);
        Ok(found)
    }

    async fn commit(
        &self,
        ns: &Namespace,
        commit: RecordCommit,
    ) -> Result<RecordOutcome, RecordError> {
        let mut state = self.state.lock().expect("record store lock");
        for (key, condition) in &commit.conditions {
            let current = state.records.get(&(ns.clone(), key.clone()));
            let holds = match (condition, current) {
                (RecordCondition::Absent, current) => current.is_none(),
                (RecordCondition::Exists, current) => current.is_some(),
                (RecordCondition::Version(version), Some(current)) => current.version == *version,
                (RecordCondition::Version(_), None) => false,
            };
            if !holds {
                return Err(RecordError::ConditionFailed {
                    key: key.clone(),
                    reason: format!("{condition:?} does not hold"),
                });
            }
        }
        let now = SystemClock.now_ms();
        let mut outcome = RecordOutcome::default();
        let mut offset = state.offsets.get(ns).copied().unwrap_or(0);
        let mut appended = Vec::new();
        for draft in commit.events {
            offset += 1;
            outcome.event_offsets.push(offset);
            appended.push(Event::new(
                ns,
                draft.event_type,
                draft.subject,
                offset,
                now,
                &draft.causation,
                draft.data,
            ));
        }
        offset += 1;
        for (key, value) in commit.writes {
            let slot = (ns.clone(), key);
            match value {
                Some(value) => {
                    state.records.insert(
                        slot,
                        Record {
                            value,
                            version: offset,
                        },
                    );
                    outcome.versions.push(offset);
                }
                None => {
                    state.records.remove(&slot);
                    outcome.versions.push(0);
                }
            }
        }
        state.offsets.insert(ns.clone(), offset);
        state.events.entry(ns.clone()).or_default().extend(appended);
        Ok(outcome)
    }
}
