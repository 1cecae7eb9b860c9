//! The declarative per-namespace authorization policy and its evaluator.
//!
//! A policy is a list of rules; each rule grants (or denies) some actions on some resources to
//! some roles. Resources are named by patterns such as `kv:users/{sub}/**`: a service prefix,
//! then a `/`-separated path pattern in which `*` matches one segment, `**` matches zero or
//! more segments and `{sub}` stands for the token's subject.
//!
//! [`authorize`] is the single decision point shared by KV, storage, queues and functions. It is
//! called per request and per listed key, so it allocates nothing: patterns are matched
//! segment by segment straight from the stored strings. [`Policy::validate`] is meant to run
//! once, when a policy is stored, and rejects everything the matcher would otherwise have to
//! interpret charitably.

use std::fmt;
use std::str::{FromStr, Split};

use serde::{Deserialize, Serialize};

use crate::Namespace;
use crate::auth::{Claims, Role};

/// Most rules a policy may hold.
pub const MAX_RULES: usize = 256;
/// Longest single resource pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most bytes of resource patterns a policy may hold, all rules together.
pub const MAX_TOTAL_PATTERN_BYTES: usize = 64 * 1024;

/// The placeholder substituted with the token's `sub` claim.
const SUB_PLACEHOLDER: &str = "{sub}";

/// The services a policy can speak about; each has the prefix used in resource patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Kv,
    Storage,
    Queue,
    Function,
    Events,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Kv,
        Service::Storage,
        Service::Queue,
        Service::Function,
        Service::Events,
    ];

    /// The prefix naming this service in resource patterns and scopes (`kv`, `storage`, ...).
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Kv => "kv",
            Service::Storage => "storage",
            Service::Queue => "queue",
            Service::Function => "function",
            Service::Events => "events",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.prefix() == s)
            .ok_or_else(|| {
                format!(
                    "unknown service prefix {s:?}: expected kv, storage, queue, function or events"
                )
            })
    }
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Get, head, list, pull, subscribe.
    Read,
    /// Put, delete, publish, ack, deploy.
    Write,
    /// Run a function.
    Invoke,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Invoke => "invoke",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thing a request touches: a service and a path inside the namespace, e.g. KV key
/// `users/alice/profile` or storage object `avatars/alice/me.png` (bucket first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub service: Service,
    pub path: &'a str,
}

impl<'a> Resource<'a> {
    pub fn new(service: Service, path: &'a str) -> Self {
        Resource { service, path }
    }
}

/// Whether a matching rule grants or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

/// A namespace's policy: what `user` tokens may do there. Deny rules win over allow rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub rules: Vec<PolicyRule>,
}

/// One rule: `effect` applies when the token's role is in `roles`, the action is in `actions`
/// and any of `resources` matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    #[serde(default)]
    pub effect: Effect,
    #[serde(default = "default_roles")]
    pub roles: Vec<Role>,
    pub actions: Vec<Action>,
    /// Patterns `service:path-pattern`, e.g. `kv:users/{sub}/**`.
    pub resources: Vec<String>,
}

fn default_roles() -> Vec<Role> {
    vec![Role::User]
}

/// Why a policy was rejected. Rule numbers are indexes into `rules`, counting from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy has {count} rules; at most {max} are allowed")]
    TooManyRules { count: usize, max: usize },
    #[error("policy resource patterns total {bytes} bytes; at most {max} are allowed")]
    TooLarge { bytes: usize, max: usize },
    #[error("rules[{rule}]: {field} must not be empty")]
    EmptyField { rule: usize, field: &'static str },
    #[error(
        "rules[{rule}]: role {role:?} cannot be named: policies only govern user tokens \
         (admin and service tokens may do everything in their namespace; narrow them with scopes)"
    )]
    UnsupportedRole { rule: usize, role: &'static str },
    #[error(
        "rules[{rule}]: unknown service prefix in {pattern:?}: expected one of kv, storage, \
         queue, function, events followed by ':'"
    )]
    UnknownService { rule: usize, pattern: String },
    #[error("rules[{rule}]: invalid resource pattern {pattern:?}: {reason}")]
    BadPattern {
        rule: usize,
        pattern: String,
        reason: &'static str,
    },
}

impl Policy {
    /// Checks that every rule is meaningful and every pattern well formed, within bounds.
    /// Run it whenever a policy is stored; [`authorize`] assumes a validated policy (an invalid
    /// pattern there simply matches less).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.rules.len() > MAX_RULES {
            return Err(PolicyError::TooManyRules {
                count: self.rules.len(),
                max: MAX_RULES,
            });
        }
        let bytes: usize = self
            .rules
            .iter()
            .flat_map(|r| &r.resources)
            .map(String::len)
            .sum();
        if bytes > MAX_TOTAL_PATTERN_BYTES {
            return Err(PolicyError::TooLarge {
                bytes,
                max: MAX_TOTAL_PATTERN_BYTES,
            });
        }
        for (index, rule) in self.rules.iter().enumerate() {
            rule.validate(index)?;
        }
        Ok(())
    }
}

impl PolicyRule {
    fn validate(&self, rule: usize) -> Result<(), PolicyError> {
        let empty = |field| PolicyError::EmptyField { rule, field };
        if self.roles.is_empty() {
            return Err(empty("roles"));
        }
        if self.actions.is_empty() {
            return Err(empty("actions"));
        }
        if self.resources.is_empty() {
            return Err(empty("resources"));
        }
        // Admin and service tokens never consult the policy; a rule naming them would be
        // silently ignored, which for a deny rule is a trap. Refusing it now keeps the door
        // open to giving such rules a meaning later.
        for role in &self.roles {
            match role {
                Role::User => {}
                Role::Admin | Role::Service => {
                    return Err(PolicyError::UnsupportedRole {
                        rule,
                        role: role.as_str(),
                    });
                }
            }
        }
        for pattern in &self.resources {
            validate_pattern(pattern).map_err(|problem| match problem {
                PatternProblem::UnknownService => PolicyError::UnknownService {
                    rule,
                    pattern: pattern.clone(),
                },
                PatternProblem::Bad(reason) => PolicyError::BadPattern {
                    rule,
                    pattern: pattern.clone(),
                    reason,
                },
            })?;
        }
        Ok(())
    }
}

enum PatternProblem {
    UnknownService,
    Bad(&'static str),
}

fn validate_pattern(pattern: &str) -> Result<(), PatternProblem> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternProblem::Bad("longer than 1024 bytes"));
    }
    let Some((prefix, path)) = pattern.split_once(':') else {
        return Err(PatternProblem::UnknownService);
    };
    if prefix.parse::<Service>().is_err() {
        return Err(PatternProblem::UnknownService);
    }
    if path.is_empty() {
        return Err(PatternProblem::Bad(
            "empty path; use '**' to match everything",
        ));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(PatternProblem::Bad(
                "empty segment (leading, trailing or doubled '/')",
            ));
        }
        if segment == "*" || segment == "**" {
            continue;
        }
        if segment.contains('*') {
            return Err(PatternProblem::Bad("'*' and '**' must be whole segments"));
        }
        let rest = segment.replace(SUB_PLACEHOLDER, "");
        if rest.contains('{') || rest.contains('}') {
            return Err(PatternProblem::Bad("'{sub}' is the only placeholder"));
        }
    }
    Ok(())
}

/// Why a request was refused. The `Display` text is fit for an API error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DenyReason {
    #[error("the token is for another namespace")]
    WrongNamespace,
    #[error("the token names no namespace; only admin tokens may omit it")]
    NoNamespace,
    #[error("the namespace policy does not grant this")]
    NotGranted,
    #[error("the namespace policy denies this")]
    ExplicitDeny,
    #[error("the token's scopes do not cover this")]
    OutOfScope,
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        match self {
            Decision::Allow => true,
            Decision::Deny(_) => false,
        }
    }
}

/// Decides whether the holder of `claims` may perform `action` on `resource` in namespace `ns`,
/// whose policy (if it has one) is `policy`.
///
/// In order: the token must be for `ns` (admin tokens without a namespace reach every
/// namespace); its scopes, if any, must cover the service and action; then admin and service
/// tokens are allowed, and user tokens get what the policy grants, deny rules winning.
pub fn authorize(
    claims: &Claims,
    ns: &Namespace,
    action: Action,
    resource: &Resource<'_>,
    policy: Option<&Policy>,
) -> Decision {
    match &claims.ns {
        Some(token_ns) if token_ns != ns => return Decision::Deny(DenyReason::WrongNamespace),
        Some(_) => {}
        None => match claims.role {
            Role::Admin => {}
            Role::Service | Role::User => return Decision::Deny(DenyReason::NoNamespace),
        },
    }
    if let Some(scopes) = &claims.scopes
        && !scopes
            .iter()
            .any(|scope| scope_covers(scope, resource.service, action))
    {
        return Decision::Deny(DenyReason::OutOfScope);
    }
    match claims.role {
        Role::Admin | Role::Service => Decision::Allow,
        Role::User => match policy {
            Some(policy) => evaluate(policy, &claims.sub, action, resource),
            None => Decision::Deny(DenyReason::NotGranted),
        },
    }
}

/// A scope is `*`, `service:*` or `service:action`.
fn scope_covers(scope: &str, service: Service, action: Action) -> bool {
    if scope == "*" {
        return true;
    }
    match scope.split_once(':') {
        Some((prefix, scope_action)) => {
            prefix == service.prefix() && (scope_action == "*" || scope_action == action.as_str())
        }
        None => false,
    }
}

fn evaluate(policy: &Policy, sub: &str, action: Action, resource: &Resource<'_>) -> Decision {
    let mut allowed = false;
    for rule in &policy.rules {
        let applies = rule.roles.contains(&Role::User)
            && rule.actions.contains(&action)
            && rule
                .resources
                .iter()
                .any(|pattern| pattern_matches(pattern, resource, sub));
        if !applies {
            continue;
        }
        match rule.effect {
            Effect::Deny => return Decision::Deny(DenyReason::ExplicitDeny),
            Effect::Allow => allowed = true,
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::Deny(DenyReason::NotGranted)
    }
}

/// Whether `pattern` (`service:path-pattern`) matches `resource` for subject `sub`.
fn pattern_matches(pattern: &str, resource: &Resource<'_>, sub: &str) -> bool {
    match pattern.split_once(':') {
        Some((prefix, path_pattern)) if prefix == resource.service.prefix() => {
            segments_match(path_pattern.split('/'), resource.path.split('/'), sub)
        }
        _ => false,
    }
}

/// Glob matching over segments, where `**` plays the role of a string glob's `*` and every
/// other pattern segment matches exactly one path segment. Only the most recent `**` ever
/// needs revisiting (the classic linear wildcard algorithm), so this neither allocates nor
/// recurses.
fn segments_match<'p, 'k>(
    mut pattern: Split<'p, char>,
    mut path: Split<'k, char>,
    sub: &str,
) -> bool {
    // Where to resume after the latest `**`: the pattern after it, and the path position it
    // has consumed up to so far.
    let mut resume: Option<(Split<'p, char>, Split<'k, char>)> = None;
    loop {
        let next_segment = path.clone().next();
        match (pattern.next(), next_segment) {
            (Some("**"), _) => resume = Some((pattern.clone(), path.clone())),
            (Some(pattern_segment), Some(segment))
                if segment_matches(pattern_segment, segment, sub) =>
            {
                path.next();
            }
            (None, None) => return true,
            _ => {
                let Some((after_star, star_path)) = &mut resume else {
                    return false;
                };
                // Let the `**` swallow one more segment, then retry from just after it.
                if star_path.next().is_none() {
                    return false;
                }
                pattern = after_star.clone();
                path = star_path.clone();
            }
        }
    }
}

/// One pattern segment against one path segment: `*` matches anything, otherwise the segment
/// must equal the pattern with every `{sub}` replaced by `sub`. Substituting after splitting
/// means a `sub` containing `/` or `*` can only ever match itself, literally.
fn segment_matches(pattern: &str, segment: &str, sub: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut pieces = pattern.split(SUB_PLACEHOLDER);
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = segment.strip_prefix(first) else {
        return false;
    };
    let mut has_placeholder = false;
    for piece in pieces {
        has_placeholder = true;
        let Some(after) = rest.strip_prefix(sub).and_then(|r| r.strip_prefix(piece)) else {
            return false;
        };
        rest = after;
    }
    // An empty subject must not turn `users/{sub}/**` into `users//**`-style catch-alls.
    if has_placeholder && sub.is_empty() {
        return false;
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
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
}
