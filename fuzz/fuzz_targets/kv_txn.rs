//! The body of `POST /v1/kv/{ns}/_txn`: JSON parsed into a transaction, then validated.
//!
//! Invariants: never panics; a body that parses gives a transaction of exactly the body's
//! checks and ops, in order, with keys that re-parse as keys; `Txn::validate` then either
//! accepts it (within the operation limit, no key mutated twice, TTLs in range, content types
//! that fit a header of at most 255 bytes) or says why.
#![no_main]

use ferrobase::routes::kv::parse_txn;
use ferrobase_kv::model::{MAX_CONTENT_TYPE_BYTES, MAX_TTL, MAX_TXN_OPERATIONS};
use ferrobase_kv::{Key, KvLimits, Mutation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(txn) = parse_txn(data) else {
        return;
    };
    let body: serde_json::Value = serde_json::from_slice(data).expect("parse_txn accepted JSON");
    let ops = body["ops"].as_array().map_or(0, Vec::len);
    let checks = body
        .get("checks")
        .and_then(|c| c.as_array())
        .map_or(0, Vec::len);
    assert_eq!(txn.mutations.len(), ops, "one mutation per op");
    assert_eq!(txn.checks.len(), checks, "one check per check");
    for (mutation, op) in txn
        .mutations
        .iter()
        .zip(body["ops"].as_array().into_iter().flatten())
    {
        assert_eq!(
            Some(mutation.key().as_str()),
            op["key"].as_str(),
            "keys keep their text"
        );
        assert!(Key::parse(mutation.key().as_str()).is_ok_and(|key| &key == mutation.key()));
    }
    for check in &txn.checks {
        assert!(Key::parse(check.key().as_str()).is_ok_and(|key| &key == check.key()));
    }
    let limits = KvLimits::default();
    if txn.validate(&limits).is_ok() {
        assert!(
            !txn.mutations.is_empty(),
            "a valid body has at least one op"
        );
        assert!(txn.checks.len() + txn.mutations.len() <= MAX_TXN_OPERATIONS);
        let mut keys = std::collections::HashSet::new();
        for mutation in &txn.mutations {
            assert!(
                keys.insert(mutation.key()),
                "a key mutated twice was accepted"
            );
            if let Mutation::Put {
                value,
                ttl,
                content_type,
                ..
            } = mutation
            {
                assert!(value.len() <= limits.max_value_bytes);
                assert!((1..=MAX_CONTENT_TYPE_BYTES).contains(&content_type.len()));
                assert!(
                    http::HeaderValue::from_str(content_type).is_ok(),
                    "{content_type:?}"
                );
                assert!(ttl.is_none_or(|ttl| !ttl.is_zero() && ttl <= MAX_TTL));
            }
        }
    }
});
