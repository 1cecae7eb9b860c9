//! Storage of per-namespace policy documents.
//!
//! Policies are records in the reserved `_system` namespace of the KV engine (key
//! `policies/{ns}`), so they are as durable as any data and their changes are logged. They are
//! read on every `user` request, so the store caches them; every write goes through this store,
//! which keeps the cache exact on a single node.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ferrobase_core::Namespace;
use ferrobase_core::policy::Policy;
use ferrobase_kv::{Key, KvEngine, Txn};

use crate::error::ApiError;

#[derive(Debug)]
pub struct PolicyStore {
    kv: Arc<dyn KvEngine>,
    cache: RwLock<HashMap<Namespace, Option<Arc<Policy>>>>,
    /// Serialises cache fills with writes, so a slow read of an old policy can never land in
    /// the cache after a newer write.
    fill: tokio::sync::Mutex<()>,
}

impl PolicyStore {
    pub fn new(kv: Arc<dyn KvEngine>) -> Self {
        PolicyStore {
            kv,
            cache: RwLock::default(),
            fill: tokio::sync::Mutex::new(()),
        }
    }

    fn key(ns: &Namespace) -> Key {
        Key::parse(&format!("policies/{ns}")).expect("namespace names make valid keys")
    }

    /// The policy of `ns`, if one was stored.
    pub async fn get(&self, ns: &Namespace) -> Result<Option<Arc<Policy>>, ApiError> {
        if let Some(cached) = self.cached(ns) {
            return Ok(cached);
        }
        let _fill = self.fill.lock().await;
        if let Some(cached) = self.cached(ns) {
            return Ok(cached);
        }
        let policy = match self.kv.get(&Namespace::system(), &Self::key(ns)).await? {
            Some(entry) => Some(Arc::new(
                serde_json::from_slice::<Policy>(&entry.value).map_err(|error| {
                    ApiError::internal(format!("stored policy of {ns}: {error}"))
                })?,
            )),
            None => None,
        };
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), policy.clone());
        Ok(policy)
    }

    fn cached(&self, ns: &Namespace) -> Option<Option<Arc<Policy>>> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(ns)
            .cloned()
    }

    /// Validates and stores `policy` as the policy of `ns`.
    pub async fn put(&self, ns: &Namespace, policy: Policy) -> Result<Arc<Policy>, ApiError> {
        policy
            .validate()
            .map_err(|error| ApiError::invalid(error.to_string()))?;
        let body = serde_json::to_vec(&policy).map_err(ApiError::internal)?;
        let txn = Txn::put(Self::key(ns), Bytes::from(body), "application/json");
        let _fill = self.fill.lock().await;
        self.kv.commit(&Namespace::system(), txn).await?;
        let policy = Arc::new(policy);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), Some(policy.clone()));
        Ok(policy)
    }
}
