//! The vocabulary of functions: deployable specs, versions, activation records.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrobase_core::Namespace;
use serde::{Deserialize, Serialize};

use crate::FunctionError;

pub const DEFAULT_MEMORY_MB: u32 = 128;
pub const MIN_MEMORY_MB: u32 = 16;
pub const MAX_MEMORY_MB: u32 = 2048;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
pub const DEFAULT_CONCURRENCY: u32 = 16;
pub const MAX_CONCURRENCY: u32 = 1000;
pub const MAX_CODE_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_ENV_BYTES: usize = 64 * 1024;
pub const MAX_NAME_LEN: usize = 64;
/// What a secret's value reads as wherever it would leave the server.
pub const REDACTED: &str = "[redacted]";

/// What a deploy request carries (`PUT /v1/functions/{ns}/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// `javascript` (the default) or `sequence`.
    #[serde(default)]
    pub kind: FunctionKind,
    /// The source: an ES module with a default export, or a script defining `main`.
    #[serde(default)]
    pub code: String,
    /// For sequences: the functions (`name` or `name@version`) run in order, each step's
    /// result the next step's event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most activations running at once; more wait in a bounded queue, then get 429.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Values the function reads as `ctx.env` (never the server's environment).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Values the function reads in `ctx.env` like `env`, which never leave the server: the
    /// API shows only their names, and every occurrence of a value in an activation's
    /// result, error and logs is replaced by [`REDACTED`]. A name may not be in both.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Whether the function answers web requests at `/web/{ns}/{name}/...` without a token.
    #[serde(default)]
    pub web: bool,
}

/// How a function's code is called, decided from its syntax when it loads (see
/// `engine::load`): the form of its event and result, and what a web request becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Contract {
    /// An ES module's default export, called as `(event, ctx)`; its result is the answer
    /// as it is (`undefined` is `null`).
    #[default]
    Ferrobase,
    /// OpenWhisk's action contract: `main(params)` of a script (run in sloppy mode) or a
    /// module's `main` export. Returning nothing answers `{}`; a result with a top-level
    /// `error` is an application error; `process.env` has the `__OW_*` variables; a web
    /// request arrives as merged `params` with the `__ow_*` fields.
    #[serde(rename = "openwhisk")]
    OpenWhisk,
}

/// What a function is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    #[default]
    Javascript,
    /// Other functions run one after another (OpenWhisk's sequences).
    Sequence,
}

/// Most steps in one sequence.
pub const MAX_SEQUENCE_STEPS: usize = 32;

fn default_memory_mb() -> u32 {
    DEFAULT_MEMORY_MB
}
fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_concurrency() -> u32 {
    DEFAULT_CONCURRENCY
}

impl FunctionSpec {
    /// What the function reads as `ctx.env`: `env` and `secrets` together.
    pub fn runtime_env(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.extend(self.secrets.clone());
        env
    }

    /// Replaces every occurrence of a secret's value in `text` (also as it reads inside a
    /// JSON string) by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for value in self.secrets.values().filter(|v| !v.is_empty()) {
            let escaped = serde_json::to_string(value).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            for form in [value.as_str(), escaped] {
                if !form.is_empty() && text.contains(form) {
                    text = text.replace(form, REDACTED);
                }
            }
        }
        text
    }

    /// Checks every bound, naming the field that is out of range.
    pub fn validate(&self) -> Result<(), FunctionError> {
        let invalid = |message: String| Err(FunctionError::Invalid(message));
        match self.kind {
            FunctionKind::Javascript => {
                if self.code.trim().is_empty() {
                    return invalid("code must not be empty".into());
                }
                if !self.steps.is_empty() {
                    return invalid("steps are for functions of kind sequence".into());
                }
            }
            FunctionKind::Sequence => {
                if !self.code.is_empty() {
                    return invalid("a sequence has steps, not code".into());
                }
                if !(1..=MAX_SEQUENCE_STEPS).contains(&self.steps.len()) {
                    return invalid(format!("a sequence needs 1 to {MAX_SEQUENCE_STEPS} steps"));
                }
                for step in &self.steps {
                    Target::parse(step)?;
                }
            }
        }
        if self.code.len() > MAX_CODE_BYTES {
            return invalid(format!("code is larger than {MAX_CODE_BYTES} bytes"));
        }
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return invalid(format!(
                "memory_mb must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB}"
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return invalid(format!("timeout_ms must be between 1 and {MAX_TIMEOUT_MS}"));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return invalid(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}"
            ));
        }
        let env_bytes: usize = self
            .env
            .iter()
            .chain(&self.secrets)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if env_bytes > MAX_ENV_BYTES {
            return invalid(format!(
                "env and secrets are larger than {MAX_ENV_BYTES} bytes"
            ));
        }
        if let Some(name) = self
            .secrets
            .keys()
            .find(|name| self.env.contains_key(*name))
        {
            return invalid(format!("{:?} is both in env and in secrets", bounded(name)));
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// What a checked name names, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Function,
    Trigger,
    Rule,
}

impl NameKind {
    fn as_str(self) -> &'static str {
        match self {
            NameKind::Function => "function",
            NameKind::Trigger => "trigger",
            NameKind::Rule => "rule",
        }
    }
}

/// Checks a function name: 1 to 64 of `a-z A-Z 0-9 - _`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), FunctionError> {
    validate_name_of(NameKind::Function, name)
}

/// Checks the name of a function, trigger or rule (the same rule for all three); the error
/// names which it was and echoes at most [`MAX_NAME_LEN`] characters of it.
pub fn validate_name_of(kind: NameKind, name: &str) -> Result<(), FunctionError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        return Ok(());
    }
    let shown: String = name.chars().take(MAX_NAME_LEN).collect();
    let ellipsis = if shown.len() < name.len() { "..." } else { "" };
    Err(FunctionError::Invalid(format!(
        "invalid {} name {shown:?}{ellipsis}: 1 to {MAX_NAME_LEN} of a-z, A-Z, 0-9, '-', '_'",
        kind.as_str()
    )))
}

/// A function reference: `name` (the latest version) or `name@version`, versions from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub name: &'a str,
    pub version: Option<u32>,
}

impl<'a> Target<'a> {
    /// The one parser of function references, used by invocations, sequences' steps and
    /// rules alike: a valid name, then optionally `@` and a version from 1 to `u32::MAX`.
    pub fn parse(target: &'a str) -> Result<Self, FunctionError> {
        let (name, version) = match target.split_once('@') {
            None => (target, None),
            Some((name, version)) => {
                let version = version
                    .parse::<u32>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| {
                        FunctionError::Invalid(format!(
                            "invalid version in {:?}: versions are whole numbers from 1",
                            bounded(target)
                        ))
                    })?;
                (name, Some(version))
            }
        };
        validate_name(name)?;
        Ok(Target { name, version })
    }
}

/// At most 80 characters of `text`, for echoing user input in messages.
fn bounded(text: &str) -> String {
    text.chars().take(80).collect()
}

/// One immutable deployed version, `name@version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionVersion {
    pub namespace: Namespace,
    pub name: String,
    pub version: u32,
    pub spec: FunctionSpec,
    /// RFC 3339 time of the deploy.
    pub deployed_at: String,
    /// How the code is called, found when the deploy compiled it (`ferrobase` for sequences
    /// and for versions recorded before the contract was).
    #[serde(default)]
    pub contract: Contract,
}

impl FunctionVersion {
    /// `ns/name@version`: identifies the version in pools and records.
    pub fn id(&self) -> String {
        format!("{}/{}@{}", self.namespace, self.name, self.version)
    }
}

/// How an activation got its isolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartKind {
    /// A new isolate was created for it.
    Cold,
    /// A pre-warmed isolate (SDK loaded) was specialised with the function's code.
    Prewarmed,
    /// An idle isolate that already held this function version was reused.
    Warm,
}

/// How an activation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    Ok,
    Error,
    Timeout,
    Oom,
}

impl OutcomeKind {
    /// Every outcome, in declaration order (the order metrics list them in).
    pub const ALL: [OutcomeKind; 4] = [
        OutcomeKind::Ok,
        OutcomeKind::Error,
        OutcomeKind::Timeout,
        OutcomeKind::Oom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Ok => "ok",
            OutcomeKind::Error => "error",
            OutcomeKind::Timeout => "timeout",
            OutcomeKind::Oom => "oom",
        }
    }
}

/// A count per [`OutcomeKind`], read by outcome rather than by position.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeCounts([u64; OutcomeKind::ALL.len()]);

impl OutcomeCounts {
    pub fn add(&mut self, outcome: OutcomeKind) {
        // A fieldless enum's discriminant is its declaration index, the index into `ALL`.
        self.0[outcome as usize] += 1;
    }

    pub fn get(&self, outcome: OutcomeKind) -> u64 {
        self.0[outcome as usize]
    }

    /// Every outcome with its count, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (OutcomeKind, u64)> + '_ {
        OutcomeKind::ALL
            .into_iter()
            .map(|outcome| (outcome, self.get(outcome)))
    }
}

/// What started an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Cause {
    /// An API request (invoke).
    Request,
    /// A request to a web action: the result becomes the HTTP response, so it must be one
    /// that can be sent as it is ([`crate::web::shape`]), or the activation is an error.
    Web {
        /// The response type the request's extension asked for.
        #[serde(default)]
        response: crate::web::ResponseType,
    },
    /// A change event delivered by a rule: the event id, and which delivery attempt this is
    /// (1 for the first; handlers see it as `ctx.cause.attempt`).
    Event {
        id: String,
        #[serde(default = "first_attempt")]
        attempt: u32,
    },
}

fn first_attempt() -> u32 {
    1
}

/// The durable record of one invocation (`GET /v1/activations/{ns}/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub id: String,
    pub namespace: Namespace,
    pub function: String,
    pub version: u32,
    pub cause: Cause,
    /// RFC 3339 start time.
    pub start: String,
    pub duration_ms: f64,
    pub start_kind: StartKind,
    pub outcome: OutcomeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActivationError>,
    /// The result (JSON), bounded; `result_truncated` marks a cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub result_truncated: bool,
    pub logs: Vec<String>,
    #[serde(default)]
    pub logs_truncated: bool,
    pub memory_mb: u32,
    /// memory_mb / 1024 × duration in seconds, duration rounded up to whole milliseconds
    /// (0 for sequences: their steps are billed).
    pub billed_gb_seconds: f64,
    /// For sequences: the activation ids of the steps that ran, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// An error outcome's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// GB-seconds billed for `duration` at `memory_mb`, the duration rounded up to 1 ms.
pub fn billed_gb_seconds(memory_mb: u32, duration: Duration) -> f64 {
    let millis = duration.as_nanos().div_ceil(1_000_000) as f64;
    f64::from(memory_mb) / 1024.0 * millis / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_rounds_up_to_the_millisecond() {
        assert_eq!(billed_gb_seconds(1024, Duration::from_micros(1)), 0.001);
        assert_eq!(billed_gb_seconds(128, Duration::from_millis(1000)), 0.125);
        assert_eq!(
            billed_gb_seconds(512, Duration::from_micros(2001)),
            0.5 * 0.003
        );
    }

    #[test]
    fn spec_defaults_and_bounds() {
        let spec: FunctionSpec =
            serde_json::from_str(r#"{"code": "export default () => 1"}"#).unwrap();
        assert_eq!(
            (spec.memory_mb, spec.timeout_ms, spec.concurrency),
            (128, 10_000, 16)
        );
        spec.validate().unwrap();
        for bad in [
            r#"{"code": "x", "memory_mb": 1}"#,
            r#"{"code": "x", "timeout_ms": 0}"#,
            r#"{"code": "x", "concurrency": 0}"#,
            r#"{"code": "  "}"#,
        ] {
            let spec: FunctionSpec = serde_json::from_str(bad).unwrap();
            assert!(spec.validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<FunctionSpec>(r#"{"code": "x", "nope": 1}"#).is_err());
        assert!(validate_name("thumb-2").is_ok());
        assert!(validate_name("../x").is_err());
        let long = "x/".repeat(500);
        let message = validate_name_of(NameKind::Trigger, &long)
            .unwrap_err()
            .to_string();
        assert!(message.contains("invalid trigger name"), "{message}");
        assert!(message.len() < 200, "the echo is bounded: {message}");
    }
}
