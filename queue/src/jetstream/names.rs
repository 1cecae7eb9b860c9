//! Where a queue lives on the NATS side: its stream, its subjects and its KV keys.
//!
//! Namespaces, queues and groups may contain characters NATS gives a meaning to (`.` splits
//! subject tokens and is not allowed in stream names), so each name becomes a token first:
//! `A-Z a-z 0-9 -` stay as they are, every other byte becomes `_XX` (upper-case hex). The
//! mapping is injective and a token never contains `__`, which therefore separates tokens
//! inside stream names.
//!
//! NATS refuses stream names over 255 bytes (they are directory names in its store), which
//! long, escaped names pass: such a stream is named after a hash of the two tokens instead
//! (see [`stream_name`]).

use ferrobase_core::Namespace;

use crate::{GroupName, QueueName};

/// `text` as a token valid in stream names, subjects and KV keys.
pub(super) fn token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

/// Longest stream name used as it is; longer ones are shortened with a hash. NATS allows 255.
const MAX_STREAM_NAME: usize = 200;

/// The stream of queue `queue` (a token) in namespace `ns` (a token): `{prefix}_q_{ns}__{queue}`,
/// or, when that is too long, `{prefix}_q_{start of ns}_h{hash of both}`. A shortened name has
/// no `__` after `_q_`, so it never equals a name used as it is; 128 bits of BLAKE3 keep
/// shortened names apart.
fn stream_name(prefix: &str, ns: &str, queue: &str) -> String {
    let full = format!("{prefix}_q_{ns}__{queue}");
    if full.len() <= MAX_STREAM_NAME {
        return full;
    }
    let hash = blake3::hash(format!("{ns}__{queue}").as_bytes());
    // Tokens are ASCII, so any byte offset is a char boundary; no trailing `_` keeps `__` out.
    let start = ns[..ns.len().min(64)].trim_end_matches('_');
    format!("{prefix}_q_{start}_h{}", hex_of(&hash.as_bytes()[..16]))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The names of one queue.
#[derive(Debug, Clone)]
pub(super) struct Names {
    stream: String,
    /// `{prefix}.q.{ns}.{queue}`; each envelope goes to `{base}.{message count}`.
    subject_base: String,
    /// `{ns}.{queue}`: the queue's key in the queues bucket, and the start of its other keys.
    key: String,
}

impl Names {
    pub(super) fn new(prefix: &str, ns: &Namespace, queue: &QueueName) -> Self {
        let (ns, queue) = (token(ns.as_str()), token(queue.as_str()));
        Names {
            stream: stream_name(prefix, &ns, &queue),
            subject_base: format!("{prefix}.q.{ns}.{queue}"),
            key: format!("{ns}.{queue}"),
        }
    }

    pub(super) fn stream(&self) -> &str {
        &self.stream
    }

    /// The subject of an envelope holding `count` messages: the count in the subject lets the
    /// server's per-subject totals tell how many messages the stream holds.
    pub(super) fn subject(&self, count: usize) -> String {
        format!("{}.{count}", self.subject_base)
    }

    /// Every envelope of the queue.
    pub(super) fn all_subjects(&self) -> String {
        format!("{}.*", self.subject_base)
    }

    pub(super) fn queue_key(&self) -> &str {
        &self.key
    }

    pub(super) fn group_key(&self, group: &GroupName) -> String {
        format!("{}.{}", self.key, token(group.as_str()))
    }

    pub(super) fn dead_key(&self, group: &GroupName, id: u64) -> String {
        format!("{}.{}.{id}", self.key, token(group.as_str()))
    }

    pub(super) fn dedup_key(&self, dedup_id: &str) -> String {
        format!("{}.{}", self.key, token(dedup_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_stream_names_are_shortened_apart_and_short_ones_kept() {
        let short = stream_name("ferrobase", "shop", "orders");
        assert_eq!(short, "ferrobase_q_shop__orders");
        let ns = token(&format!("n{}", "_".repeat(62)));
        let (a, b) = (token(&"a.".repeat(64)), token(&"b.".repeat(64)));
        let (long_a, long_b) = (
            stream_name("ferrobase", &ns, &a),
            stream_name("ferrobase", &ns, &b),
        );
        for name in [&long_a, &long_b] {
            assert!(name.len() <= MAX_STREAM_NAME, "{name}");
            assert!(!name["ferrobase_q_".len()..].contains("__"), "{name}");
        }
        assert_ne!(long_a, long_b);
        assert_eq!(
            long_a,
            stream_name("ferrobase", &ns, &a),
            "the same on every node"
        );
    }

    #[test]
    fn tokens_are_injective_and_nats_safe() {
        assert_eq!(token("orders.v2_eu-1"), "orders_2Ev2_5Feu-1");
        assert_ne!(token("a.b"), token("a_2Eb"));
        for text in ["a.b", "x y", "é", "_", "a__b"] {
            let t = token(text);
            assert!(!t.contains("__"), "{t}");
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
    }
}
