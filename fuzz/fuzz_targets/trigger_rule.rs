//! Trigger and rule specs (`PUT /v1/triggers/...`, `PUT /v1/rules/...`) and cron schedules.
//!
//! The first byte picks the parser: trigger spec, rule spec, or a cron line `schedule\ttz`.
//! Invariants: never panics; an accepted spec serialises to JSON that parses back to the same
//! spec and validates again; an accepted cron schedule has 5 or 6 fields and yields a next
//! occurrence computation without panicking.
#![no_main]

use ferrobase_functions::model::Validate;
use ferrobase_functions::triggers::model::{RuleSpec, Schedule, TriggerSpec};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
    validate: impl Fn(&T) -> bool,
) {
    let Ok(spec) = serde_json::from_slice::<T>(data) else {
        return;
    };
    if !validate(&spec) {
        return;
    }
    let text = serde_json::to_vec(&spec).expect("a spec serialises");
    let again: T = serde_json::from_slice(&text).expect("a serialised spec parses");
    assert_eq!(again, spec, "round trip changed the spec");
    assert!(validate(&again), "a round-tripped valid spec validates");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => round_trip::<TriggerSpec>(rest, |spec| spec.validate().is_ok()),
        1 => round_trip::<RuleSpec>(rest, |spec| spec.validate().is_ok()),
        _ => {
            let Ok(line) = std::str::from_utf8(rest) else {
                return;
            };
            let (schedule, tz) = line.split_once('\t').unwrap_or((line, "UTC"));
            if let Ok(parsed) = Schedule::parse(schedule, tz) {
                assert!((5..=6).contains(&schedule.split_whitespace().count()));
                let start = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0)
                    .expect("a valid instant")
                    .with_timezone(&parsed.tz);
                let _ = parsed.cron.find_next_occurrence(&start, false);
            }
        }
    }
});
