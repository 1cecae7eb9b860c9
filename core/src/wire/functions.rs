//! Functions: what a deploy carries, a deployed version, and the activation records the API
//! lists (`/v1/functions`, `/v1/activations`). The functions crate re-exports these types and
//! adds the rules that check them (`ferrobase_functions::model`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Namespace;

pub const DEFAULT_MEMORY_MB: u32 = 128;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_CONCURRENCY: u32 = 16;
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

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
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

/// What started an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Cause {
    /// An API request (invoke).
    Request,
    /// A request to a web action: the result becomes the HTTP response, so it must be one
    /// that can be sent as it is (`ferrobase_functions::web::shape`), or the activation is an error.
    Web {
        /// The response type the request's extension asked for.
        #[serde(default)]
        response: ResponseType,
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

/// The response type a web request asks for with the extension of the action's name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseType {
    /// The result is read as a response (no extension, or `.http`).
    #[default]
    Http,
    /// The result, as JSON.
    Json,
    /// The result's `html` field, as `text/html`.
    Html,
    /// The result's `text` field, as `text/plain`.
    Text,
}

impl ResponseType {
    /// Splits a path segment `name.ext` into the name and the response type it asks for;
    /// `None` for an extension that is none of `.http`, `.json`, `.html`, `.text`. Function
    /// names have no dot, so the split is unambiguous.
    pub fn split(segment: &str) -> Option<(&str, ResponseType)> {
        let Some((name, extension)) = segment.rsplit_once('.') else {
            return Some((segment, ResponseType::Http));
        };
        let kind = match extension {
            "http" => ResponseType::Http,
            "json" => ResponseType::Json,
            "html" => ResponseType::Html,
            "text" => ResponseType::Text,
            _ => return None,
        };
        Some((name, kind))
    }
}

/// A version without its code: the answer to a deploy, and one entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSummary {
    pub namespace: Namespace,
    pub name: String,
    pub version: u32,
    pub deployed_at: String,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub concurrency: u32,
    pub web: bool,
    pub kind: FunctionKind,
    pub steps: Vec<String>,
    pub contract: Contract,
}

impl From<&FunctionVersion> for FunctionSummary {
    fn from(version: &FunctionVersion) -> Self {
        FunctionSummary {
            namespace: version.namespace.clone(),
            name: version.name.clone(),
            version: version.version,
            deployed_at: version.deployed_at.clone(),
            memory_mb: version.spec.memory_mb,
            timeout_ms: version.spec.timeout_ms,
            concurrency: version.spec.concurrency,
            web: version.spec.web,
            kind: version.spec.kind,
            steps: version.spec.steps.clone(),
            contract: version.contract,
        }
    }
}

/// One version with its code and `env`; secrets by name only, since they are write-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionVersionDetail {
    #[serde(flatten)]
    pub summary: FunctionSummary,
    pub code: String,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<String>,
}

impl From<&FunctionVersion> for FunctionVersionDetail {
    fn from(version: &FunctionVersion) -> Self {
        FunctionVersionDetail {
            summary: FunctionSummary::from(version),
            code: version.spec.code.clone(),
            env: version.spec.env.clone(),
            secrets: version.spec.secrets.keys().cloned().collect(),
        }
    }
}

/// `GET /v1/functions/{ns}/{name}[?version=]`: the version asked for (the latest by
/// default) in full, and every version's summary, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDocument {
    pub name: String,
    pub latest: Option<u32>,
    pub version: FunctionVersionDetail,
    pub versions: Vec<FunctionSummary>,
}

/// `GET /v1/activations/{ns}`: newest first; `next` is the cursor to pass as `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationPage {
    pub activations: Vec<ActivationRecord>,
    pub next: Option<String>,
}
