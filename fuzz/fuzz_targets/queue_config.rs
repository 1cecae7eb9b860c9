//! A queue's configuration body (`PUT /v1/queues/{ns}/{queue}`) and `QueueConfig::validate`.
//!
//! Invariants: never panics; an accepted configuration is shown as a document that parses
//! back to the same configuration; validation is a function of the configuration alone.
#![no_main]

use ferrobase::routes::queue::{config_document, parse_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = parse_config(data) else {
        return;
    };
    let valid = config.validate();
    let shown = serde_json::to_vec(&config_document(&config)).expect("a document serialises");
    let again = parse_config(&shown).expect("a shown configuration parses");
    assert_eq!(again, config, "round trip changed the configuration");
    assert_eq!(
        again.validate().is_ok(),
        valid.is_ok(),
        "validation changed on round trip"
    );
    if valid.is_ok() {
        assert!((1..=1000).contains(&config.max_deliver));
        assert!(config.dedup_window.as_secs() <= 24 * 3600);
        assert_ne!(config.retention.max_messages, Some(0));
        assert!(config.retention.max_age.is_none_or(|age| !age.is_zero()));
    }
});
