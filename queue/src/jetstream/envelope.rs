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

use crate::{MessageId, QueueError};

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
    /// Refuses counts and lengths beyond their fields (a key of `u16::MAX` bytes would read as
    /// no key) rather than wrapping them.
    pub(super) fn encode(
        published_at: u64,
        events: bool,
        items: &[Item],
    ) -> Result<Bytes, QueueError> {
        let too_long = |what: &str, len: usize| {
            QueueError::invalid(format!("{what} of {len} does not fit the envelope format"))
        };
        let size: usize = items
            .iter()
            .map(|i| 14 + i.key.as_ref().map_or(0, String::len) + i.body.len())
            .sum();
        let mut out = BytesMut::with_capacity(14 + size);
        out.put_u8(VERSION);
        out.put_u64(published_at);
        out.put_u8(u8::from(events));
        out.put_u32(u32::try_from(items.len()).map_err(|_| too_long("a batch", items.len()))?);
        for item in items {
            out.put_u64(item.delay_ms);
            match &item.key {
                // Keys are at most 256 bytes (validated before publishing).
                Some(key) => {
                    let len = u16::try_from(key.len())
                        .ok()
                        .filter(|len| *len != NO_KEY)
                        .ok_or_else(|| too_long("a key", key.len()))?;
                    out.put_u16(len);
                    out.put_slice(key.as_bytes());
                }
                None => out.put_u16(NO_KEY),
            }
            let body_len =
                u32::try_from(item.body.len()).map_err(|_| too_long("a body", item.body.len()))?;
            out.put_u32(body_len);
            out.put_slice(&item.body);
        }
        Ok(out.freeze())
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
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every key length the field can carry (all but the no-key marker) reads back.
        #[test]
        fn envelope_round_trips(
            key_len in proptest::option::of(0usize..NO_KEY as usize),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            delay_ms in any::<u64>(),
            published_at in any::<u64>(),
        ) {
            let items = vec![Item { delay_ms, key: key_len.map(|n| "k".repeat(n)), body: Bytes::from(body) }];
            let raw = Envelope::encode(published_at, false, &items).unwrap();
            let envelope = Envelope::decode(1, &raw).expect("decodes");
            prop_assert_eq!(envelope.items, items);
            prop_assert_eq!(envelope.published_at, published_at);
        }

        /// A key the field cannot carry is refused, never wrapped or read as "no key".
        #[test]
        fn oversized_keys_are_refused(key_len in NO_KEY as usize..70_000) {
            let items = vec![Item { delay_ms: 0, key: Some("k".repeat(key_len)), body: Bytes::new() }];
            prop_assert!(Envelope::encode(0, false, &items).is_err());
        }
    }

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
        let raw = Envelope::encode(42, true, &items).unwrap();
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
