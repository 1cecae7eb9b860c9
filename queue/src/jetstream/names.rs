//! Where a queue lives on the NATS side: its stream, its subjects and its KV keys.
//!
//! Namespaces, queues and groups may contain characters NATS gives a meaning to (`.` splits
//! subject tokens and is not allowed in stream names), so each name becomes a token first:
//! `A-Z a-z 0-9 -` stay as they are, every other byte becomes `_XX` (upper-case hex). The
//! mapping is injective and a token never contains `__`, which therefore separates tokens
//! inside stream names.

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
            stream: format!("{prefix}_q_{ns}__{queue}"),
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
