//! The isolate pool: executor threads that own isolates.
//!
//! One thread per core by default, each with a single-threaded tokio runtime and a `LocalSet`:
//! isolates are `!Send` and never leave the thread that made them, and an activation waiting
//! on an SDK call lets the thread run others. Each thread keeps:
//! - warm isolates per function version, reused while idle and evicted after an idle TTL or,
//!   least recently used first, when the thread's share of the memory budget is exceeded;
//! - a few pre-warmed stem cells (runtime, context and SDK ready), specialised on first use
//!   and refilled in the background, like OpenWhisk's stem cells.
//!
//! The dispatcher sends an execution to a thread that has an idle warm isolate for the version
//! if there is one, otherwise to the least busy thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::FunctionError;
use crate::engine::{ActivationInput, ActivationOutput, HostBinding, Isolate, LogLimits};
use crate::model::{ActivationError, FunctionVersion, OutcomeKind, StartKind};

/// Native stack of executor threads: comfortably above the JS stack limit.
const EXECUTOR_STACK_BYTES: usize = 16 * 1024 * 1024;
/// How often idle isolates are checked for eviction.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Tunables of the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Executor threads; 0 means one per core.
    pub threads: usize,
    /// Pre-warmed isolates kept ready per thread.
    pub stems_per_thread: usize,
    /// Warm isolates idle longer than this are dropped.
    pub idle_ttl: Duration,
    /// Memory all idle isolates together may hold before the least recently used go.
    pub memory_budget_bytes: usize,
    pub log_limits: LogLimits,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            threads: 0,
            stems_per_thread: 2,
            idle_ttl: Duration::from_secs(600),
            memory_budget_bytes: 1024 * 1024 * 1024,
            log_limits: LogLimits::default(),
        }
    }
}

/// One activation to run.
#[derive(Debug)]
pub struct Execution {
    pub version: Arc<FunctionVersion>,
    pub event_json: String,
    pub ctx_json: String,
    pub deadline: Instant,
    pub host: HostBinding,
}

/// What running it gave.
#[derive(Debug)]
pub struct Executed {
    pub start_kind: StartKind,
    pub output: ActivationOutput,
    pub started_at: SystemTime,
    pub duration: Duration,
}

/// Counters and gauges of the pool, for metrics and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub cold: AtomicU64,
    pub prewarmed: AtomicU64,
    pub warm: AtomicU64,
    pub evicted: AtomicU64,
    pub warm_idle: AtomicUsize,
    pub stems: AtomicUsize,
    pub idle_memory_bytes: AtomicUsize,
}

enum Job {
    Execute(Box<Execution>, oneshot::Sender<Executed>),
    /// Drop idle isolates of a version (the function was deleted or redeployed).
    Forget(String),
    Shutdown,
}

#[derive(Debug, Default)]
struct ThreadShared {
    /// Idle warm isolates per version id on this thread.
    warm_idle: Mutex<HashMap<String, usize>>,
    running: AtomicUsize,
}

#[derive(Debug)]
struct ThreadHandle {
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<ThreadShared>,
}

/// The executor threads and their dispatcher. Dropping it stops the threads.
#[derive(Debug)]
pub struct Pool {
    threads: Vec<ThreadHandle>,
    stats: Arc<PoolStats>,
}

impl Pool {
    pub fn start(config: PoolConfig) -> Result<Pool, FunctionError> {
        let count = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.threads
        };
        let stats = Arc::new(PoolStats::default());
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let (jobs, queue) = mpsc::unbounded_channel();
            let shared = Arc::new(ThreadShared::default());
            let (config, thread_shared, thread_stats) =
                (config.clone(), shared.clone(), stats.clone());
            let budget_bytes = config.memory_budget_bytes / count;
            std::thread::Builder::new()
                .name(format!("ferrobase-js-{index}"))
                .stack_size(EXECUTOR_STACK_BYTES)
                .spawn(move || {
                    let executor = Executor {
                        config,
                        shared: thread_shared,
                        stats: thread_stats,
                        budget_bytes,
                        local: Rc::default(),
                    };
                    executor.run(queue)
                })
                .map_err(|error| {
                    FunctionError::Unavailable(format!("cannot start executor: {error}"))
                })?;
            threads.push(ThreadHandle { jobs, shared });
        }
        Ok(Pool { threads, stats })
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Runs `execution` on an executor thread and waits for it to end.
    pub async fn execute(&self, execution: Execution) -> Result<Executed, FunctionError> {
        let version_id = execution.version.id();
        let thread = self.pick(&version_id);
        let (reply, answer) = oneshot::channel();
        thread
            .jobs
            .send(Job::Execute(Box::new(execution), reply))
            .map_err(|_| FunctionError::Unavailable("executor thread stopped".into()))?;
        answer
            .await
            .map_err(|_| FunctionError::Unavailable("executor thread stopped".into()))
    }

    /// Drops idle isolates of `version_id` everywhere.
    pub fn forget(&self, version_id: &str) {
        for thread in &self.threads {
            let _ = thread.jobs.send(Job::Forget(version_id.to_owned()));
        }
    }

    fn pick(&self, version_id: &str) -> &ThreadHandle {
        let load = |t: &ThreadHandle| t.shared.running.load(Ordering::Relaxed);
        let warm = self
            .threads
            .iter()
            .filter(|t| {
                t.shared
                    .warm_idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(version_id)
                    .copied()
                    .unwrap_or(0)
                    > 0
            })
            .min_by_key(|t| load(t));
        warm.or_else(|| self.threads.iter().min_by_key(|t| load(t)))
            .expect("a pool has at least one thread")
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for thread in &self.threads {
            let _ = thread.jobs.send(Job::Shutdown);
        }
    }
}

/// An idle isolate holding one function version.
struct WarmIsolate {
    isolate: Isolate,
    last_used: Instant,
    memory_bytes: usize,
}

#[derive(Default)]
struct LocalPool {
    warm: HashMap<String, Vec<WarmIsolate>>,
    stems: Vec<Isolate>,
    refilling: bool,
}

/// One executor thread's state; lives on that thread only.
struct Executor {
    config: PoolConfig,
    shared: Arc<ThreadShared>,
    stats: Arc<PoolStats>,
    budget_bytes: usize,
    local: Rc<RefCell<LocalPool>>,
}

impl Executor {
    fn run(self, mut queue: mpsc::UnboundedReceiver<Job>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "executor thread cannot start its runtime");
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        let executor = Rc::new(self);
        local.block_on(&runtime, async move {
            executor.refill_stems();
            tokio::task::spawn_local(executor.clone().maintain());
            while let Some(job) = queue.recv().await {
                match job {
                    Job::Execute(execution, reply) => {
                        executor.shared.running.fetch_add(1, Ordering::Relaxed);
                        tokio::task::spawn_local(executor.clone().execute(*execution, reply));
                    }
                    Job::Forget(version_id) => executor.forget(&version_id),
                    Job::Shutdown => break,
                }
            }
        });
    }

    async fn execute(self: Rc<Self>, execution: Execution, reply: oneshot::Sender<Executed>) {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let version_id = execution.version.id();
        let acquired = self.acquire(&execution);
        let (output, start_kind) = match acquired {
            Ok((mut isolate, start_kind)) => {
                let output = isolate
                    .invoke(ActivationInput {
                        event_json: execution.event_json,
                        ctx_json: execution.ctx_json,
                        deadline: execution.deadline,
                        host: execution.host,
                        log_limits: self.config.log_limits,
                    })
                    .await;
                // Only a clean activation leaves an isolate fit for reuse.
                if output.outcome == OutcomeKind::Ok {
                    self.release(version_id, isolate);
                }
                (output, start_kind)
            }
            Err((message, start_kind)) => (
                ActivationOutput {
                    outcome: OutcomeKind::Error,
                    result_json: None,
                    error: Some(ActivationError {
                        message,
                        stack: None,
                    }),
                    logs: Vec::new(),
                    logs_dropped: 0,
                },
                start_kind,
            ),
        };
        let counter = match start_kind {
            StartKind::Cold => &self.stats.cold,
            StartKind::Prewarmed => &self.stats.prewarmed,
            StartKind::Warm => &self.stats.warm,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.shared.running.fetch_sub(1, Ordering::Relaxed);
        let _ = reply.send(Executed {
            start_kind,
            output,
            started_at,
            duration: started.elapsed(),
        });
    }

    /// A warm isolate for the version, else a specialised stem cell, else a new isolate.
    fn acquire(
        self: &Rc<Self>,
        execution: &Execution,
    ) -> Result<(Isolate, StartKind), (String, StartKind)> {
        let version_id = execution.version.id();
        let warm = {
            let mut local = self.local.borrow_mut();
            local.warm.get_mut(&version_id).and_then(Vec::pop)
        };
        if let Some(warm) = warm {
            self.note_idle(&version_id, -1, warm.memory_bytes, false);
            return Ok((warm.isolate, StartKind::Warm));
        }
        let stem = self.local.borrow_mut().stems.pop();
        let (isolate, kind) = match stem {
            Some(stem) => {
                self.stats.stems.fetch_sub(1, Ordering::Relaxed);
                self.refill_stems();
                (Ok(stem), StartKind::Prewarmed)
            }
            None => (Isolate::new(), StartKind::Cold),
        };
        let mut isolate = isolate.map_err(|error| (error.message, kind))?;
        let spec = &execution.version.spec;
        isolate
            .specialize(
                &version_id,
                &spec.code,
                spec.memory_mb as usize * 1024 * 1024,
                execution.deadline,
            )
            .map_err(|error| {
                (
                    format!("the function failed to load: {}", error.message),
                    kind,
                )
            })?;
        Ok((isolate, kind))
    }

    fn release(&self, version_id: String, isolate: Isolate) {
        let memory_bytes = isolate.memory_used();
        self.note_idle(&version_id, 1, memory_bytes, true);
        self.local
            .borrow_mut()
            .warm
            .entry(version_id)
            .or_default()
            .push(WarmIsolate {
                isolate,
                last_used: Instant::now(),
                memory_bytes,
            });
    }

    /// Keeps the shared counters of idle isolates in step with the local pool.
    fn note_idle(&self, version_id: &str, delta: isize, memory_bytes: usize, added: bool) {
        let mut warm = self
            .shared
            .warm_idle
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = warm.entry(version_id.to_owned()).or_default();
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            warm.remove(version_id);
        }
        if added {
            self.stats.warm_idle.fetch_add(1, Ordering::Relaxed);
            self.stats
                .idle_memory_bytes
                .fetch_add(memory_bytes, Ordering::Relaxed);
        } else {
            self.stats.warm_idle.fetch_sub(1, Ordering::Relaxed);
            self.stats
                .idle_memory_bytes
                .fetch_sub(memory_bytes, Ordering::Relaxed);
        }
    }

    /// Tops up the stem cells in the background, one at a time, after the current work.
    fn refill_stems(self: &Rc<Self>) {
        {
            let mut local = self.local.borrow_mut();
            if local.refilling || local.stems.len() >= self.config.stems_per_thread {
                return;
            }
            local.refilling = true;
        }
        let executor = self.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::task::yield_now().await;
                if executor.local.borrow().stems.len() >= executor.config.stems_per_thread {
                    break;
                }
                match Isolate::new() {
                    Ok(stem) => {
                        executor.local.borrow_mut().stems.push(stem);
                        executor.stats.stems.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot pre-warm an isolate");
                        break;
                    }
                }
            }
            executor.local.borrow_mut().refilling = false;
        });
    }

    fn forget(&self, version_id: &str) {
        let removed = self
            .local
            .borrow_mut()
            .warm
            .remove(version_id)
            .unwrap_or_default();
        for warm in removed {
            self.note_idle(version_id, -1, warm.memory_bytes, false);
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Evicts isolates idle past the TTL, then the least recently used while over budget.
    async fn maintain(self: Rc<Self>) {
        let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            ticker.tick().await;
            self.evict(Instant::now());
        }
    }

    fn evict(&self, now: Instant) {
        let mut evicted = Vec::new();
        {
            let mut local = self.local.borrow_mut();
            for (version_id, idle) in local.warm.iter_mut() {
                idle.retain(|warm| {
                    let keep = now.duration_since(warm.last_used) < self.config.idle_ttl;
                    if !keep {
                        evicted.push((version_id.clone(), warm.memory_bytes));
                    }
                    keep
                });
            }
            let mut total: usize = local.warm.values().flatten().map(|w| w.memory_bytes).sum();
            while total > self.budget_bytes {
                let oldest = local
                    .warm
                    .iter()
                    .flat_map(|(id, idle)| {
                        idle.iter()
                            .enumerate()
                            .map(move |(i, w)| (id.clone(), i, w.last_used))
                    })
                    .min_by_key(|(_, _, last_used)| *last_used);
                let Some((version_id, index, _)) = oldest else {
                    break;
                };
                let warm = local
                    .warm
                    .get_mut(&version_id)
                    .expect("present")
                    .remove(index);
                total -= warm.memory_bytes;
                evicted.push((version_id, warm.memory_bytes));
            }
            local.warm.retain(|_, idle| !idle.is_empty());
        }
        for (version_id, memory_bytes) in evicted {
            self.note_idle(&version_id, -1, memory_bytes, false);
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
}
