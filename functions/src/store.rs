//! Deployed functions, kept as records of the namespace (see `ferrobase_core::records`):
//! `fn/{name}` holds the latest version number, `fn/{name}/v/{version}` each immutable
//! version. Deploys allocate the next number with a compare-and-set on `fn/{name}`, so two
//! concurrent deploys never get the same version.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ferrobase_core::Namespace;
use ferrobase_core::records::{RecordCommit, RecordCondition, RecordStore};
use serde::{Deserialize, Serialize};

use crate::FunctionError;
use crate::model::{Contract, FunctionSpec, FunctionVersion};

/// How often a deploy retries when a concurrent deploy took its version number.
const DEPLOY_ATTEMPTS: usize = 8;
const SCAN_PAGE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FunctionHead {
    latest: u32,
}

fn head_key(name: &str) -> String {
    format!("fn/{name}")
}

fn version_key(name: &str, version: u32) -> String {
    format!("fn/{name}/v/{version:010}")
}

#[derive(Debug)]
pub struct FunctionStore {
    records: Arc<dyn RecordStore>,
    /// Versions are immutable, so they cache forever (until the function is deleted).
    versions: RwLock<HashMap<(Namespace, String, u32), Arc<FunctionVersion>>>,
    /// The latest version of each function this node knows; invalidated on deploy and delete.
    latest: RwLock<HashMap<(Namespace, String), u32>>,
}

fn storage_error(error: impl std::fmt::Display) -> FunctionError {
    FunctionError::Storage(error.to_string())
}

impl FunctionStore {
    pub fn new(records: Arc<dyn RecordStore>) -> Self {
        FunctionStore {
            records,
            versions: RwLock::default(),
            latest: RwLock::default(),
        }
    }

    /// Stores `spec` as the next version of `name`.
    pub async fn deploy(
        &self,
        ns: &Namespace,
        name: &str,
        spec: FunctionSpec,
        contract: Contract,
        deployed_at: String,
    ) -> Result<Arc<FunctionVersion>, FunctionError> {
        for _ in 0..DEPLOY_ATTEMPTS {
            let head = self.records.get(ns, &head_key(name)).await?;
            let (condition, latest) = match &head {
                Some(record) => {
                    let head: FunctionHead =
                        serde_json::from_slice(&record.value).map_err(storage_error)?;
                    (RecordCondition::Version(record.version), head.latest)
                }
                None => (RecordCondition::Absent, 0),
            };
            let version = Arc::new(FunctionVersion {
                namespace: ns.clone(),
                name: name.to_owned(),
                version: latest + 1,
                spec: spec.clone(),
                deployed_at: deployed_at.clone(),
                contract,
            });
            let new_head = FunctionHead {
                latest: version.version,
            };
            let commit = RecordCommit {
                conditions: vec![(head_key(name), condition)],
                writes: vec![
                    (
                        head_key(name),
                        Some(Bytes::from(
                            serde_json::to_vec(&new_head).map_err(storage_error)?,
                        )),
                    ),
                    (
                        version_key(name, version.version),
                        Some(Bytes::from(
                            serde_json::to_vec(&*version).map_err(storage_error)?,
                        )),
                    ),
                ],
                events: Vec::new(),
            };
            match self.records.commit(ns, commit).await {
                Ok(_) => {
                    self.latest_cache()
                        .insert((ns.clone(), name.to_owned()), version.version);
                    return Ok(version);
                }
                Err(ferrobase_core::records::RecordError::ConditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(FunctionError::Conflict(format!(
            "too many concurrent deploys of {name}; try again"
        )))
    }

    fn latest_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(Namespace, String), u32>> {
        self.latest.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Version `version` of `name`, or the latest when `None`.
    pub async fn get(
        &self,
        ns: &Namespace,
        name: &str,
        version: Option<u32>,
    ) -> Result<Arc<FunctionVersion>, FunctionError> {
        let not_found = || match version {
            Some(v) => FunctionError::NotFound(format!("function {name}@{v} not found")),
            None => FunctionError::NotFound(format!("function {name} not found")),
        };
        let number = match version {
            Some(number) => number,
            None => {
                let cached = self
                    .latest
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&(ns.clone(), name.to_owned()))
                    .copied();
                match cached {
                    Some(latest) => latest,
                    None => {
                        let record = self
                            .records
                            .get(ns, &head_key(name))
                            .await?
                            .ok_or_else(not_found)?;
                        let head: FunctionHead =
                            serde_json::from_slice(&record.value).map_err(storage_error)?;
                        self.latest_cache()
                            .insert((ns.clone(), name.to_owned()), head.latest);
                        head.latest
                    }
                }
            }
        };
        let key = (ns.clone(), name.to_owned(), number);
        if let Some(found) = self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(found.clone());
        }
        let record = self
            .records
            .get(ns, &version_key(name, number))
            .await?
            .ok_or_else(not_found)?;
        let found: Arc<FunctionVersion> =
            Arc::new(serde_json::from_slice(&record.value).map_err(storage_error)?);
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, found.clone());
        Ok(found)
    }

    /// Every version of `name`, oldest first.
    pub async fn versions(
        &self,
        ns: &Namespace,
        name: &str,
    ) -> Result<Vec<Arc<FunctionVersion>>, FunctionError> {
        let prefix = format!("fn/{name}/v/");
        let mut versions = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .records
                .scan(ns, &prefix, after.as_deref(), SCAN_PAGE)
                .await?;
            let done = page.len() < SCAN_PAGE;
            for (key, record) in page {
                versions.push(Arc::new(
                    serde_json::from_slice(&record.value).map_err(storage_error)?,
                ));
                after = Some(key);
            }
            if done {
                break;
            }
        }
        if versions.is_empty() {
            return Err(FunctionError::NotFound(format!(
                "function {name} not found"
            )));
        }
        Ok(versions)
    }

    /// The latest version of each function whose name sorts after `after`, in name order,
    /// at most `max`. Heads (`fn/{name}`) and versions share the `fn/` prefix and interleave
    /// in key order (`fn/a-b` sorts between `fn/a` and `fn/a/v/...`), so the scan reads past
    /// versions and keeps the heads.
    pub async fn list(
        &self,
        ns: &Namespace,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<Arc<FunctionVersion>>, FunctionError> {
        let mut names = Vec::new();
        let mut cursor = after.map(head_key);
        while names.len() < max {
            let page = self
                .records
                .scan(ns, "fn/", cursor.as_deref(), SCAN_PAGE)
                .await?;
            let done = page.len() < SCAN_PAGE;
            for (key, _) in &page {
                let name = &key["fn/".len()..];
                if !name.contains('/') && names.len() < max {
                    names.push(name.to_owned());
                }
            }
            cursor = page.last().map(|(key, _)| key.clone());
            if done {
                break;
            }
        }
        let mut latest = Vec::with_capacity(names.len());
        for name in names {
            match self.get(ns, &name, None).await {
                Ok(version) => latest.push(version),
                // Deleted between the scan and the read: not listed.
                Err(FunctionError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(latest)
    }

    /// Removes `name` and all its versions; returns the version ids that were removed.
    pub async fn delete(&self, ns: &Namespace, name: &str) -> Result<Vec<String>, FunctionError> {
        let versions = self.versions(ns, name).await?;
        // The head goes first: without it the function is gone, whatever versions remain to
        // be removed in the following chunks (a transaction holds at most ~128 operations).
        let mut chunks = versions.chunks(100);
        let mut writes = vec![(head_key(name), None)];
        if let Some(first) = chunks.next() {
            writes.extend(first.iter().map(|v| (version_key(name, v.version), None)));
        }
        self.records
            .commit(
                ns,
                RecordCommit {
                    conditions: vec![(head_key(name), RecordCondition::Exists)],
                    writes,
                    events: Vec::new(),
                },
            )
            .await
            .map_err(|error| match error {
                ferrobase_core::records::RecordError::ConditionFailed { .. } => {
                    FunctionError::NotFound(format!("function {name} not found"))
                }
                other => other.into(),
            })?;
        for chunk in chunks {
            let writes = chunk
                .iter()
                .map(|v| (version_key(name, v.version), None))
                .collect();
            self.records
                .commit(
                    ns,
                    RecordCommit {
                        writes,
                        ..RecordCommit::default()
                    },
                )
                .await?;
        }
        self.latest_cache().remove(&(ns.clone(), name.to_owned()));
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, f, _), _| !(n == ns && f == name));
        Ok(versions.iter().map(|v| v.id()).collect())
    }
}
