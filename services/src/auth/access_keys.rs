//! S3 access keys: each maps to one namespace and a role.
//!
//! Keys live as one small JSON file each under `{data_dir}/s3/keys/`, written atomically
//! (temp file, fsync, rename, fsync of the directory). Files rather than the KV store because
//! `ferrobase keys create` must work while the server runs and holds the KV store's lock; the
//! server reads a key it does not know yet from its file on first use, so new keys work
//! without a restart.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context;
use ferrobase_core::Namespace;
use ferrobase_core::auth::Role;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Length of generated access key ids and secrets.
const ACCESS_KEY_ID_LEN: usize = 20;
const SECRET_LEN: usize = 40;

/// One access key as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub ns: Namespace,
    pub role: Role,
    /// The subject (a JWT's `sub`) the key acts as, so that `{sub}` in policy patterns means
    /// the same user for the key as for that user's tokens. Keys made without one act as
    /// their own access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub created_ms: u64,
}

impl AccessKey {
    /// The subject policies see for this key.
    pub fn subject(&self) -> &str {
        self.sub.as_deref().unwrap_or(&self.access_key_id)
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("ns", &self.ns)
            .field("role", &self.role)
            .field("sub", &self.sub)
            .finish_non_exhaustive()
    }
}

/// The access keys of one data directory, read on demand and cached.
#[derive(Debug)]
pub struct AccessKeys {
    dir: PathBuf,
    cache: RwLock<HashMap<String, AccessKey>>,
}

/// The directory keys live in.
pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("s3").join("keys")
}

/// Access key ids are `FB` and 18 characters of `A-Z0-9`; anything else never names a file.
fn valid_id(id: &str) -> bool {
    id.len() == ACCESS_KEY_ID_LEN
        && id.starts_with("FB")
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl AccessKeys {
    pub fn new(data_dir: &Path) -> Self {
        AccessKeys {
            dir: keys_dir(data_dir),
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn path_of(&self, access_key_id: &str) -> PathBuf {
        self.dir.join(format!("{access_key_id}.json"))
    }

    /// The key with this id, from the cache or its file. A cached key is only used while its
    /// file exists, so `ferrobase keys revoke` takes effect on a running server at once (the
    /// check is one `stat`, next to the signature check it saves).
    pub fn get(&self, access_key_id: &str) -> Option<AccessKey> {
        if !valid_id(access_key_id) {
            return None;
        }
        let path = self.path_of(access_key_id);
        let cached = self
            .cache
            .read()
            .expect("key cache lock")
            .get(access_key_id)
            .cloned();
        if let Some(key) = cached {
            if path.exists() {
                return Some(key);
            }
            self.cache
                .write()
                .expect("key cache lock")
                .remove(access_key_id);
            return None;
        }
        let text = std::fs::read(&path).ok()?;
        let key: AccessKey = match serde_json::from_slice(&text) {
            Ok(key) => key,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "unreadable access key file");
                return None;
            }
        };
        self.cache
            .write()
            .expect("key cache lock")
            .insert(access_key_id.to_owned(), key.clone());
        Some(key)
    }

    /// Generates and durably stores a new key, acting as `sub` when given.
    pub fn create(
        &self,
        ns: Namespace,
        role: Role,
        sub: Option<String>,
    ) -> anyhow::Result<AccessKey> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let mut rng = rand::rng();
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let pick = |rng: &mut rand::rngs::ThreadRng, set: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| set[rng.random_range(0..set.len())] as char)
                .collect()
        };
        let key = AccessKey {
            access_key_id: format!("FB{}", pick(&mut rng, UPPER, ACCESS_KEY_ID_LEN - 2)),
            secret_access_key: pick(&mut rng, ANY, SECRET_LEN),
            ns,
            role,
            sub,
            created_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64,
        };
        let path = self.dir.join(format!("{}.json", key.access_key_id));
        let temp = self.dir.join(format!(".{}.tmp", key.access_key_id));
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .with_context(|| format!("creating {}", temp.display()))?;
            file.write_all(&serde_json::to_vec(&key)?)?;
            file.sync_all()?;
        }
        std::fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(key)
    }
}

impl AccessKeys {
    /// Every stored key (of `ns` when given), oldest first; unreadable files are skipped
    /// with a warning, as `get` does.
    pub fn list(&self, ns: Option<&Namespace>) -> anyhow::Result<Vec<AccessKey>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", self.dir.display()));
            }
        };
        let mut keys = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(key) = self.get(id)
                && ns.is_none_or(|ns| key.ns == *ns)
            {
                keys.push(key);
            }
        }
        keys.sort_by(|a, b| {
            (a.created_ms, &a.access_key_id).cmp(&(b.created_ms, &b.access_key_id))
        });
        Ok(keys)
    }

    /// Deletes a key durably; `false` when there was no such key. A running server refuses
    /// it from its next request on.
    pub fn revoke(&self, access_key_id: &str) -> anyhow::Result<bool> {
        if !valid_id(access_key_id) {
            return Ok(false);
        }
        let path = self.path_of(access_key_id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => {
                return Err(error).with_context(|| format!("removing {}", path.display()));
            }
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.cache
            .write()
            .expect("key cache lock")
            .remove(access_key_id);
        Ok(true)
    }
}

impl AccessKeys {
    /// The key the server signs presigned URLs of `ns` with, created on first use. Its id is
    /// kept in `presign/{ns}` beside the key files.
    pub fn service_key(&self, ns: &Namespace, role: Role) -> anyhow::Result<AccessKey> {
        let pointer_dir = self.dir.join("presign");
        let pointer = pointer_dir.join(ns.as_str());
        if let Ok(id) = std::fs::read_to_string(&pointer)
            && let Some(key) = self.get(id.trim())
        {
            return Ok(key);
        }
        let key = self.create(ns.clone(), role, None)?;
        std::fs::create_dir_all(&pointer_dir)?;
        let temp = pointer_dir.join(format!(".{}.tmp", key.access_key_id));
        std::fs::write(&temp, &key.access_key_id)?;
        std::fs::File::open(&temp)?.sync_all()?;
        std::fs::rename(&temp, &pointer)?;
        // Two first uses at once each made a key; both stay valid, the last rename wins.
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_key_is_refused_by_an_instance_that_had_it_cached() {
        let dir = tempfile::tempdir().unwrap();
        let server = AccessKeys::new(dir.path());
        let cli = AccessKeys::new(dir.path());
        let shop = Namespace::parse("shop").unwrap();
        let key = cli.create(shop.clone(), Role::Service, None).unwrap();
        let other = cli
            .create(Namespace::parse("blog").unwrap(), Role::User, None)
            .unwrap();
        assert!(server.get(&key.access_key_id).is_some(), "cached by use");
        let listed: Vec<_> = cli
            .list(Some(&shop))
            .unwrap()
            .into_iter()
            .map(|k| k.access_key_id)
            .collect();
        assert_eq!(listed, std::slice::from_ref(&key.access_key_id));
        assert_eq!(cli.list(None).unwrap().len(), 2);
        assert!(cli.revoke(&key.access_key_id).unwrap());
        assert!(
            server.get(&key.access_key_id).is_none(),
            "revocation reaches the server's cache"
        );
        assert!(!cli.revoke(&key.access_key_id).unwrap(), "already gone");
        assert!(!cli.revoke("../../etc/passwd").unwrap());
        assert!(server.get(&other.access_key_id).is_some());
    }

    #[test]
    fn created_keys_are_found_by_another_instance() {
        let dir = tempfile::tempdir().unwrap();
        let writer = AccessKeys::new(dir.path());
        let reader = AccessKeys::new(dir.path());
        assert!(reader.get("FBAAAAAAAAAAAAAAAAAA").is_none());
        let key = writer
            .create(
                Namespace::parse("shop").unwrap(),
                Role::User,
                Some("alice".to_owned()),
            )
            .unwrap();
        let found = reader.get(&key.access_key_id).expect("found on demand");
        assert_eq!(found.secret_access_key, key.secret_access_key);
        assert_eq!(found.ns.as_str(), "shop");
        assert_eq!(found.subject(), "alice");
        assert!(reader.get("../../etc/passwd").is_none());
        assert!(
            std::fs::read_dir(keys_dir(dir.path()))
                .unwrap()
                .all(|entry| !entry
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp"))
        );
    }
}
