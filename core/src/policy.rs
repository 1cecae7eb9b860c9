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
    /// The namespace's policy document itself. Only admin tokens manage it, so it exists for
    /// scopes (`policy:read`, `policy:write`); policies cannot grant it.
    Policy,
    /// The namespace's accounts (users, sessions, auth settings) and their events. Only admin
    /// tokens manage them, so, like `policy`, it exists for scopes (`auth:read`,
    /// `auth:write`); policies cannot grant it.
    Auth,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Kv,
        Service::Storage,
        Service::Queue,
        Service::Function,
        Service::Events,
        Service::Policy,
        Service::Auth,
    ];

    /// The prefix naming this service in resource patterns and scopes (`kv`, `storage`, ...).
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Kv => "kv",
            Service::Storage => "storage",
            Service::Queue => "queue",
            Service::Function => "function",
            Service::Events => "events",
            Service::Policy => "policy",
            Service::Auth => "auth",
        }
    }

    /// Whether a policy rule may name this service: `policy` is for admin tokens only, so a
    /// rule granting it to users would be a promise the server does not keep.
    pub fn grantable(self) -> bool {
        match self {
            Service::Kv
            | Service::Storage
            | Service::Queue
            | Service::Function
            | Service::Events => true,
            Service::Policy | Service::Auth => false,
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
                    "unknown service prefix {s:?}: expected kv, storage, queue, function, events or policy"
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
         queue, function, events followed by ':' (policy cannot be granted)"
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
    if !prefix.parse::<Service>().is_ok_and(Service::grantable) {
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
    if let Decision::Deny(reason) = authorize_scope(claims, ns, resource.service, action) {
        return Decision::Deny(reason);
    }
    match claims.role {
        Role::Admin | Role::Service => Decision::Allow,
        Role::User => match policy {
            Some(policy) => evaluate(policy, &claims.sub, action, resource),
            None => Decision::Deny(DenyReason::NotGranted),
        },
    }
}

/// The part of [`authorize`] that does not depend on the resource's path: the token is for
/// `ns` and its scopes cover `action` on `service`. Routes that touch many resources at once
/// (listings) check this first, then [`authorize`] each resource they show.
pub fn authorize_scope(
    claims: &Claims,
    ns: &Namespace,
    service: Service,
    action: Action,
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
            .any(|scope| scope_covers(scope, service, action))
    {
        return Decision::Deny(DenyReason::OutOfScope);
    }
    Decision::Allow
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
#[path = "policy_tests.rs"]
mod tests;
