//! The vocabulary of the KV service: keys, entries, transactions, listing.

use std::time::Duration;

use bytes::Bytes;
use ferrobase_core::event::Causation;
use ferrobase_core::records::EventDraft;
use serde::Serialize;

use crate::KvError;

/// Longest key accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest TTL accepted: about ten years, far beyond any cache use, short of overflow.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// Most checks plus mutations one transaction may carry.
pub const MAX_TXN_OPERATIONS: usize = 128;
/// Longest content type accepted, in bytes; it is served back as a `Content-Type` header.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// A validated key: 1 to 1024 bytes of UTF-8 without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Key(String);

impl Key {
    pub fn parse(key: &str) -> Result<Self, KvError> {
        if key.is_empty() {
            return Err(KvError::InvalidKey("key must not be empty".into()));
        }
        validate_key_text(key)?;
        Ok(Key(key.to_owned()))
    }

    /// A key in the record space of [`ferrobase_core::records`]: prefixed with U+0001, which
    /// no client key can contain, so records never collide with KV keys, are not listed
    /// among them, and their writes emit no KV events.
    pub fn internal(record_key: &str) -> Result<Self, KvError> {
        validate_key_text(record_key)?;
        Ok(Key(format!("{INTERNAL_PREFIX}{record_key}")))
    }

    pub fn is_internal(&self) -> bool {
        self.0.starts_with(INTERNAL_PREFIX)
    }

    /// A key read back from an engine's storage, where internal keys appear too.
    pub fn from_stored(raw: &[u8]) -> Result<Self, KvError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| KvError::Storage("stored key is not UTF-8".into()))?;
        match text.strip_prefix(INTERNAL_PREFIX) {
            Some(record_key) => Key::internal(record_key),
            None => Key::parse(text),
        }
    }

    /// The record key of an internal key (without the prefix).
    pub fn record_key(&self) -> Option<&str> {
        self.0.strip_prefix(INTERNAL_PREFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Marks keys of the record space; a control character, so never part of a client key.
pub const INTERNAL_PREFIX: char = '\u{1}';

/// Lets maps keyed by [`Key`] be searched with plain `&str` ranges (listing by prefix).
impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Checks the length and characters of a key or key prefix.
pub fn validate_key_text(text: &str) -> Result<(), KvError> {
    if text.len() > MAX_KEY_BYTES {
        return Err(KvError::InvalidKey(format!(
            "key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            text.len()
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(KvError::InvalidKey(format!(
            "key contains the control character U+{:04X}",
            c as u32
        )));
    }
    Ok(())
}

/// Checks a content type: 1 to [`MAX_CONTENT_TYPE_BYTES`] bytes of visible ASCII (tab
/// allowed), exactly what an HTTP header value can carry.
pub fn validate_content_type(content_type: &str) -> Result<(), KvError> {
    let visible = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b);
    if content_type.is_empty()
        || content_type.len() > MAX_CONTENT_TYPE_BYTES
        || !content_type.bytes().all(visible)
    {
        return Err(KvError::InvalidArgument(format!(
            "content type must be 1 to {MAX_CONTENT_TYPE_BYTES} visible ASCII characters"
        )));
    }
    Ok(())
}

/// Size limits enforced by every engine before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_value_bytes: 1024 * 1024,
        }
    }
}

/// Everything about a stored value but the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryMeta {
    /// The namespace log offset of the write that stored this value.
    pub version: u64,
    pub content_type: String,
    pub size: u64,
    /// Milliseconds since the epoch of the write.
    pub updated_at_ms: u64,
    /// Milliseconds since the epoch after which the entry is gone, if it has a TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

impl EntryMeta {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A stored value with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Bytes,
    pub meta: EntryMeta,
}

/// A condition a transaction requires before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key exists (and is not expired) with exactly this version.
    Version { key: Key, version: u64 },
    /// The key exists, whatever its version (`If-Match: *`).
    Exists { key: Key },
    /// The key does not exist (`If-None-Match: *`).
    Absent { key: Key },
}

impl Check {
    pub fn key(&self) -> &Key {
        match self {
            Check::Version { key, .. } | Check::Exists { key } | Check::Absent { key } => key,
        }
    }
}

/// A change a transaction makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put {
        key: Key,
        value: Bytes,
        content_type: String,
        ttl: Option<Duration>,
    },
    Delete {
        key: Key,
    },
}

impl Mutation {
    pub fn key(&self) -> &Key {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// Checks and mutations applied all or nothing, with the causal context of the writer, and
/// extra events (changes other services made, recorded through internal keys) appended after
/// the mutations' own events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    pub checks: Vec<Check>,
    pub mutations: Vec<Mutation>,
    pub causation: Causation,
    pub events: Vec<EventDraft>,
}

impl Txn {
    /// A single put guarded by optional checks.
    pub fn put(key: Key, value: Bytes, content_type: impl Into<String>) -> Self {
        Txn {
            mutations: vec![Mutation::Put {
                key,
                value,
                content_type: content_type.into(),
                ttl: None,
            }],
            ..Txn::default()
        }
    }

    /// A single delete.
    pub fn delete(key: Key) -> Self {
        Txn {
            mutations: vec![Mutation::Delete { key }],
            ..Txn::default()
        }
    }

    pub fn with_check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        for mutation in &mut self.mutations {
            if let Mutation::Put { ttl: slot, .. } = mutation {
                *slot = Some(ttl);
            }
        }
        self
    }

    /// Rejects transactions no engine should attempt: empty, oversized, over-long TTLs, bad
    /// content types, or several mutations of one key (their order would be a guess).
    pub fn validate(&self, limits: &KvLimits) -> Result<(), KvError> {
        if self.mutations.is_empty() && self.events.is_empty() {
            return Err(KvError::InvalidArgument(
                "a transaction needs at least one mutation or event".into(),
            ));
        }
        let operations = self.checks.len() + self.mutations.len() + self.events.len();
        if operations > MAX_TXN_OPERATIONS {
            return Err(KvError::TxnTooLarge(format!(
                "{operations} checks and mutations; the limit is {MAX_TXN_OPERATIONS}"
            )));
        }
        let mut keys = std::collections::HashSet::new();
        for mutation in &self.mutations {
            if !keys.insert(mutation.key()) {
                return Err(KvError::InvalidArgument(format!(
                    "key {:?} is mutated more than once in one transaction",
                    mutation.key().as_str()
                )));
            }
            if let Mutation::Put {
                value,
                ttl,
                content_type,
                ..
            } = mutation
            {
                validate_content_type(content_type)?;
                if value.len() > limits.max_value_bytes {
                    return Err(KvError::ValueTooLarge {
                        size: value.len(),
                        max: limits.max_value_bytes,
                    });
                }
                if let Some(ttl) = ttl
                    && (ttl.is_zero() || *ttl > MAX_TTL)
                {
                    return Err(KvError::InvalidArgument(format!(
                        "ttl must be between 1 second and {} seconds",
                        MAX_TTL.as_secs()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// What one mutation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MutationResult {
    Put {
        key: Key,
        version: u64,
    },
    /// `existed` is false when there was nothing to delete (no event is written then).
    Delete {
        key: Key,
        existed: bool,
    },
}

/// The results of a committed transaction, in mutation order, and the log offsets of its
/// extra events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxnOutcome {
    pub results: Vec<MutationResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_offsets: Vec<u64>,
}

/// A page of keys in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Only keys sorting strictly after this (the previous page's cursor).
    pub after: Option<String>,
    pub limit: usize,
}

impl ListQuery {
    /// Internal keys are listed only when the prefix asks for them (the record space).
    pub fn includes(&self, key: &Key) -> bool {
        !key.is_internal() || self.prefix.starts_with(INTERNAL_PREFIX)
    }
}

/// Keys (with metadata) in ascending byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub entries: Vec<(Key, EntryMeta)>,
    /// Set when more keys may follow: pass it as `after` for the next page.
    pub next: Option<String>,
}
