//! The batch envelope: one stream message carries one whole publish call, which is how a batch
//! is all or nothing on servers without atomic batch publishing (before 2.12).
//!
//! A message's id packs the envelope's stream sequence and the message's index in it:
//! `sequence << INDEX_BITS | index`. Ids therefore grow in publish order and are consecutive
//! within a batch.
//!
//! Layout (big-endian): version `1`, published_at u64 (the engine's clock), flags u8 (bit 0:
//! emit events), count u32, then per message: delay_ms u64, key length u16 (`0xFFFF`: no key),
//! key, body length u32, body.

use bytes::{BufMut, Bytes, BytesMut};

use crate::MessageId;

/// Bits of a message id that hold the index within its envelope.
pub(super) const INDEX_BITS: u32 = 20;
/// Most messages one envelope can hold.
pub(super) const MAX_ENVELOPE: usize = 1 << INDEX_BITS;

const VERSION: u8 = 1;
const NO_KEY: u16 = u16::MAX;

pub(super) fn message_id(seq: u64, index: usize) -> MessageId {
    MessageId(seq << INDEX_BITS | index as u64)
}

/// (stream sequence, index in the envelope) of a message id.
pub(super) fn split(id: u64) -> (u64, usize) {
    (id >> INDEX_BITS, (id & (MAX_ENVELOPE as u64 - 1)) as usize)
}

/// One message of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Item {
    pub delay_ms: u64,
    pub key: Option<String>,
    pub body: Bytes,
}

/// A decoded envelope, with the stream sequence it was stored at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Envelope {
    pub seq: u64,
    pub published_at: u64,
    pub events: bool,
    pub items: Vec<Item>,
}

impl Envelope {
    pub(super) fn encode(published_at: u64, events: bool, items: &[Item]) -> Bytes {
        let size: usize = items
            .iter()
            .map(|i| 14 + i.key.as_ref().map_or(0, String::len) + i.body.len())
            .sum();
        let mut out = BytesMut::with_capacity(14 + size);
        out.put_u8(VERSION);
        out.put_u64(published_at);
        out.put_u8(u8::from(events));
        out.put_u32(items.len() as u32);
        for item in items {
            out.put_u64(item.delay_ms);
            match &item.key {
                // Keys are at most 256 bytes (validated before publishing).
                Some(key) => {
                    out.put_u16(key.len() as u16);
                    out.put_slice(key.as_bytes());
                }
                None => out.put_u16(NO_KEY),
            }
            out.put_u32(item.body.len() as u32);
            out.put_slice(&item.body);
        }
        out.freeze()
    }

    /// Decodes a payload; bodies share its buffer. `None` when it is not an envelope.
    pub(super) fn decode(seq: u64, payload: &Bytes) -> Option<Envelope> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<std::ops::Range<usize>> {
            let range = at..at.checked_add(n)?;
            (range.end <= payload.len()).then(|| {
                at = range.end;
                range
            })
        };
        let be = |range: std::ops::Range<usize>| {
            payload[range]
                .iter()
                .fold(0u64, |acc, b| acc << 8 | u64::from(*b))
        };
        if payload[take(1)?][0] != VERSION {
            return None;
        }
        let published_at = be(take(8)?);
        let events = payload[take(1)?][0] & 1 == 1;
        let count = be(take(4)?) as usize;
        let mut items = Vec::with_capacity(count.min(MAX_ENVELOPE));
        for _ in 0..count {
            let delay_ms = be(take(8)?);
            let key_len = be(take(2)?) as u16;
            let key = if key_len == NO_KEY {
                None
            } else {
                let range = take(key_len as usize)?;
                Some(String::from_utf8(payload[range].to_vec()).ok()?)
            };
            let body_len = be(take(4)?) as usize;
            let body = payload.slice(take(body_len)?);
            items.push(Item {
                delay_ms,
                key,
                body,
            });
        }
        Some(Envelope {
            seq,
            published_at,
            events,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let items = vec![
            Item {
                delay_ms: 5,
                key: Some("k".into()),
                body: Bytes::from_static(b"hello"),
            },
            Item {
                delay_ms: 0,
                key: None,
                body: Bytes::new(),
            },
        ];
        let raw = Envelope::encode(42, true, &items);
        let envelope = Envelope::decode(7, &raw).expect("decodes");
        assert_eq!(envelope.items, items);
        assert_eq!(
            (envelope.seq, envelope.published_at, envelope.events),
            (7, 42, true)
        );
        assert!(Envelope::decode(7, &raw.slice(..raw.len() - 1)).is_none());
        assert!(Envelope::decode(7, &Bytes::from_static(b"x")).is_none());
    }

    #[test]
    fn ids_pack_sequence_and_index() {
        let id = message_id(3, 2);
        assert_eq!(split(id.0), (3, 2));
        assert_eq!(message_id(3, 3).0, id.0 + 1);
        assert!(message_id(4, 0) > message_id(3, MAX_ENVELOPE - 1));
    }
}
