//! Tests of the parent module (kept apart so the module reads as the code it is).

use super::*;

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).unwrap()
}

fn claims(role: Role, ns_name: Option<&str>, sub: &str) -> Claims {
    Claims {
        sub: sub.to_owned(),
        exp: u64::MAX,
        iat: None,
        ns: ns_name.map(ns),
        role,
        scopes: None,
    }
}

fn user(sub: &str) -> Claims {
    claims(Role::User, Some("shop"), sub)
}

fn rule(effect: Effect, actions: &[Action], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        effect,
        roles: vec![Role::User],
        actions: actions.to_vec(),
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn policy(rules: Vec<PolicyRule>) -> Policy {
    let policy = Policy { rules };
    policy.validate().unwrap();
    policy
}

/// Does a single allow-rule with `pattern` let `sub` read `path` in KV?
fn kv_read(pattern: &str, sub: &str, path: &str) -> bool {
    let policy = policy(vec![rule(Effect::Allow, &[Action::Read], &[pattern])]);
    authorize(
        &user(sub),
        &ns("shop"),
        Action::Read,
        &Resource::new(Service::Kv, path),
        Some(&policy),
    )
    .is_allowed()
}

#[test]
fn sub_is_substituted_per_segment() {
    assert!(kv_read("kv:users/{sub}/**", "alice", "users/alice/profile"));
    assert!(kv_read("kv:users/{sub}/**", "alice", "users/alice/a/b/c"));
    assert!(!kv_read("kv:users/{sub}/**", "alice", "users/bob/profile"));
    assert!(!kv_read(
        "kv:users/{sub}/**",
        "alice",
        "users/alicex/profile"
    ));
    assert!(!kv_read(
        "kv:users/{sub}/**",
        "alice",
        "users/xalice/profile"
    ));
    // Embedded placeholders, possibly several in one segment.
    assert!(kv_read(
        "kv:home/user-{sub}/*",
        "alice",
        "home/user-alice/x"
    ));
    assert!(!kv_read("kv:home/user-{sub}/*", "alice", "home/user-bob/x"));
    assert!(kv_read("kv:pair/{sub}-{sub}.json", "al", "pair/al-al.json"));
    assert!(!kv_read(
        "kv:pair/{sub}-{sub}.json",
        "al",
        "pair/al-bo.json"
    ));
}

#[test]
fn sub_cannot_widen_a_match() {
    // A subject with '/' cannot climb into someone else's tree or match two segments.
    assert!(!kv_read(
        "kv:users/{sub}/**",
        "alice/../bob",
        "users/bob/profile"
    ));
    assert!(!kv_read("kv:users/{sub}/x", "a/b", "users/a/b/x"));
    // Wildcard-looking subjects match only themselves, literally.
    assert!(!kv_read("kv:users/{sub}/**", "*", "users/bob/profile"));
    assert!(kv_read("kv:users/{sub}/**", "*", "users/*/profile"));
    assert!(!kv_read("kv:users/{sub}/**", "**", "users/bob/profile"));
    assert!(!kv_read("kv:users/{sub}", "**", "users/bob/profile"));
    // A subject that spells the placeholder is still just a literal.
    assert!(!kv_read("kv:users/{sub}/**", "{sub}", "users/bob/profile"));
    // An empty subject matches no placeholder segment, not even an empty path segment.
    assert!(!kv_read("kv:users/{sub}/**", "", "users//profile"));
    assert!(!kv_read(
        "kv:users/user-{sub}/**",
        "",
        "users/user-/profile"
    ));
}

#[test]
fn single_star_matches_exactly_one_segment() {
    assert!(kv_read("kv:public/*", "u", "public/a"));
    assert!(!kv_read("kv:public/*", "u", "public/a/b"));
    assert!(!kv_read("kv:public/*", "u", "public"));
    assert!(kv_read("kv:*/index", "u", "docs/index"));
    assert!(!kv_read("kv:*/index", "u", "docs/x/index"));
}

#[test]
fn double_star_matches_zero_or_more_segments_anywhere() {
    assert!(kv_read("kv:**", "u", "anything/at/all"));
    assert!(kv_read("kv:**", "u", "x"));
    assert!(kv_read("kv:a/**", "u", "a"));
    assert!(kv_read("kv:a/**", "u", "a/b/c"));
    assert!(!kv_read("kv:a/**", "u", "b/c"));
    // In the middle: zero, one, and many segments.
    assert!(kv_read("kv:a/**/z", "u", "a/z"));
    assert!(kv_read("kv:a/**/z", "u", "a/b/z"));
    assert!(kv_read("kv:a/**/z", "u", "a/b/c/d/z"));
    assert!(!kv_read("kv:a/**/z", "u", "a/b/c/d"));
    assert!(!kv_read("kv:a/**/z", "u", "a/z/b"));
    // Backtracking: the first 'z' is not the one that completes the match.
    assert!(kv_read("kv:a/**/z/end", "u", "a/z/x/z/end"));
    // At the start, and two of them.
    assert!(kv_read("kv:**/secret", "u", "secret"));
    assert!(kv_read("kv:**/secret", "u", "a/b/secret"));
    assert!(kv_read("kv:**/x/**/y", "u", "p/x/q/r/y"));
    assert!(kv_read("kv:**/x/**/y", "u", "x/y"));
    assert!(!kv_read("kv:**/x/**/y", "u", "p/y/x"));
    // Mixed with '*' and {sub}.
    assert!(kv_read("kv:**/{sub}/*", "al", "t/u/al/f"));
    assert!(!kv_read("kv:**/{sub}/*", "al", "t/u/al/f/g"));
}

/// The obvious recursive definition, to check the iterative matcher against.
fn reference_match(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some((&"**", rest)), _) => {
            reference_match(rest, path)
                || (!path.is_empty() && reference_match(pattern, &path[1..]))
        }
        (Some(_), None) => false,
        (Some((&p, rest)), Some((&k, path_rest))) => {
            (p == "*" || p == k) && reference_match(rest, path_rest)
        }
    }
}

fn sequences<'a>(alphabet: &[&'a str], max_len: usize) -> Vec<Vec<&'a str>> {
    let mut all = vec![vec![]];
    let mut frontier = vec![vec![]];
    for _ in 0..max_len {
        let mut next = Vec::new();
        for seq in &frontier {
            for &item in alphabet {
                let mut longer: Vec<&str> = seq.clone();
                longer.push(item);
                next.push(longer);
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

#[test]
fn matcher_agrees_with_the_recursive_definition() {
    let paths = sequences(&["a", "b"], 5);
    for pattern in sequences(&["a", "b", "*", "**"], 4)
        .into_iter()
        .filter(|p| !p.is_empty())
    {
        let pattern_text = pattern.join("/");
        for path in paths.iter().filter(|p| !p.is_empty()) {
            let path_text = path.join("/");
            assert_eq!(
                segments_match(pattern_text.split('/'), path_text.split('/'), "u"),
                reference_match(&pattern, path),
                "{pattern_text} vs {path_text}"
            );
        }
    }
}

#[test]
fn patterns_are_literal_otherwise_and_service_specific() {
    assert!(kv_read("kv:config/app", "u", "config/app"));
    assert!(!kv_read("kv:config/app", "u", "config/app2"));
    assert!(!kv_read("kv:config/app", "u", "config"));
    assert!(!kv_read("kv:config/app", "u", "config/app/x"));
    let policy = policy(vec![rule(Effect::Allow, &[Action::Read], &["storage:**"])]);
    let kv = Resource::new(Service::Kv, "a");
    let storage = Resource::new(Service::Storage, "a");
    assert_eq!(
        authorize(&user("u"), &ns("shop"), Action::Read, &kv, Some(&policy)),
        Decision::Deny(DenyReason::NotGranted)
    );
    assert!(
        authorize(
            &user("u"),
            &ns("shop"),
            Action::Read,
            &storage,
            Some(&policy)
        )
        .is_allowed()
    );
}

#[test]
fn deny_rules_win_whatever_their_order() {
    let allow = rule(
        Effect::Allow,
        &[Action::Read, Action::Write],
        &["kv:users/{sub}/**"],
    );
    let deny = rule(Effect::Deny, &[Action::Write], &["kv:users/*/locked/**"]);
    for rules in [vec![allow.clone(), deny.clone()], vec![deny, allow]] {
        let policy = policy(rules);
        let check = |action, path| {
            authorize(
                &user("alice"),
                &ns("shop"),
                action,
                &Resource::new(Service::Kv, path),
                Some(&policy),
            )
        };
        assert_eq!(check(Action::Write, "users/alice/x"), Decision::Allow);
        assert_eq!(check(Action::Read, "users/alice/locked/x"), Decision::Allow);
        assert_eq!(
            check(Action::Write, "users/alice/locked/x"),
            Decision::Deny(DenyReason::ExplicitDeny)
        );
        assert_eq!(
            check(Action::Write, "users/bob/x"),
            Decision::Deny(DenyReason::NotGranted)
        );
    }
}

#[test]
fn rules_apply_only_to_their_actions() {
    let policy = policy(vec![rule(Effect::Allow, &[Action::Read], &["kv:**"])]);
    let resource = Resource::new(Service::Kv, "a");
    let decide = |action| authorize(&user("u"), &ns("shop"), action, &resource, Some(&policy));
    assert_eq!(decide(Action::Read), Decision::Allow);
    assert_eq!(
        decide(Action::Write),
        Decision::Deny(DenyReason::NotGranted)
    );
    assert_eq!(
        decide(Action::Invoke),
        Decision::Deny(DenyReason::NotGranted)
    );
}

#[test]
fn roles_filter_rules_and_admin_service_bypass_policy() {
    // A rule whose roles do not include `user` (here: none that apply, built without
    // validation) never grants to users.
    let mut unvalidated = rule(Effect::Allow, &[Action::Read], &["kv:**"]);
    unvalidated.roles = vec![Role::Service];
    let policy = Policy {
        rules: vec![unvalidated],
    };
    let resource = Resource::new(Service::Kv, "a");
    assert_eq!(
        authorize(
            &user("u"),
            &ns("shop"),
            Action::Read,
            &resource,
            Some(&policy)
        ),
        Decision::Deny(DenyReason::NotGranted)
    );
    // Admin and service tokens do everything in their namespace, whatever the policy.
    let deny_all = Policy {
        rules: vec![rule(Effect::Deny, &[Action::Write], &["kv:**"])],
    };
    for role in [Role::Admin, Role::Service] {
        let token = claims(role, Some("shop"), "svc");
        for policy in [None, Some(&deny_all)] {
            for action in [Action::Read, Action::Write, Action::Invoke] {
                assert_eq!(
                    authorize(&token, &ns("shop"), action, &resource, policy),
                    Decision::Allow
                );
            }
        }
    }
}

#[test]
fn wrong_namespace_is_denied_for_every_role() {
    let grant_all = policy(vec![rule(
        Effect::Allow,
        &[Action::Read, Action::Write, Action::Invoke],
        &["kv:**"],
    )]);
    let resource = Resource::new(Service::Kv, "a");
    for role in [Role::Admin, Role::Service, Role::User] {
        let token = claims(role, Some("other"), "u");
        assert_eq!(
            authorize(
                &token,
                &ns("shop"),
                Action::Read,
                &resource,
                Some(&grant_all)
            ),
            Decision::Deny(DenyReason::WrongNamespace),
            "{role:?}"
        );
    }
}

#[test]
fn only_admin_may_omit_the_namespace() {
    let grant_all = policy(vec![rule(Effect::Allow, &[Action::Read], &["kv:**"])]);
    let resource = Resource::new(Service::Kv, "a");
    let admin = claims(Role::Admin, None, "root");
    for name in ["shop", "other"] {
        assert_eq!(
            authorize(&admin, &ns(name), Action::Write, &resource, None),
            Decision::Allow
        );
    }
    for role in [Role::Service, Role::User] {
        assert_eq!(
            authorize(
                &claims(role, None, "u"),
                &ns("shop"),
                Action::Read,
                &resource,
                Some(&grant_all)
            ),
            Decision::Deny(DenyReason::NoNamespace),
            "{role:?}"
        );
    }
}

#[test]
fn user_without_policy_gets_nothing() {
    let resource = Resource::new(Service::Kv, "users/u/x");
    for action in [Action::Read, Action::Write, Action::Invoke] {
        assert_eq!(
            authorize(&user("u"), &ns("shop"), action, &resource, None),
            Decision::Deny(DenyReason::NotGranted)
        );
    }
    let empty = policy(vec![]);
    assert_eq!(
        authorize(
            &user("u"),
            &ns("shop"),
            Action::Read,
            &resource,
            Some(&empty)
        ),
        Decision::Deny(DenyReason::NotGranted)
    );
}

#[test]
fn scopes_narrow_every_role() {
    let grant = policy(vec![rule(
        Effect::Allow,
        &[Action::Read, Action::Write],
        &["kv:**"],
    )]);
    let kv = Resource::new(Service::Kv, "a");
    let queue = Resource::new(Service::Queue, "jobs");
    let with_scopes = |role, scopes: &[&str]| {
        let mut token = claims(role, Some("shop"), "u");
        token.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        token
    };
    for role in [Role::Admin, Role::Service, Role::User] {
        let reader = with_scopes(role, &["kv:read"]);
        let decide = |token: &Claims, action, resource: &Resource<'_>| {
            authorize(token, &ns("shop"), action, resource, Some(&grant))
        };
        assert_eq!(
            decide(&reader, Action::Read, &kv),
            Decision::Allow,
            "{role:?}"
        );
        assert_eq!(
            decide(&reader, Action::Write, &kv),
            Decision::Deny(DenyReason::OutOfScope),
            "{role:?}"
        );
        assert_eq!(
            decide(&reader, Action::Read, &queue),
            Decision::Deny(DenyReason::OutOfScope),
            "{role:?}"
        );
        let kv_any = with_scopes(role, &["queue:read", "kv:*"]);
        assert_eq!(
            decide(&kv_any, Action::Write, &kv),
            Decision::Allow,
            "{role:?}"
        );
        let everything = with_scopes(role, &["*"]);
        assert_eq!(
            decide(&everything, Action::Write, &kv),
            Decision::Allow,
            "{role:?}"
        );
        let nothing = with_scopes(role, &[]);
        assert_eq!(
            decide(&nothing, Action::Read, &kv),
            Decision::Deny(DenyReason::OutOfScope),
            "{role:?}"
        );
        // Malformed scopes cover nothing.
        let malformed = with_scopes(role, &["kv", "kv:", "kv:read:x", "*:read", "kvread"]);
        assert_eq!(
            decide(&malformed, Action::Read, &kv),
            Decision::Deny(DenyReason::OutOfScope),
            "{role:?}"
        );
    }
    // Scopes narrow; they never grant beyond the policy.
    let user_all = with_scopes(Role::User, &["*"]);
    assert_eq!(
        authorize(&user_all, &ns("shop"), Action::Read, &kv, None),
        Decision::Deny(DenyReason::NotGranted)
    );
}

#[test]
fn serde_shape_and_defaults() {
    let json = r#"{"rules":[
        {"actions":["read","write"],"resources":["kv:users/{sub}/**"]},
        {"effect":"deny","roles":["user"],"actions":["invoke"],"resources":["function:admin-*"]}
    ]}"#;
    let parsed: Policy = serde_json::from_str(json).unwrap();
    assert_eq!(parsed.rules[0].effect, Effect::Allow);
    assert_eq!(parsed.rules[0].roles, vec![Role::User]);
    assert_eq!(parsed.rules[0].actions, vec![Action::Read, Action::Write]);
    assert_eq!(parsed.rules[1].effect, Effect::Deny);
    // The second rule's pattern is malformed: deserializing accepts it, validation does not.
    assert!(matches!(
        parsed.validate(),
        Err(PolicyError::BadPattern { rule: 1, .. })
    ));
    let back: Policy = serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
    assert_eq!(back, parsed);
    // Typos in field names are errors, not silently defaulted.
    let typo = r#"{"rules":[{"role":["admin"],"actions":["read"],"resources":["kv:**"]}]}"#;
    assert!(serde_json::from_str::<Policy>(typo).is_err());
    let bad_action = r#"{"rules":[{"actions":["delete"],"resources":["kv:**"]}]}"#;
    assert!(serde_json::from_str::<Policy>(bad_action).is_err());
}

fn validation_error(actions: &[Action], resources: &[&str]) -> PolicyError {
    Policy {
        rules: vec![rule(Effect::Allow, actions, resources)],
    }
    .validate()
    .unwrap_err()
}

#[test]
fn validation_names_the_problem() {
    let read = &[Action::Read];
    let unknown = validation_error(read, &["kvv:a/**"]);
    assert!(matches!(
        unknown,
        PolicyError::UnknownService { rule: 0, .. }
    ));
    assert!(unknown.to_string().contains("\"kvv:a/**\""), "{unknown}");
    assert!(matches!(
        validation_error(read, &["users/**"]),
        PolicyError::UnknownService { .. }
    ));
    assert_eq!(
        validation_error(&[], &["kv:**"]),
        PolicyError::EmptyField {
            rule: 0,
            field: "actions"
        }
    );
    assert_eq!(
        validation_error(read, &[]),
        PolicyError::EmptyField {
            rule: 0,
            field: "resources"
        }
    );
    for (pattern, reason_part) in [
        ("kv:", "empty path"),
        ("kv:a//b", "empty segment"),
        ("kv:/a", "empty segment"),
        ("kv:a/", "empty segment"),
        ("kv:a/**x", "whole segments"),
        ("kv:a/x*", "whole segments"),
        ("kv:a/***", "whole segments"),
        ("kv:a/{user}", "only placeholder"),
        ("kv:a/{sub", "only placeholder"),
        ("kv:a/sub}", "only placeholder"),
        ("kv:a/{{sub}}", "only placeholder"),
    ] {
        let error = validation_error(read, &["kv:ok/**", pattern]);
        assert!(
            matches!(&error, PolicyError::BadPattern { rule: 0, pattern: p, .. } if p == pattern),
            "{pattern}: {error:?}"
        );
        assert!(
            error.to_string().contains(reason_part),
            "{pattern}: {error}"
        );
    }
    let long = format!("kv:{}", "a".repeat(MAX_PATTERN_LEN));
    assert!(matches!(
        validation_error(read, &[&long]),
        PolicyError::BadPattern { .. }
    ));

    let mut empty_roles = rule(Effect::Allow, read, &["kv:**"]);
    empty_roles.roles.clear();
    assert_eq!(
        Policy {
            rules: vec![empty_roles]
        }
        .validate(),
        Err(PolicyError::EmptyField {
            rule: 0,
            field: "roles"
        })
    );
    let mut service_rule = rule(Effect::Deny, read, &["kv:**"]);
    service_rule.roles = vec![Role::User, Role::Service];
    let ok = rule(Effect::Allow, read, &["kv:**"]);
    assert_eq!(
        Policy {
            rules: vec![ok, service_rule]
        }
        .validate(),
        Err(PolicyError::UnsupportedRole {
            rule: 1,
            role: "service"
        })
    );
}

#[test]
fn validation_accepts_the_documented_forms() {
    policy(vec![
        rule(
            Effect::Allow,
            &[Action::Read, Action::Write],
            &["kv:users/{sub}/**"],
        ),
        rule(
            Effect::Allow,
            &[Action::Read],
            &["storage:avatars/{sub}/**", "storage:public/*"],
        ),
        rule(
            Effect::Allow,
            &[Action::Invoke],
            &["function:greet", "function:**"],
        ),
        rule(
            Effect::Deny,
            &[Action::Write],
            &["queue:**/dlq", "events:*"],
        ),
        rule(
            Effect::Allow,
            &[Action::Read],
            &["kv:home/user-{sub}-{sub}/x"],
        ),
    ]);
}

#[test]
fn validation_bounds_size() {
    let one = || rule(Effect::Allow, &[Action::Read], &["kv:**"]);
    let ok = Policy {
        rules: (0..MAX_RULES).map(|_| one()).collect(),
    };
    assert_eq!(ok.validate(), Ok(()));
    let too_many = Policy {
        rules: (0..=MAX_RULES).map(|_| one()).collect(),
    };
    assert_eq!(
        too_many.validate(),
        Err(PolicyError::TooManyRules {
            count: MAX_RULES + 1,
            max: MAX_RULES
        })
    );
    let big = format!("kv:{}", "a".repeat(1000));
    let resources: Vec<&str> = (0..70).map(|_| big.as_str()).collect();
    let too_large = Policy {
        rules: vec![rule(Effect::Allow, &[Action::Read], &resources)],
    };
    assert!(matches!(
        too_large.validate(),
        Err(PolicyError::TooLarge { .. })
    ));
}

#[test]
fn deny_reasons_read_well() {
    for reason in [
        DenyReason::WrongNamespace,
        DenyReason::NoNamespace,
        DenyReason::NotGranted,
        DenyReason::ExplicitDeny,
        DenyReason::OutOfScope,
    ] {
        let text = reason.to_string();
        assert!(text.starts_with("the "), "{text}");
    }
    assert_eq!("kv".parse::<Service>(), Ok(Service::Kv));
    assert!("KV".parse::<Service>().is_err());
}
