//! Key layout and record encodings of the embedded engine.
//!
//! Everything lives in one sled tree. A key starts with a kind byte, then the queue's scope
//! `ns 0x00 queue 0x00`, so that each kind of each queue sorts together; group-scoped kinds add
//! `group 0x00`. Names, keys and dedup ids cannot contain 0x00, so the separators are safe.
//! Numbers are big-endian so that they sort numerically.
//!
//! | kind | key after the scope | value |
//! |---|---|---|
//! | `c` config | – | [`StoredConfig`] JSON |
//! | `s` last sequence | – | u64 |
//! | `m` message | seq | [`StoredMessage`] |
//! | `g` group | group | cursor: the next sequence the group has not yet taken |
//! | `p` pending | group, seq | [`Pending`]: taken by the group, not yet finished |
//! | `k` key queue | group, key 0x00, seq | empty: pending entries of one ordering key, in order |
//! | `l` dead letter | group, seq | [`StoredDead`] |
//! | `u` dedup | dedup id | seq, published_at |
//! | `t` dedup times | published_at, dedup id | empty: the `u` entries in expiry order |
//! | `o` outbox | seq | event draft JSON, waiting to be relayed to the change log |

use std::time::Duration;

use bytes::Bytes;
use ferrobase_core::Namespace;
use serde::{Deserialize, Serialize};

use crate::delivery::{Pending, PendingState};
use crate::model::SaturatingMillis;
use crate::{EventEmission, GroupName, QueueConfig, QueueError, QueueName, Retention};

pub(super) const CONFIG: u8 = b'c';
pub(super) const SEQ: u8 = b's';
pub(super) const MESSAGE: u8 = b'm';
pub(super) const GROUP: u8 = b'g';
pub(super) const PENDING: u8 = b'p';
pub(super) const KEY_QUEUE: u8 = b'k';
pub(super) const DEAD: u8 = b'l';
pub(super) const DEDUP: u8 = b'u';
pub(super) const DEDUP_TIME: u8 = b't';
pub(super) const OUTBOX: u8 = b'o';

/// The key prefixes of one queue.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    /// `ns 0x00 queue 0x00`
    base: Vec<u8>,
}

impl Scope {
    pub(super) fn new(ns: &Namespace, queue: &QueueName) -> Self {
        let mut base = Vec::with_capacity(ns.as_str().len() + queue.as_str().len() + 2);
        base.extend_from_slice(ns.as_str().as_bytes());
        base.push(0);
        base.extend_from_slice(queue.as_str().as_bytes());
        base.push(0);
        Scope { base }
    }

    /// The prefix of every key of `kind` in this queue.
    pub(super) fn prefix(&self, kind: u8) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.base.len() + 32);
        key.push(kind);
        key.extend_from_slice(&self.base);
        key
    }

    fn with_seq(&self, kind: u8, seq: u64) -> Vec<u8> {
        let mut key = self.prefix(kind);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    pub(super) fn config(&self) -> Vec<u8> {
        self.prefix(CONFIG)
    }

    pub(super) fn last_seq(&self) -> Vec<u8> {
        self.prefix(SEQ)
    }

    pub(super) fn message(&self, seq: u64) -> Vec<u8> {
        self.with_seq(MESSAGE, seq)
    }

    pub(super) fn outbox(&self, seq: u64) -> Vec<u8> {
        self.with_seq(OUTBOX, seq)
    }

    pub(super) fn group(&self, group: &GroupName) -> Vec<u8> {
        let mut key = self.prefix(GROUP);
        key.extend_from_slice(group.as_str().as_bytes());
        key
    }

    pub(super) fn dedup_time(&self, at: u64, id: &str) -> Vec<u8> {
        let mut key = self.prefix(DEDUP_TIME);
        key.extend_from_slice(&at.to_be_bytes());
        key.extend_from_slice(id.as_bytes());
        key
    }

    pub(super) fn dedup(&self, id: &str) -> Vec<u8> {
        let mut key = self.prefix(DEDUP);
        key.extend_from_slice(id.as_bytes());
        key
    }

    /// The prefix of `kind` entries of one group.
    pub(super) fn group_prefix(&self, kind: u8, group: &GroupName) -> Vec<u8> {
        let mut key = self.prefix(kind);
        key.extend_from_slice(group.as_str().as_bytes());
        key.push(0);
        key
    }

    pub(super) fn pending(&self, group: &GroupName, seq: u64) -> Vec<u8> {
        let mut key = self.group_prefix(PENDING, group);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    pub(super) fn dead(&self, group: &GroupName, seq: u64) -> Vec<u8> {
        let mut key = self.group_prefix(DEAD, group);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    pub(super) fn key_queue_prefix(&self, group: &GroupName, ordering_key: &str) -> Vec<u8> {
        let mut key = self.group_prefix(KEY_QUEUE, group);
        key.extend_from_slice(ordering_key.as_bytes());
        key.push(0);
        key
    }

    pub(super) fn key_queue(&self, group: &GroupName, ordering_key: &str, seq: u64) -> Vec<u8> {
        let mut key = self.key_queue_prefix(group, ordering_key);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }
}

/// Namespace and queue of a key of any kind whose scope follows the kind byte.
pub(super) fn parse_scope(raw: &[u8]) -> Option<(Namespace, QueueName)> {
    let rest = raw.get(1..)?;
    let ns_end = rest.iter().position(|&b| b == 0)?;
    let ns = Namespace::parse_stored(std::str::from_utf8(&rest[..ns_end]).ok()?).ok()?;
    let rest = &rest[ns_end + 1..];
    let queue_end = rest.iter().position(|&b| b == 0)?;
    let queue = QueueName::parse(std::str::from_utf8(&rest[..queue_end]).ok()?).ok()?;
    Some((ns, queue))
}

/// The trailing big-endian u64 of a key (a sequence number).
pub(super) fn trailing_u64(raw: &[u8]) -> u64 {
    raw.len()
        .checked_sub(8)
        .map_or(0, |start| decode_u64(&raw[start..]))
}

pub(super) fn decode_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let len = bytes.len().min(8);
    buf[8 - len..].copy_from_slice(&bytes[..len]);
    u64::from_be_bytes(buf)
}

/// A small cursor over a record's bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(decode_u64)
    }
    /// A u16-length-prefixed optional text; length 0 is none (keys are never empty).
    fn short_text(&mut self) -> Option<Option<String>> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        if len == 0 {
            return Some(None);
        }
        Some(Some(std::str::from_utf8(self.take(len)?).ok()?.to_owned()))
    }
    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Refuses a text longer than its 16-bit length field holds, rather than wrapping it (keys are
/// validated to far less before they get here).
fn put_short_text(out: &mut Vec<u8>, text: Option<&str>) -> Result<(), QueueError> {
    let bytes = text.unwrap_or("").as_bytes();
    let len = u16::try_from(bytes.len()).map_err(|_| too_long("a key", bytes.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn too_long(what: &str, len: usize) -> QueueError {
    QueueError::invalid(format!(
        "{what} of {len} bytes does not fit the stored format"
    ))
}

/// A published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredMessage {
    pub published_at: u64,
    /// Not deliverable before this time (publish time plus delay).
    pub deliver_at: u64,
    pub key: Option<String>,
    pub body: Bytes,
}

impl StoredMessage {
    pub(super) fn encode(&self) -> Result<Vec<u8>, QueueError> {
        let mut out = Vec::with_capacity(18 + self.body.len() + 16);
        out.extend_from_slice(&self.published_at.to_be_bytes());
        out.extend_from_slice(&self.deliver_at.to_be_bytes());
        put_short_text(&mut out, self.key.as_deref())?;
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    pub(super) fn decode(raw: &[u8]) -> Option<Self> {
        let mut reader = Reader(raw);
        let published_at = reader.u64()?;
        let deliver_at = reader.u64()?;
        let key = reader.short_text()?;
        Some(StoredMessage {
            published_at,
            deliver_at,
            key,
            body: Bytes::copy_from_slice(reader.rest()),
        })
    }
}

impl Pending {
    pub(super) fn encode(&self) -> Result<Vec<u8>, QueueError> {
        let mut out = Vec::with_capacity(32);
        out.push(match self.state {
            PendingState::Waiting => 0,
            PendingState::Leased => 1,
            PendingState::Blocked => 2,
        });
        out.extend_from_slice(&self.due_at.to_be_bytes());
        out.extend_from_slice(&self.attempt.to_be_bytes());
        out.extend_from_slice(&self.lease.to_be_bytes());
        put_short_text(&mut out, self.key.as_deref())?;
        if let Some(error) = &self.last_error {
            out.extend_from_slice(error.as_bytes());
        }
        Ok(out)
    }

    pub(super) fn decode(raw: &[u8]) -> Option<Self> {
        let mut reader = Reader(raw);
        let state = match reader.u8()? {
            0 => PendingState::Waiting,
            1 => PendingState::Leased,
            2 => PendingState::Blocked,
            _ => return None,
        };
        let due_at = reader.u64()?;
        let attempt = reader.u32()?;
        let lease = reader.u64()?;
        let key = reader.short_text()?;
        let error = reader.rest();
        let last_error = (!error.is_empty()).then(|| String::from_utf8_lossy(error).into_owned());
        Some(Pending {
            state,
            due_at,
            attempt,
            lease,
            key,
            last_error,
        })
    }
}

/// A dead letter: the message's body travels with it, so that reclaiming consumed messages
/// never takes a dead letter's body away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredDead {
    pub dead_at: u64,
    pub published_at: u64,
    pub attempts: u32,
    pub lease: u64,
    pub key: Option<String>,
    pub last_error: String,
    pub body: Bytes,
}

impl StoredDead {
    pub(super) fn encode(&self) -> Result<Vec<u8>, QueueError> {
        let error_len = u32::try_from(self.last_error.len())
            .map_err(|_| too_long("an error", self.last_error.len()))?;
        let mut out = Vec::with_capacity(48 + self.last_error.len() + self.body.len());
        out.extend_from_slice(&self.dead_at.to_be_bytes());
        out.extend_from_slice(&self.published_at.to_be_bytes());
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.lease.to_be_bytes());
        put_short_text(&mut out, self.key.as_deref())?;
        out.extend_from_slice(&error_len.to_be_bytes());
        out.extend_from_slice(self.last_error.as_bytes());
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    pub(super) fn decode(raw: &[u8]) -> Option<Self> {
        let mut reader = Reader(raw);
        let dead_at = reader.u64()?;
        let published_at = reader.u64()?;
        let attempts = reader.u32()?;
        let lease = reader.u64()?;
        let key = reader.short_text()?;
        let error_len = reader.u32()? as usize;
        let last_error = String::from_utf8_lossy(reader.take(error_len)?).into_owned();
        Some(StoredDead {
            dead_at,
            published_at,
            attempts,
            lease,
            key,
            last_error,
            body: Bytes::copy_from_slice(reader.rest()),
        })
    }
}

/// The configuration as stored (durations in milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredConfig {
    max_deliver: u32,
    max_age_ms: Option<u64>,
    max_messages: Option<u64>,
    emit_events: bool,
    dedup_window_ms: u64,
}

impl StoredConfig {
    pub(crate) fn emits_events(&self) -> bool {
        self.emit_events
    }
}

impl From<&QueueConfig> for StoredConfig {
    fn from(config: &QueueConfig) -> Self {
        StoredConfig {
            max_deliver: config.max_deliver,
            max_age_ms: config.retention.max_age.map(|age| age.saturating_ms()),
            max_messages: config.retention.max_messages,
            emit_events: config.events == EventEmission::On,
            dedup_window_ms: config.dedup_window.saturating_ms(),
        }
    }
}

impl From<StoredConfig> for QueueConfig {
    fn from(stored: StoredConfig) -> Self {
        QueueConfig {
            max_deliver: stored.max_deliver,
            retention: Retention {
                max_age: stored.max_age_ms.map(Duration::from_millis),
                max_messages: stored.max_messages,
            },
            events: if stored.emit_events {
                EventEmission::On
            } else {
                EventEmission::Off
            },
            dedup_window: Duration::from_millis(stored.dedup_window_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every key length the 16-bit field holds reads back (0 is "no key": keys are never
        /// empty).
        #[test]
        fn messages_round_trip(
            key_len in 1usize..=u16::MAX as usize,
            body in proptest::collection::vec(any::<u8>(), 0..256),
            published_at in any::<u64>(),
            deliver_at in any::<u64>(),
        ) {
            let message = StoredMessage { published_at, deliver_at, key: Some("k".repeat(key_len)), body: Bytes::from(body) };
            prop_assert_eq!(StoredMessage::decode(&message.encode().unwrap()), Some(message));
        }

        #[test]
        fn oversized_keys_are_refused(key_len in u16::MAX as usize + 1..140_000) {
            let message = StoredMessage { published_at: 0, deliver_at: 0, key: Some("k".repeat(key_len)), body: Bytes::new() };
            prop_assert!(message.encode().is_err());
        }
    }

    #[test]
    fn records_round_trip() {
        let message = StoredMessage {
            published_at: 1,
            deliver_at: 2,
            key: Some("k".into()),
            body: Bytes::from_static(b"{\"a\":1}"),
        };
        assert_eq!(
            StoredMessage::decode(&message.encode().unwrap()),
            Some(message)
        );
        let pending = Pending {
            state: PendingState::Leased,
            due_at: 9,
            attempt: 3,
            lease: 4,
            key: None,
            last_error: Some("boom".into()),
        };
        assert_eq!(Pending::decode(&pending.encode().unwrap()), Some(pending));
        let dead = StoredDead {
            dead_at: 5,
            published_at: 1,
            attempts: 5,
            lease: 5,
            key: Some("k".into()),
            last_error: "lease expired".into(),
            body: Bytes::from_static(b"x"),
        };
        assert_eq!(StoredDead::decode(&dead.encode().unwrap()), Some(dead));
        assert_eq!(Pending::decode(&[7]), None);
    }

    #[test]
    fn scopes_parse_back() {
        let ns = Namespace::parse("shop").unwrap();
        let queue = QueueName::parse("orders").unwrap();
        let scope = Scope::new(&ns, &queue);
        assert_eq!(parse_scope(&scope.message(7)), Some((ns, queue)));
        assert_eq!(trailing_u64(&scope.message(7)), 7);
    }
}
