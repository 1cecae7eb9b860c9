//! The policy language: a JSON policy document, as `PUT /v1/policies/{ns}` stores it.
//!
//! Input: the document, optionally followed by a NUL byte and a probe `sub\0path` that is
//! authorised against the policy when it validates.
//! Invariants: parsing and [`Policy::validate`] never panic; a valid policy serialises to a
//! document that parses back to the same policy and validates again; evaluation never panics,
//! deny rules win (a request the policy allows is allowed by its allow rules alone, and no
//! request is allowed by its deny rules alone).
#![no_main]

use ferrobase_core::Namespace;
use ferrobase_core::auth::{Claims, Role};
use ferrobase_core::policy::{Action, Effect, Policy, Resource, Service, authorize};
use libfuzzer_sys::fuzz_target;

const SERVICES: [Service; 4] = [
    Service::Kv,
    Service::Storage,
    Service::Queue,
    Service::Function,
];
const ACTIONS: [Action; 3] = [Action::Read, Action::Write, Action::Invoke];

fn only(policy: &Policy, effect: Effect) -> Policy {
    Policy {
        rules: policy
            .rules
            .iter()
            .filter(|r| r.effect == effect)
            .cloned()
            .collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let (document, probe) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"alice\0users/alice/profile"[..]),
    };
    let Ok(policy) = serde_json::from_slice::<Policy>(document) else {
        return;
    };
    if policy.validate().is_err() {
        return;
    }
    let text = serde_json::to_vec(&policy).expect("a policy serialises");
    let again: Policy = serde_json::from_slice(&text).expect("a serialised policy parses");
    assert_eq!(again, policy, "round trip changed the policy");
    again
        .validate()
        .expect("a round-tripped valid policy validates");

    let probe = String::from_utf8_lossy(probe);
    let (sub, path) = probe.split_once('\0').unwrap_or((&probe, ""));
    let ns = Namespace::parse("fuzz").expect("a valid namespace");
    let claims = Claims {
        sub: sub.to_owned(),
        exp: u64::MAX,
        iat: None,
        ns: Some(ns.clone()),
        role: Role::User,
        scopes: None,
    };
    let allows = only(&policy, Effect::Allow);
    let denies = only(&policy, Effect::Deny);
    for service in SERVICES {
        let resource = Resource::new(service, path);
        for action in ACTIONS {
            let full = authorize(&claims, &ns, action, &resource, Some(&policy)).is_allowed();
            let allow_only = authorize(&claims, &ns, action, &resource, Some(&allows)).is_allowed();
            let deny_only = authorize(&claims, &ns, action, &resource, Some(&denies)).is_allowed();
            assert!(
                !full || allow_only,
                "allowed by the policy but not by its allow rules"
            );
            assert!(!deny_only, "deny rules alone allowed a request");
        }
    }
});
