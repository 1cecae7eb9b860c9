//! The sled engine's stored entry encoding (value plus metadata, `sled_engine::encode_entry`).
//!
//! Two inputs in one: arbitrary bytes must decode to `None` or to an entry that re-encodes to
//! exactly those bytes; a structured entry (through `arbitrary`) must decode back to itself.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use ferrobase_kv::model::validate_content_type;
use ferrobase_kv::sled_engine::{decode_entry, encode_entry};
use ferrobase_kv::{Entry, EntryMeta};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    raw: &'a [u8],
    version: u64,
    updated_at_ms: u64,
    expires_at_ms: Option<u64>,
    content_type: String,
    value: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    if let Some(entry) = decode_entry(input.raw) {
        assert_eq!(entry.meta.size, entry.value.len() as u64);
        assert_eq!(
            encode_entry(&entry).expect("a decoded entry encodes"),
            input.raw,
            "decode then encode is the identity"
        );
    }

    // What the engine stores: a content type `Txn::validate` accepted, a deadline or none.
    if validate_content_type(&input.content_type).is_err() {
        return;
    }
    let entry = Entry {
        value: Bytes::copy_from_slice(input.value),
        meta: EntryMeta {
            version: input.version,
            content_type: input.content_type,
            size: input.value.len() as u64,
            updated_at_ms: input.updated_at_ms,
            expires_at_ms: input.expires_at_ms.filter(|&at| at != 0),
        },
    };
    let encoded = encode_entry(&entry).expect("a valid content type encodes");
    let decoded = decode_entry(&encoded).expect("an encoded entry decodes");
    assert_eq!(decoded, entry, "encode then decode is the identity");
});
