//! The vocabulary of functions: deployable specs, versions, activation records. The
//! documents themselves are the API's ([`ferrobase_core::wire::functions`], re-exported here);
//! this module adds the rules that check them: bounds, names and function references.

use std::time::Duration;

pub use ferrobase_core::wire::functions::{
    ActivationError, ActivationRecord, Cause, Contract, DEFAULT_CONCURRENCY, DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_MS, FunctionKind, FunctionSpec, FunctionVersion, OutcomeKind, REDACTED,
    StartKind,
};

use crate::FunctionError;

pub const MIN_MEMORY_MB: u32 = 16;
pub const MAX_MEMORY_MB: u32 = 2048;
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
pub const MAX_CONCURRENCY: u32 = 1000;
pub const MAX_CODE_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_ENV_BYTES: usize = 64 * 1024;
pub const MAX_NAME_LEN: usize = 64;

/// Most steps in one sequence.
pub const MAX_SEQUENCE_STEPS: usize = 32;

/// The checks a document gets before it is stored: bounds, names and references, each
/// error naming the field that is wrong.
pub trait Validate {
    fn validate(&self) -> Result<(), FunctionError>;
}

impl Validate for FunctionSpec {
    /// Checks every bound, naming the field that is out of range.
    fn validate(&self) -> Result<(), FunctionError> {
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
