//! Server configuration: documented structs with defaults and bounds.
//!
//! Values come from, lowest precedence first: the defaults below, a TOML file (`--config`),
//! `FERROBASE_*` environment variables, and command-line flags. The CLI (`cli::CommonArgs`,
//! above this module) resolves flags and variables and merges them over the file that
//! [`Config::from_file`] reads.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Everything `ferrobase serve` (and the commands that share its data directory) reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP API. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where data, generated keys and logs live. Default `./data`.
    pub data_dir: PathBuf,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// How long shutdown waits for in-flight requests before giving up on them. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub http: HttpSettings,
    pub auth: AuthConfig,
    pub cors: CorsConfig,
    pub kv: KvConfig,
    pub events: EventsConfig,
    pub queue: QueueSettings,
    pub functions: FunctionsSettings,
    pub storage: StorageSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Text,
            shutdown_grace: Duration::from_secs(30),
            http: HttpSettings::default(),
            auth: AuthConfig::default(),
            cors: CorsConfig::default(),
            kv: KvConfig::default(),
            events: EventsConfig::default(),
            queue: QueueSettings::default(),
            functions: FunctionsSettings::default(),
            storage: StorageSettings::default(),
        }
    }
}

/// Connection limits of both listeners (the HTTP API and the S3 endpoint), so that clients
/// that connect and send nothing, trickle a request head or park idle connections cannot
/// hold sockets open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Time a client has to send a complete request head (request line and headers), counted
    /// from the connection's start or from the first byte of a later request. Default 10 s;
    /// between 100ms and 5min.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long. A
    /// streaming response (an event stream) is a request in flight, so it is never idle.
    /// Default 60 s; between 100ms and 1h.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open connections allowed from one IP address per listener; connections beyond it are
    /// closed as soon as they are accepted. Default 256; between 1 and 100000.
    pub max_connections_per_ip: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections_per_ip: 256,
        }
    }
}

impl HttpSettings {
    fn validate(&self) -> anyhow::Result<()> {
        if !(Duration::from_millis(100)..=Duration::from_secs(300))
            .contains(&self.header_read_timeout)
        {
            bail!("http.header_read_timeout must be between 100ms and 5min");
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&self.idle_timeout) {
            bail!("http.idle_timeout must be between 100ms and 1h");
        }
        if !(1..=100_000).contains(&self.max_connections_per_ip) {
            bail!("http.max_connections_per_ip must be between 1 and 100000");
        }
        Ok(())
    }
}

/// The function runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionsSettings {
    /// Executor threads running isolates; 0 (the default) means one per core. At most 256.
    pub threads: usize,
    /// Pre-warmed isolates kept per thread. Default 2; at most 64.
    pub prewarmed_per_thread: usize,
    /// Warm isolates idle this long are dropped. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub idle_ttl: Duration,
    /// Memory all idle isolates may hold before the least recently used go. Default 1024 MiB.
    pub memory_budget_mb: usize,
    /// Activations that may wait for a busy function before 429. Default 64.
    pub max_waiting: usize,
    /// Executor threads stuck in native code past a deadline that are replaced by fresh ones
    /// while they finish; beyond this many, stuck threads are not replaced, so the pool never
    /// runs more than `threads + max_abandoned_threads` OS threads. Default 8; at most 256.
    pub max_abandoned_threads: usize,
    /// Hosts functions may `fetch` from: exact hosts (names are matched after IDNA mapping
    /// and lowercasing; IP addresses in any notation), or `*.example.com` for the names below
    /// `example.com`; any port. Default none.
    pub fetch_allowed_hosts: Vec<String>,
    /// Refuse `fetch` connections to addresses that are not public (loopback, private
    /// networks, link-local and cloud metadata, CGNAT, multicast, ...), checked on the
    /// addresses a name resolves to and on every redirect hop. Default true; set false only
    /// where functions must reach such hosts (development, tests).
    pub fetch_deny_private: bool,
    /// Activation records kept per namespace. Default 10000.
    pub activations_max_per_namespace: usize,
    /// Activation records older than this are dropped. Default 7 days.
    #[serde(with = "humantime_serde")]
    pub activations_max_age: Duration,
    /// The HTTP API's URL as functions reach it, given to OpenWhisk actions as
    /// `process.env.__OW_API_HOST`. Default `http://{listen}` (as bound); an `http` or
    /// `https` URL.
    pub api_host: Option<String>,
}

impl Default for FunctionsSettings {
    fn default() -> Self {
        FunctionsSettings {
            threads: 0,
            prewarmed_per_thread: 2,
            idle_ttl: Duration::from_secs(600),
            memory_budget_mb: 1024,
            max_waiting: 64,
            max_abandoned_threads: 8,
            fetch_allowed_hosts: Vec::new(),
            fetch_deny_private: true,
            activations_max_per_namespace: 10_000,
            activations_max_age: Duration::from_secs(7 * 24 * 3600),
            api_host: None,
        }
    }
}

impl FunctionsSettings {
    /// The rule of functions' `fetch`, shared by the runtime and the server's HTTP client.
    pub fn fetch_policy(&self) -> anyhow::Result<ferrobase_functions::FetchPolicy> {
        use ferrobase_functions::PrivateAddresses;
        let private = if self.fetch_deny_private {
            PrivateAddresses::Deny
        } else {
            PrivateAddresses::Allow
        };
        ferrobase_functions::FetchPolicy::new(&self.fetch_allowed_hosts, private)
            .context("functions.fetch_allowed_hosts")
    }

    pub fn runtime_config(
        &self,
        fetch: std::sync::Arc<ferrobase_functions::FetchPolicy>,
    ) -> ferrobase_functions::FunctionsConfig {
        use ferrobase_functions::activations::ActivationRetention;
        use ferrobase_functions::pool::PoolConfig;
        ferrobase_functions::FunctionsConfig {
            pool: PoolConfig {
                threads: self.threads,
                stems_per_thread: self.prewarmed_per_thread,
                idle_ttl: self.idle_ttl,
                memory_budget_bytes: self.memory_budget_mb * 1024 * 1024,
                max_abandoned_threads: self.max_abandoned_threads,
                ..PoolConfig::default()
            },
            max_waiting: self.max_waiting,
            retention: ActivationRetention {
                max_per_namespace: self.activations_max_per_namespace,
                max_age: self.activations_max_age,
                ..ActivationRetention::default()
            },
            fetch,
            api_host: self.api_host.clone().unwrap_or_default(),
            ..ferrobase_functions::FunctionsConfig::default()
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.threads > 256 {
            bail!("functions.threads must be at most 256");
        }
        if self.max_abandoned_threads > 256 {
            bail!("functions.max_abandoned_threads must be at most 256");
        }
        if self.prewarmed_per_thread > 64 {
            bail!("functions.prewarmed_per_thread must be at most 64");
        }
        if self.max_waiting > 100_000 {
            bail!("functions.max_waiting must be at most 100000");
        }
        if self.activations_max_per_namespace == 0 {
            bail!("functions.activations_max_per_namespace must be at least 1");
        }
        if let Some(host) = &self.api_host
            && !matches!(
                reqwest::Url::parse(host)
                    .map(|url| url.scheme().to_owned())
                    .as_deref(),
                Ok("http" | "https")
            )
        {
            bail!("functions.api_host must be an http or https URL");
        }
        self.fetch_policy()?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Cross-origin access for browser apps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the API, e.g. `https://app.example.com`; `*` allows any. Empty
    /// (the default) sends no CORS headers, so browsers keep their same-origin rule.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KvEngineKind {
    /// Durable, embedded (sled) under `{data_dir}/kv`.
    Sled,
    /// In memory only: everything is gone when the process exits.
    Memory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvConfig {
    pub engine: KvEngineKind,
    /// Largest value in bytes. Default 1 MiB; between 1 byte and 64 MiB.
    pub max_value_bytes: usize,
    /// Largest `_txn` request body in bytes. Default 4 MiB; between 1 KiB and 256 MiB.
    pub max_txn_bytes: usize,
    /// How often expired keys are swept and the change log pruned. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            engine: KvEngineKind::Sled,
            max_value_bytes: 1024 * 1024,
            max_txn_bytes: 4 * 1024 * 1024,
            maintenance_interval: Duration::from_secs(1),
        }
    }
}

/// Change-log retention. Events older than `max_age` or beyond `max_events` per namespace are
/// dropped; either may be unset. Default: 7 days, no count limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
    pub max_events: Option<u64>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_events: None,
        }
    }
}

impl EventsConfig {
    pub fn retention(&self) -> ferrobase_kv::Retention {
        ferrobase_kv::Retention {
            max_age: self.max_age,
            max_events: self.max_events,
        }
    }
}

/// The queue service: the embedded engine under `{data_dir}/queue`, or NATS JetStream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// `embedded` (sled under `{data_dir}/queue`, the default) or `jetstream` (the NATS server
    /// at `nats_url`, for several nodes sharing one queue store).
    pub engine: QueueEngineKind,
    /// The NATS server of the `jetstream` engine, e.g. `nats://127.0.0.1:4222`. Required then.
    pub nats_url: Option<String>,
    /// Prefix of the streams, KV buckets and subjects the `jetstream` engine creates: 1 to 32
    /// of `A-Z a-z 0-9 -`. Default `ferrobase`. Nodes sharing queues use the same prefix.
    pub nats_prefix: String,
    /// Replicas of each stream and bucket on a NATS cluster. Default 1; 1 to 5.
    pub nats_replicas: usize,
    /// Largest message body in bytes. Default 256 KiB; between 1 byte and 16 MiB.
    pub max_message_bytes: usize,
    /// Most messages per publish, per pull and receipts per ack. Default 1000; 1 to 10000.
    pub max_batch: usize,
    /// How often retention runs and consumed messages are reclaimed. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            engine: QueueEngineKind::Embedded,
            nats_url: None,
            nats_prefix: "ferrobase".to_owned(),
            nats_replicas: 1,
            max_message_bytes: 256 * 1024,
            max_batch: 1000,
            maintenance_interval: Duration::from_secs(1),
        }
    }
}

/// Which engine holds the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum QueueEngineKind {
    /// Durable, embedded (sled) under `{data_dir}/queue`.
    Embedded,
    /// NATS JetStream at `queue.nats_url`.
    #[serde(rename = "jetstream")]
    #[value(name = "jetstream")]
    JetStream,
}

impl QueueSettings {
    /// The JetStream engine's config; `None` for the embedded engine.
    pub fn jetstream(&self) -> anyhow::Result<Option<ferrobase_queue::JetStreamConfig>> {
        match self.engine {
            QueueEngineKind::Embedded => Ok(None),
            QueueEngineKind::JetStream => Ok(Some(ferrobase_queue::JetStreamConfig {
                url: self
                    .nats_url
                    .clone()
                    .context("queue.engine = \"jetstream\" needs queue.nats_url")?,
                prefix: self.nats_prefix.clone(),
                replicas: self.nats_replicas,
            })),
        }
    }

    pub fn limits(&self) -> ferrobase_queue::QueueLimits {
        ferrobase_queue::QueueLimits {
            max_message_bytes: self.max_message_bytes,
            max_batch: self.max_batch,
            max_pull: self.max_batch,
            ..ferrobase_queue::QueueLimits::default()
        }
    }
}

/// Where a listener binds: an address, or `off` for no listener at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Listen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        text.parse().map(Listen::At).map_err(|_| {
            format!("{text:?} is neither an address such as 127.0.0.1:9000 nor \"off\"")
        })
    }
}

impl TryFrom<String> for Listen {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Listen> for String {
    fn from(listen: Listen) -> String {
        match listen {
            Listen::Off => "off".to_owned(),
            Listen::At(address) => address.to_string(),
        }
    }
}

/// Object storage: where bodies live, and the S3 protocol endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `local` (files under `{data_dir}/storage`, the default) or `s3` (the `[storage.s3]`
    /// service).
    pub backend: StorageBackendKind,
    /// Address of the S3 protocol endpoint, or `off` for none (presigned URLs then answer
    /// 503). Default `127.0.0.1:9000`.
    pub s3_listen: Listen,
    /// The S3 endpoint's URL as clients reach it, used in presigned URLs. Default
    /// `http://{s3_listen}` (as bound).
    pub s3_public_url: Option<String>,
    /// Unreferenced blobs younger than this are left alone by the orphan sweep: they may be
    /// uploads in flight. Default 1 h; between 1 min and 7 days.
    #[serde(with = "humantime_serde")]
    pub orphan_min_age: Duration,
    /// How often the orphan sweep runs (also once at start). Default 1 h; 1 s to 1 day.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// ETags of bodies sent without `Content-MD5`: `auto` (the default) gives bodies up to
    /// `md5_etag_max_bytes` their MD5 and larger ones a BLAKE3-based `{hash}-1`, so that large
    /// PUTs run at disk speed rather than MD5 speed; `md5` gives every body its MD5, for
    /// clients that compare a large single-part upload's ETag with their own MD5.
    pub etag: EtagMode,
    /// Multipart uploads left incomplete this long are aborted by the sweep, with their
    /// parts. Default 7 days (as Cloudflare R2); `0s` keeps them until a client aborts them
    /// (as S3 without a lifecycle rule); otherwise at least 1 h.
    #[serde(with = "humantime_serde")]
    pub abort_uploads_after: Duration,
    /// Largest body that gets an MD5 ETag under `etag = "auto"`. Default 8 MiB (the size
    /// above which aws-cli and boto3 upload in parts anyway).
    pub md5_etag_max_bytes: u64,
    /// Required when `backend = "s3"`.
    pub s3: Option<S3BackendSettings>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            backend: StorageBackendKind::Local,
            s3_listen: Listen::At(SocketAddr::from(([127, 0, 0, 1], 9000))),
            s3_public_url: None,
            orphan_min_age: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(3600),
            abort_uploads_after: ferrobase_storage::DEFAULT_UPLOAD_LIFETIME,
            etag: EtagMode::Auto,
            md5_etag_max_bytes: ferrobase_storage::digest::DEFAULT_MD5_ETAG_MAX_BYTES,
            s3: None,
        }
    }
}

/// Which bodies get their MD5 as ETag (see `ferrobase_storage::digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EtagMode {
    /// MD5 up to `md5_etag_max_bytes` or with `Content-MD5`, BLAKE3-based above.
    Auto,
    /// MD5 for every body.
    Md5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackendKind {
    Local,
    S3,
}

/// An S3-compatible service holding every bucket's bodies in one backend bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3BackendSettings {
    /// e.g. `http://minio:9000`; leave unset for AWS S3.
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow plain `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: bool,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl StorageSettings {
    /// How long an incomplete multipart upload is kept (`None`: until aborted).
    pub fn upload_lifetime(&self) -> Option<Duration> {
        (!self.abort_uploads_after.is_zero()).then_some(self.abort_uploads_after)
    }

    /// The storage library's ETag policy.
    pub fn etag_policy(&self) -> ferrobase_storage::EtagPolicy {
        match self.etag {
            EtagMode::Auto => ferrobase_storage::EtagPolicy {
                md5_max_bytes: self.md5_etag_max_bytes,
            },
            EtagMode::Md5 => ferrobase_storage::EtagPolicy::always_md5(),
        }
    }

    /// The storage library's backend config.
    pub fn backend_config(
        &self,
        data_dir: &Path,
    ) -> anyhow::Result<ferrobase_storage::BackendConfig> {
        Ok(match self.backend {
            StorageBackendKind::Local => ferrobase_storage::BackendConfig::Local {
                root: data_dir.join("storage"),
            },
            StorageBackendKind::S3 => {
                let s3 = self
                    .s3
                    .as_ref()
                    .context("storage.backend = \"s3\" needs a [storage.s3] section")?;
                ferrobase_storage::BackendConfig::S3(ferrobase_storage::S3BackendConfig {
                    endpoint: s3.endpoint.clone(),
                    region: s3.region.clone(),
                    bucket: s3.bucket.clone(),
                    access_key_id: s3.access_key_id.clone(),
                    secret_access_key: s3.secret_access_key.clone(),
                    allow_http: s3.allow_http,
                })
            }
        })
    }
}

impl Config {
    /// Reads `path` (when given) over the defaults.
    pub fn from_file(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// Rejects values outside their documented bounds, naming the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=64 * 1024 * 1024).contains(&self.kv.max_value_bytes) {
            bail!("kv.max_value_bytes must be between 1 and 67108864");
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.kv.max_txn_bytes) {
            bail!("kv.max_txn_bytes must be between 1024 and 268435456");
        }
        if self.kv.maintenance_interval < Duration::from_millis(10)
            || self.kv.maintenance_interval > Duration::from_secs(3600)
        {
            bail!("kv.maintenance_interval must be between 10ms and 1h");
        }
        if self.events.max_events == Some(0) {
            bail!("events.max_events must be at least 1 (leave it unset for no count limit)");
        }
        if !(1..=16 * 1024 * 1024).contains(&self.queue.max_message_bytes) {
            bail!("queue.max_message_bytes must be between 1 and 16777216");
        }
        if !(1..=10_000).contains(&self.queue.max_batch) {
            bail!("queue.max_batch must be between 1 and 10000");
        }
        if self.queue.maintenance_interval < Duration::from_millis(10)
            || self.queue.maintenance_interval > Duration::from_secs(3600)
        {
            bail!("queue.maintenance_interval must be between 10ms and 1h");
        }
        if self.queue.engine == QueueEngineKind::JetStream && self.queue.nats_url.is_none() {
            bail!("queue.engine = \"jetstream\" needs queue.nats_url");
        }
        if !(1..=5).contains(&self.queue.nats_replicas) {
            bail!("queue.nats_replicas must be between 1 and 5");
        }
        self.functions.validate()?;
        self.http.validate()?;
        self.auth.validate()?;
        if self.shutdown_grace > Duration::from_secs(3600) {
            bail!("shutdown_grace must be at most 1h");
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600))
            .contains(&self.storage.orphan_min_age)
        {
            bail!("storage.orphan_min_age must be between 1min and 7days");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600))
            .contains(&self.storage.sweep_interval)
        {
            bail!("storage.sweep_interval must be between 1s and 1day");
        }
        let abort_after = self.storage.abort_uploads_after;
        if !abort_after.is_zero() && abort_after < Duration::from_secs(3600) {
            bail!("storage.abort_uploads_after must be 0s (never) or at least 1h");
        }
        if self.storage.backend == StorageBackendKind::S3 && self.storage.s3.is_none() {
            bail!("storage.backend = \"s3\" needs a [storage.s3] section");
        }
        Ok(())
    }
}

/// Default allowed clock skew for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest accepted `leeway`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// How tokens are verified (`[auth]` in the config file).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 shared secret (at least 32 bytes); when unset a random 256-bit secret is generated
    /// into `{data_dir}/auth/hs256.secret` (mode 0600) on first use and reused afterwards.
    pub hs256_secret: Option<String>,
    /// PEM files with RSA (RS256) or EC P-256 (ES256) public keys, one key per file.
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS (RFC 7517) JSON file with RS256/ES256 public keys, selected by `kid`.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`: when set, tokens without this issuer are refused.
    pub issuer: Option<String>,
    /// Required `aud`: when set, tokens without this audience are refused. When unset, tokens
    /// carrying any `aud` are refused (RFC 7519 §4.1.3).
    pub audience: Option<String>,
    /// Allowed clock skew for `exp` and `nbf`: default 30 s, at most 5 min (e.g. "30s").
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The built-in auth service: how long a rotated refresh token is still accepted, so two
    /// tabs refreshing at once both succeed. Default 10 s; at most 1 min.
    #[serde(with = "humantime_serde")]
    pub refresh_reuse_grace: Duration,
    /// How long one of a namespace's ES256 signing keys signs before it is replaced (it keeps
    /// verifying until the tokens it signed have expired). Default 7 days; 1 h to 90 days.
    #[serde(with = "humantime_serde")]
    pub signing_key_rotation: Duration,
    pub rate_limits: AuthRateLimits,
}

/// Rate limits of sign-up, sign-in, refresh and code checks (`[auth.rate_limits]`), each
/// operation counted apart; over the limit a request answers 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthRateLimits {
    /// Requests per minute (and burst) from one client IP. Default 60; 0 turns it off; at
    /// most 100000.
    pub per_ip_per_minute: u32,
    /// Requests per minute (and burst) about one account (an email, or a session for
    /// refresh). Default 10; 0 turns it off; at most 100000.
    pub per_account_per_minute: u32,
}

impl Default for AuthRateLimits {
    fn default() -> Self {
        AuthRateLimits {
            per_ip_per_minute: 60,
            per_account_per_minute: 10,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            hs256_secret: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
            refresh_reuse_grace: Duration::from_secs(10),
            signing_key_rotation: Duration::from_secs(7 * 24 * 3600),
            rate_limits: AuthRateLimits::default(),
        }
    }
}

impl AuthConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.refresh_reuse_grace > Duration::from_secs(60) {
            bail!("auth.refresh_reuse_grace must be at most 1min");
        }
        if !(Duration::from_secs(3600)..=Duration::from_secs(90 * 24 * 3600))
            .contains(&self.signing_key_rotation)
        {
            bail!("auth.signing_key_rotation must be between 1h and 90days");
        }
        if self.rate_limits.per_ip_per_minute > 100_000
            || self.rate_limits.per_account_per_minute > 100_000
        {
            bail!("auth.rate_limits values must be at most 100000");
        }
        Ok(())
    }
}

// Written by hand so that logging the configuration never logs the secret.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("public_key_files", &self.public_key_files)
            .field("jwks_file", &self.jwks_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("signing_key_rotation", &self.signing_key_rotation)
            .field("rate_limits", &self.rate_limits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_rejected() {
        let config: Config = toml::from_str(
            "listen = \"127.0.0.1:9999\"\n[kv]\nmax_value_bytes = 10\n[events]\nmax_age = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.kv.max_value_bytes, 10);
        assert_eq!(config.kv.engine, KvEngineKind::Sled);
        assert_eq!(config.events.max_age, Some(Duration::from_secs(3600)));
        assert!(toml::from_str::<Config>("listn = \"x\"").is_err());
    }

    #[test]
    fn the_jetstream_queue_engine_needs_a_nats_url() {
        let config: Config = toml::from_str("[queue]\nengine = \"jetstream\"\n").unwrap();
        assert_eq!(config.queue.engine, QueueEngineKind::JetStream);
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("nats_url")
        );
        let config: Config = toml::from_str(
            "[queue]\nengine = \"jetstream\"\nnats_url = \"nats://127.0.0.1:4222\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        let nats = config.queue.jetstream().unwrap().expect("jetstream config");
        assert_eq!(
            (nats.url.as_str(), nats.prefix.as_str()),
            ("nats://127.0.0.1:4222", "ferrobase")
        );
    }

    #[test]
    fn the_etag_setting_picks_the_storage_policy() {
        let default = Config::default().storage.etag_policy();
        assert_eq!(default, ferrobase_storage::EtagPolicy::default());
        assert_eq!(default.md5_max_bytes, 8 * 1024 * 1024);
        let config: Config =
            toml::from_str("[storage]\netag = \"auto\"\nmd5_etag_max_bytes = 1024\n").unwrap();
        assert_eq!(config.storage.etag_policy().md5_max_bytes, 1024);
        let config: Config = toml::from_str("[storage]\netag = \"md5\"\n").unwrap();
        assert_eq!(
            config.storage.etag_policy(),
            ferrobase_storage::EtagPolicy::always_md5()
        );
        assert!(toml::from_str::<Config>("[storage]\netag = \"sha1\"\n").is_err());
    }

    #[test]
    fn incomplete_uploads_are_aborted_after_a_week_unless_told_otherwise() {
        let config = Config::default();
        assert_eq!(
            config.storage.upload_lifetime(),
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        let never: Config = toml::from_str("[storage]\nabort_uploads_after = \"0s\"\n").unwrap();
        never.validate().unwrap();
        assert_eq!(never.storage.upload_lifetime(), None);
        let short: Config = toml::from_str("[storage]\nabort_uploads_after = \"5m\"\n").unwrap();
        assert!(
            short
                .validate()
                .unwrap_err()
                .to_string()
                .contains("abort_uploads_after")
        );
    }

    #[test]
    fn bounds_are_enforced() {
        let mut config = Config::default();
        config.validate().unwrap();
        config.kv.max_value_bytes = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_value_bytes")
        );
        let config: Config = toml::from_str("[http]\nheader_read_timeout = \"10ms\"\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("header_read_timeout")
        );
        let config: Config = toml::from_str("[functions]\nmax_abandoned_threads = 257\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_abandoned_threads")
        );
        let config: Config = toml::from_str("[functions]\nmax_abandoned_threads = 3\n").unwrap();
        config.validate().unwrap();
        let policy = std::sync::Arc::new(config.functions.fetch_policy().unwrap());
        assert_eq!(
            config
                .functions
                .runtime_config(policy)
                .pool
                .max_abandoned_threads,
            3
        );
        let config: Config =
            toml::from_str("[functions]\napi_host = \"https://api.example.com\"\n").unwrap();
        config.validate().unwrap();
        let policy = std::sync::Arc::new(config.functions.fetch_policy().unwrap());
        assert_eq!(
            config.functions.runtime_config(policy).api_host,
            "https://api.example.com"
        );
        let config: Config = toml::from_str("[functions]\napi_host = \"ftp://x\"\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("api_host")
        );
        let config: Config = toml::from_str("[http]\nmax_connections_per_ip = 0\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_connections_per_ip")
        );
    }
}
