//! [`FunctionService`]: deploy, invoke, and read activations — what the HTTP layer calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrobase_core::event::{Causation, rfc3339_millis};
use ferrobase_core::records::RecordStore;
use ferrobase_core::{Clock, Namespace, SystemClock};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::FunctionError;
use crate::activations::{ActivationRetention, ActivationStore};
use crate::engine::{FetchPolicy, HostBinding};
use crate::host::{HostApi, HostContext, Idempotency};
use crate::model::{
    ActivationError, ActivationRecord, Cause, Contract, FunctionKind, FunctionSpec,
    FunctionVersion, OutcomeKind, StartKind, Target, Validate, billed_gb_seconds, validate_name,
};
use crate::pool::{Execution, Pool, PoolConfig, PoolStats};
use crate::store::FunctionStore;

/// Most sequences nested inside one another.
pub const MAX_SEQUENCE_NESTING: usize = 8;

/// Tunables of the function service.
#[derive(Debug, Clone)]
pub struct FunctionsConfig {
    pub pool: PoolConfig,
    /// Activations that may wait for a free slot of a function before 429.
    pub max_waiting: usize,
    pub retention: ActivationRetention,
    /// Most bytes of a result kept in its activation record (the caller gets it whole).
    pub max_record_result_bytes: usize,
    /// Most bytes a result may have at all.
    pub max_result_bytes: usize,
    /// What `fetch` may reach; the server's HTTP client shares this same policy.
    pub fetch: Arc<FetchPolicy>,
    /// The server's base URL as functions should call it, for OpenWhisk's `__OW_API_HOST`
    /// (empty when not configured).
    pub api_host: String,
    /// Wall-clock time of deploys, deadlines and sequence records.
    pub clock: Arc<dyn Clock>,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        FunctionsConfig {
            pool: PoolConfig::default(),
            max_waiting: 64,
            retention: ActivationRetention::default(),
            max_record_result_bytes: 64 * 1024,
            max_result_bytes: 6 * 1024 * 1024,
            fetch: Arc::new(FetchPolicy::default()),
            api_host: String::new(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// A request to run a function.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub namespace: Namespace,
    /// `name` (the latest version) or `name@version`.
    pub target: String,
    pub event: serde_json::Value,
    pub cause: Cause,
    /// Set when an event written by a function triggers this one (loop protection).
    pub causation: Causation,
}

/// A finished activation: its record, and the whole result for the caller.
#[derive(Debug, Clone)]
pub struct Completed {
    pub record: ActivationRecord,
    /// The result as JSON text (outcome `ok` only), not truncated.
    pub result_json: Option<String>,
}

/// Concurrency of one function: running slots and a bounded wait.
#[derive(Debug)]
struct Limiter {
    concurrency: u32,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Per-namespace counters for metrics.
#[derive(Debug, Default, Clone)]
pub struct NamespaceUsage {
    pub outcomes: crate::model::OutcomeCounts,
    pub gb_seconds: f64,
    pub duration_seconds_sum: f64,
    /// Counts per upper bound of [`DURATION_BUCKETS`], then +Inf.
    pub duration_buckets: Vec<u64>,
}

/// Upper bounds (seconds) of the activation duration histogram.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0, 30.0,
];

/// Deploys and runs functions.
#[derive(Debug)]
pub struct FunctionService {
    store: FunctionStore,
    activations: ActivationStore,
    pool: Pool,
    host: Arc<dyn HostApi>,
    fetch: Arc<FetchPolicy>,
    limiters: Mutex<HashMap<(Namespace, String), Arc<Limiter>>>,
    usage: Mutex<HashMap<Namespace, NamespaceUsage>>,
    /// Invocations started with [`FunctionService::start_invoke`] that still run; shutdown
    /// waits for them, so that an accepted asynchronous invocation gets its record.
    detached: tokio_util::task::TaskTracker,
    clock: Arc<dyn Clock>,
    config: FunctionsConfig,
}

impl FunctionService {
    /// Starts the executor threads and the activation recorder (on the current runtime).
    pub fn start(
        records: Arc<dyn RecordStore>,
        host: Arc<dyn HostApi>,
        config: FunctionsConfig,
    ) -> Result<Arc<Self>, FunctionError> {
        Ok(Arc::new(FunctionService {
            store: FunctionStore::new(records.clone()),
            activations: ActivationStore::start(records, config.retention, config.clock.clone()),
            pool: Pool::start(config.pool.clone())?,
            host,
            fetch: config.fetch.clone(),
            limiters: Mutex::default(),
            usage: Mutex::default(),
            detached: tokio_util::task::TaskTracker::new(),
            clock: config.clock.clone(),
            config,
        }))
    }

    /// The graceful end of the runtime: refuses new asynchronous invocations, waits for the
    /// running ones to finish (each ends by its deadline) and then for every activation record
    /// to be committed. Unbounded by itself: the server bounds it with its shutdown grace.
    pub async fn shutdown(&self) {
        self.detached.close();
        self.detached.wait().await;
        self.activations.flush().await;
    }

    pub fn pool_stats(&self) -> &PoolStats {
        self.pool.stats()
    }

    /// Usage per namespace, for metrics.
    pub fn usage(&self) -> HashMap<Namespace, NamespaceUsage> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Compiles `spec` and, when it loads, stores it as the next version of `name`.
    pub async fn deploy(
        &self,
        ns: &Namespace,
        name: &str,
        spec: FunctionSpec,
    ) -> Result<Arc<FunctionVersion>, FunctionError> {
        validate_name(name)?;
        spec.validate()?;
        if spec.kind == FunctionKind::Sequence {
            self.check_sequence(ns, name, &spec.steps).await?;
            let version = self
                .store
                .deploy(
                    ns,
                    name,
                    spec,
                    Contract::Ferrobase,
                    rfc3339_millis(self.clock.now_ms()),
                )
                .await?;
            self.limiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(ns.clone(), name.to_owned()));
            return Ok(version);
        }
        let code = spec.code.clone();
        let memory = spec.memory_mb as usize * 1024 * 1024;
        let check_limit = spec.timeout().min(Duration::from_secs(5));
        // On a supervised executor thread: top-level code stuck in a native builtin is refused
        // at the limit instead of holding the deploy (and a thread) for as long as it runs.
        let contract = self.pool.check(code, memory, check_limit).await?;
        let version = self
            .store
            .deploy(
                ns,
                name,
                spec,
                contract,
                rfc3339_millis(self.clock.now_ms()),
            )
            .await?;
        // A redeploy may change the concurrency; the next invocation builds a new limiter.
        self.limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ns.clone(), name.to_owned()));
        Ok(version)
    }

    pub async fn get(
        &self,
        ns: &Namespace,
        target: &str,
    ) -> Result<Arc<FunctionVersion>, FunctionError> {
        let Target { name, version } = Target::parse(target)?;
        self.store.get(ns, name, version).await
    }

    pub async fn versions(
        &self,
        ns: &Namespace,
        name: &str,
    ) -> Result<Vec<Arc<FunctionVersion>>, FunctionError> {
        validate_name(name)?;
        self.store.versions(ns, name).await
    }

    /// The latest version of each function named after `after`, in name order, at most `max`.
    pub async fn list(
        &self,
        ns: &Namespace,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<Arc<FunctionVersion>>, FunctionError> {
        self.store.list(ns, after, max).await
    }

    /// Deletes `name`; activations already running finish on the code they hold.
    pub async fn delete(&self, ns: &Namespace, name: &str) -> Result<(), FunctionError> {
        validate_name(name)?;
        for version_id in self.store.delete(ns, name).await? {
            self.pool.forget(&version_id);
        }
        self.limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ns.clone(), name.to_owned()));
        Ok(())
    }

    fn limiter(&self, version: &FunctionVersion) -> Arc<Limiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        let key = (version.namespace.clone(), version.name.clone());
        let concurrency = version.spec.concurrency;
        limiters
            .entry(key)
            .and_modify(|limiter| {
                if limiter.concurrency != concurrency {
                    *limiter = Arc::new(Limiter::new(concurrency));
                }
            })
            .or_insert_with(|| Arc::new(Limiter::new(concurrency)))
            .clone()
    }

    /// Checks that every step of a new sequence `name` exists and that no chain of sequences
    /// leads back to `name` or nests deeper than [`MAX_SEQUENCE_NESTING`]. Plain functions
    /// cannot form cycles, so checking each sequence deploy keeps the graph acyclic.
    async fn check_sequence(
        &self,
        ns: &Namespace,
        name: &str,
        steps: &[String],
    ) -> Result<(), FunctionError> {
        let mut frontier: Vec<(String, usize)> = steps.iter().map(|s| (s.clone(), 1)).collect();
        while let Some((step, depth)) = frontier.pop() {
            if step.split('@').next() == Some(name) {
                return Err(FunctionError::Invalid(format!(
                    "sequence {name} would run itself (through {step})"
                )));
            }
            if depth > MAX_SEQUENCE_NESTING {
                return Err(FunctionError::Invalid(format!(
                    "sequences nest more than {MAX_SEQUENCE_NESTING} deep"
                )));
            }
            let version = self.get(ns, &step).await.map_err(|error| match error {
                FunctionError::NotFound(_) => {
                    FunctionError::Invalid(format!("step {step} does not exist"))
                }
                other => other,
            })?;
            if version.spec.kind == FunctionKind::Sequence {
                frontier.extend(version.spec.steps.iter().map(|s| (s.clone(), depth + 1)));
            }
        }
        Ok(())
    }

    /// Runs an invocation and waits for its end.
    pub async fn invoke(&self, invocation: Invocation) -> Result<Completed, FunctionError> {
        let version = self.get(&invocation.namespace, &invocation.target).await?;
        if self.detached.is_closed() {
            return Err(FunctionError::Unavailable(
                "the server is shutting down".to_owned(),
            ));
        }
        self.pool.accepting()?;
        let limiter = self.limiter(&version);
        let _slot = limiter.admit(&version, self.config.max_waiting).await?;
        Ok(self.run_any(version, invocation, new_activation_id()).await)
    }

    async fn run_any(
        &self,
        version: Arc<FunctionVersion>,
        invocation: Invocation,
        id: String,
    ) -> Completed {
        match version.spec.kind {
            FunctionKind::Javascript => self.run(version, invocation, id).await,
            FunctionKind::Sequence => self.run_sequence(version, invocation, id).await,
        }
    }

    /// Runs the steps in order, each step's result the next one's event; stops at the first
    /// failed step, whose outcome and error become the sequence's.
    async fn run_sequence(
        &self,
        version: Arc<FunctionVersion>,
        invocation: Invocation,
        id: String,
    ) -> Completed {
        let started = Instant::now();
        let start_ms = self.clock.now_ms();
        let mut event = invocation.event.clone();
        let mut step_ids = Vec::new();
        let mut logs = Vec::new();
        let mut start_kind = None;
        let mut result_json = None;
        let mut failure: Option<(OutcomeKind, Option<ActivationError>)> = None;
        for step in &version.spec.steps {
            let step_invocation = Invocation {
                target: step.clone(),
                event: event.clone(),
                // Only the sequence's own result answers a web request, not its steps'.
                cause: match &invocation.cause {
                    Cause::Web { .. } => Cause::Request,
                    cause => cause.clone(),
                },
                ..invocation.clone()
            };
            // Boxed: a step may itself be a sequence (the recursion is bounded at deploy).
            match Box::pin(self.invoke(step_invocation)).await {
                Ok(done) => {
                    step_ids.push(done.record.id.clone());
                    start_kind.get_or_insert(done.record.start_kind);
                    logs.push(format!(
                        "step {}@{}: activation {} {} in {:.3} ms",
                        done.record.function,
                        done.record.version,
                        done.record.id,
                        done.record.outcome.as_str(),
                        done.record.duration_ms
                    ));
                    if done.record.outcome != OutcomeKind::Ok {
                        failure = Some((done.record.outcome, done.record.error.clone()));
                        break;
                    }
                    event = done
                        .result_json
                        .as_deref()
                        .and_then(|j| serde_json::from_str(j).ok())
                        .unwrap_or_default();
                    result_json = done.result_json;
                }
                Err(error) => {
                    logs.push(format!("step {step}: {error}"));
                    failure = Some((
                        OutcomeKind::Error,
                        Some(ActivationError {
                            message: format!("step {step}: {error}"),
                            stack: None,
                        }),
                    ));
                    break;
                }
            }
        }
        let duration = started.elapsed();
        if failure.is_none()
            && let Cause::Web { response } = invocation.cause
            && let Err(error) = web_result_check(result_json.as_deref(), version.contract, response)
        {
            failure = Some((OutcomeKind::Error, Some(error)));
        }
        let (outcome, error) = failure.unwrap_or((OutcomeKind::Ok, None));
        if outcome != OutcomeKind::Ok {
            result_json = None;
        }
        let record = ActivationRecord {
            id,
            namespace: version.namespace.clone(),
            function: version.name.clone(),
            version: version.version,
            cause: invocation.cause,
            start: rfc3339_millis(start_ms),
            duration_ms: duration.as_secs_f64() * 1000.0,
            start_kind: start_kind.unwrap_or(StartKind::Warm),
            outcome,
            error,
            result: result_json
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
            result_truncated: false,
            logs,
            logs_truncated: false,
            memory_mb: version.spec.memory_mb,
            billed_gb_seconds: 0.0,
            steps: step_ids,
        };
        self.account(&record, duration);
        self.activations.record(record.clone()).await;
        Completed {
            record,
            result_json,
        }
    }

    /// Starts an invocation and returns its activation id at once (`?blocking=false`). A full
    /// wait queue is still refused right away.
    pub async fn start_invoke(
        self: &Arc<Self>,
        invocation: Invocation,
    ) -> Result<String, FunctionError> {
        let version = self.get(&invocation.namespace, &invocation.target).await?;
        if self.detached.is_closed() {
            return Err(FunctionError::Unavailable(
                "the server is shutting down".to_owned(),
            ));
        }
        self.pool.accepting()?;
        let limiter = self.limiter(&version);
        let ticket = limiter.reserve(&version, self.config.max_waiting)?;
        let id = new_activation_id();
        let service = self.clone();
        let activation_id = id.clone();
        self.detached.spawn(async move {
            let _slot = ticket.wait(&limiter).await;
            service.run_any(version, invocation, activation_id).await;
        });
        Ok(id)
    }

    async fn run(
        &self,
        version: Arc<FunctionVersion>,
        invocation: Invocation,
        id: String,
    ) -> Completed {
        let timeout = version.spec.timeout();
        let deadline = Instant::now() + timeout;
        let deadline_ms = self.clock.now_ms() + timeout.as_millis() as u64;
        let mut env = version.spec.runtime_env();
        if version.contract == Contract::OpenWhisk {
            // OpenWhisk's action context, read by actions as `process.env.__OW_*`.
            env.insert(
                "__OW_ACTION_NAME".into(),
                format!("/{}/{}", version.namespace, version.name),
            );
            env.insert("__OW_ACTIVATION_ID".into(), id.clone());
            env.insert("__OW_NAMESPACE".into(), version.namespace.to_string());
            env.insert("__OW_DEADLINE".into(), deadline_ms.to_string());
            env.insert("__OW_API_HOST".into(), self.config.api_host.clone());
        }
        let ctx = json!({
            "activationId": id,
            "functionName": version.name,
            "version": version.version,
            "namespace": version.namespace,
            "deadline": deadline_ms,
            "cause": invocation.cause,
            "env": env,
        });
        // Writes made by this activation are one hop deeper than what triggered it (a request
        // is depth 0), so chains of functions triggering functions can be cut off.
        let causation = Causation {
            cause: Some(id.clone()),
            depth: invocation.causation.depth.saturating_add(1),
            write_key: None,
        };
        let execution = Execution {
            version: version.clone(),
            event_json: invocation.event.to_string(),
            ctx_json: ctx.to_string(),
            deadline,
            host: HostBinding {
                api: self.host.clone(),
                context: HostContext {
                    namespace: version.namespace.clone(),
                    function: version.name.clone(),
                    activation_id: id.clone(),
                    causation,
                    idempotency: match &invocation.cause {
                        Cause::Event { id, .. } => Some(Idempotency::new(id, &version.name)),
                        Cause::Request | Cause::Web { .. } => None,
                    },
                },
                fetch: self.fetch.clone(),
            },
        };
        let (dispatched, dispatched_ms) = (Instant::now(), self.clock.now_ms());
        let executed = self.pool.execute(execution).await;
        let (start_kind, mut output, duration, started) = match executed {
            Ok(done) => (done.start_kind, done.output, done.duration, done.started),
            Err(error) => (
                StartKind::Cold,
                crate::engine::ActivationOutput {
                    outcome: OutcomeKind::Error,
                    result_json: None,
                    error: Some(crate::model::ActivationError {
                        message: error.to_string(),
                        stack: None,
                    }),
                    logs: Vec::new(),
                    logs_dropped: 0,
                },
                Duration::ZERO,
                dispatched,
            ),
        };
        if !version.spec.secrets.is_empty() {
            redact_output(&version.spec, &mut output);
        }
        if let Some(result) = &output.result_json
            && result.len() > self.config.max_result_bytes
        {
            output.outcome = OutcomeKind::Error;
            output.error = Some(crate::model::ActivationError {
                message: format!(
                    "the result is {} bytes; the limit is {}",
                    result.len(),
                    self.config.max_result_bytes
                ),
                stack: None,
            });
            output.result_json = None;
        }
        if output.outcome == OutcomeKind::Ok
            && let Cause::Web { response } = invocation.cause
            && let Err(error) =
                web_result_check(output.result_json.as_deref(), version.contract, response)
        {
            output.outcome = OutcomeKind::Error;
            output.error = Some(error);
            output.result_json = None;
        }
        let (result, result_truncated) = match &output.result_json {
            None => (None, false),
            Some(json) if json.len() <= self.config.max_record_result_bytes => {
                (serde_json::from_str(json).ok(), false)
            }
            Some(json) => {
                let mut cut = self.config.max_record_result_bytes;
                while !json.is_char_boundary(cut) {
                    cut -= 1;
                }
                (
                    Some(serde_json::Value::String(json[..cut].to_owned())),
                    true,
                )
            }
        };
        let gb_seconds = billed_gb_seconds(version.spec.memory_mb, duration);
        // Wall-clock start: the clock's time at dispatch plus the wait for an executor.
        let start_ms =
            dispatched_ms + started.saturating_duration_since(dispatched).as_millis() as u64;
        let record = ActivationRecord {
            id,
            namespace: version.namespace.clone(),
            function: version.name.clone(),
            version: version.version,
            cause: invocation.cause,
            start: rfc3339_millis(start_ms),
            duration_ms: duration.as_secs_f64() * 1000.0,
            start_kind,
            outcome: output.outcome,
            error: output.error,
            result,
            result_truncated,
            logs: output.logs,
            logs_truncated: output.logs_dropped > 0,
            memory_mb: version.spec.memory_mb,
            billed_gb_seconds: gb_seconds,
            steps: Vec::new(),
        };
        self.account(&record, duration);
        self.activations.record(record.clone()).await;
        Completed {
            record,
            result_json: output.result_json,
        }
    }

    fn account(&self, record: &ActivationRecord, duration: Duration) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let entry = usage.entry(record.namespace.clone()).or_default();
        if entry.duration_buckets.is_empty() {
            entry.duration_buckets = vec![0; DURATION_BUCKETS.len() + 1];
        }
        entry.outcomes.add(record.outcome);
        entry.gb_seconds += record.billed_gb_seconds;
        let seconds = duration.as_secs_f64();
        entry.duration_seconds_sum += seconds;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        entry.duration_buckets[bucket] += 1;
    }

    pub async fn activation(
        &self,
        ns: &Namespace,
        id: &str,
    ) -> Result<ActivationRecord, FunctionError> {
        self.activations.get(ns, id).await
    }

    pub async fn activations(
        &self,
        ns: &Namespace,
        function: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ActivationRecord>, FunctionError> {
        self.activations.list(ns, function, after, limit).await
    }
}

/// A new activation id: a ULID, strictly increasing within this process (also within one
/// millisecond), so that ids sort in start order.
fn new_activation_id() -> String {
    static IDS: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
    let generator = ids.get_or_insert_with(ulid::Generator::new);
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// A place in a function's wait queue, taken before the activation starts.
struct Ticket;

impl Limiter {
    fn new(concurrency: u32) -> Self {
        Limiter {
            concurrency,
            slots: Arc::new(Semaphore::new(concurrency as usize)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Takes a place in line, unless every slot is busy and `max_waiting` already wait.
    fn reserve(
        &self,
        version: &FunctionVersion,
        max_waiting: usize,
    ) -> Result<Ticket, FunctionError> {
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        if ahead >= self.slots.available_permits() + max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(FunctionError::Busy(format!(
                "function {} is at its concurrency limit of {} with {max_waiting} waiting",
                version.name, self.concurrency
            )));
        }
        Ok(Ticket)
    }

    async fn admit(
        &self,
        version: &FunctionVersion,
        max_waiting: usize,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, FunctionError> {
        let ticket = self.reserve(version, max_waiting)?;
        Ok(ticket.wait(self).await)
    }
}

impl Ticket {
    async fn wait(self, limiter: &Limiter) -> tokio::sync::OwnedSemaphorePermit {
        let permit = limiter
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("limiter semaphores are never closed");
        limiter.waiting.fetch_sub(1, Ordering::SeqCst);
        permit
    }
}

/// Takes the secrets' values out of everything of an activation that leaves the server: its
/// result (the caller's answer and the record), its error and its logs.
fn redact_output(spec: &FunctionSpec, output: &mut crate::engine::ActivationOutput) {
    if let Some(json) = &mut output.result_json
        && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json)
    {
        // Within the parsed value, so that the redaction cannot break the JSON.
        redact_value(spec, &mut value);
        *json = value.to_string();
    }
    if let Some(error) = &mut output.error {
        error.message = spec.redact(&error.message);
        error.stack = error.stack.as_deref().map(|stack| spec.redact(stack));
    }
    for line in &mut output.logs {
        *line = spec.redact(line);
    }
}

fn redact_value(spec: &FunctionSpec, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => *text = spec.redact(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_value(spec, v)),
        serde_json::Value::Object(fields) => {
            let redacted = std::mem::take(fields)
                .into_iter()
                .map(|(key, mut v)| {
                    redact_value(spec, &mut v);
                    (spec.redact(&key), v)
                })
                .collect();
            *fields = redacted;
        }
        _ => {}
    }
}

/// Why a web action's successful result cannot answer its request, as the activation's error.
fn web_result_check(
    result_json: Option<&str>,
    contract: Contract,
    response: crate::web::ResponseType,
) -> Result<(), crate::model::ActivationError> {
    crate::web::shape(result_json.unwrap_or("null"), contract, response)
        .map(drop)
        .map_err(|message| crate::model::ActivationError {
            message: format!("invalid web response: {message}"),
            stack: None,
        })
}
