//! The binary form of a group's entry. The entry is rewritten on every pull and ack of the
//! group and carries every pending message, so it is kept small: ids as deltas and numbers as
//! LEB128 varints, about 11 bytes a pending message against some 55 in JSON.
//!
//! Layout: version `1`, cursor, pending count, then per pending message in id order: id delta,
//! a byte of state (bits 0-1: leased 0, waiting 1, blocked 2) and flags (bit 2: key, bit 3:
//! error, bit 4: replayed), due_at, attempt, lease, key and error (length-prefixed, when
//! flagged); then dead count and per dead id: id delta, lease.

use bytes::{BufMut, Bytes, BytesMut};

use super::records::GroupState;
use crate::QueueError;
use crate::delivery::{Pending, PendingState};

const VERSION: u8 = 1;
const HAS_KEY: u8 = 1 << 2;
const HAS_ERROR: u8 = 1 << 3;
const REPLAYED: u8 = 1 << 4;

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_text(out: &mut BytesMut, text: &str) {
    put_varint(out, text.len() as u64);
    out.put_slice(text.as_bytes());
}

/// Reads the encoded form front to back; every read fails cleanly on truncated input.
struct Reader<'a> {
    raw: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.raw.split_first()?;
        self.raw = rest;
        Some(*first)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.raw.len() {
            return None;
        }
        let (text, rest) = self.raw.split_at(len);
        self.raw = rest;
        String::from_utf8(text.to_vec()).ok()
    }
}

impl GroupState {
    pub(super) fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(16 + self.pending.len() * 12 + self.dead.len() * 4);
        out.put_u8(VERSION);
        put_varint(&mut out, self.cursor);
        put_varint(&mut out, self.pending.len() as u64);
        let mut previous = 0;
        for (id, pending) in &self.pending {
            put_varint(&mut out, id - previous);
            previous = *id;
            let mut flags = match pending.state {
                PendingState::Leased => 0,
                PendingState::Waiting => 1,
                PendingState::Blocked => 2,
            };
            if pending.key.is_some() {
                flags |= HAS_KEY;
            }
            if pending.last_error.is_some() {
                flags |= HAS_ERROR;
            }
            if self.replayed.contains(id) {
                flags |= REPLAYED;
            }
            out.put_u8(flags);
            put_varint(&mut out, pending.due_at);
            put_varint(&mut out, u64::from(pending.attempt));
            put_varint(&mut out, pending.lease);
            if let Some(key) = &pending.key {
                put_text(&mut out, key);
            }
            if let Some(error) = &pending.last_error {
                put_text(&mut out, error);
            }
        }
        put_varint(&mut out, self.dead.len() as u64);
        let mut previous = 0;
        for (id, lease) in &self.dead {
            put_varint(&mut out, id - previous);
            previous = *id;
            put_varint(&mut out, *lease);
        }
        out.freeze()
    }

    pub(super) fn decode(raw: &[u8]) -> Result<GroupState, QueueError> {
        Self::read(&mut Reader { raw })
            .ok_or_else(|| QueueError::Storage("corrupt consumer group entry".into()))
    }

    fn read(reader: &mut Reader<'_>) -> Option<GroupState> {
        if reader.byte()? != VERSION {
            return None;
        }
        let mut state = GroupState {
            cursor: reader.varint()?,
            ..GroupState::default()
        };
        let mut id = 0u64;
        for _ in 0..reader.varint()? {
            id = id.checked_add(reader.varint()?)?;
            let flags = reader.byte()?;
            let pending_state = match flags & 0b11 {
                0 => PendingState::Leased,
                1 => PendingState::Waiting,
                2 => PendingState::Blocked,
                _ => return None,
            };
            let due_at = reader.varint()?;
            let attempt = u32::try_from(reader.varint()?).ok()?;
            let lease = reader.varint()?;
            let key = if flags & HAS_KEY != 0 {
                Some(reader.text()?)
            } else {
                None
            };
            let last_error = if flags & HAS_ERROR != 0 {
                Some(reader.text()?)
            } else {
                None
            };
            let pending = Pending {
                state: pending_state,
                due_at,
                attempt,
                lease,
                key,
                last_error,
            };
            if flags & REPLAYED != 0 {
                state.replayed.insert(id);
            }
            state.pending.insert(id, pending);
        }
        let mut id = 0u64;
        for _ in 0..reader.varint()? {
            id = id.checked_add(reader.varint()?)?;
            state.dead.insert(id, reader.varint()?);
        }
        reader.raw.is_empty().then_some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_entries_round_trip_compactly() {
        let mut state = GroupState {
            cursor: 7 << 20 | 3,
            ..GroupState::default()
        };
        for (i, pending_state) in [
            PendingState::Leased,
            PendingState::Waiting,
            PendingState::Blocked,
        ]
        .into_iter()
        .enumerate()
        {
            let i = i as u64;
            state.pending.insert(
                (5 << 20) + i,
                Pending {
                    state: pending_state,
                    due_at: 1_764_180_000_000 + i,
                    attempt: i as u32 + 1,
                    lease: i + 1,
                    key: (i > 0).then(|| format!("key-{i}")),
                    last_error: (i == 1).then(|| "boom é".to_owned()),
                },
            );
            if i == 2 {
                state.replayed.insert((5 << 20) + i);
            }
        }
        state.dead.insert(3 << 20, 4);
        state.dead.insert(6 << 20, 1);
        let raw = state.encode();
        assert_eq!(GroupState::decode(&raw).unwrap(), state);
        assert!(GroupState::decode(&raw[..raw.len() - 1]).is_err());
        assert!(GroupState::decode(b"").is_err());

        let mut leased = GroupState::default();
        for id in 0..1000u64 {
            let pending = Pending {
                state: PendingState::Leased,
                due_at: 1_764_180_000_000 + id,
                attempt: 1,
                lease: 1,
                key: None,
                last_error: None,
            };
            leased.pending.insert((100 << 20) + id, pending);
        }
        assert!(
            leased.encode().len() < 12 * 1000,
            "{}",
            leased.encode().len()
        );
    }
}
