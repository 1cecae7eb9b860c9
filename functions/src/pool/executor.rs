//! One executor thread: its runtime, its isolates, and how it runs the work it is given.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use super::threads::ThreadShared;
use super::{Claim, Executed, Execution, Job, PoolConfig, PoolStats, Work};
use crate::engine::{self, ActivationInput, ActivationOutput, Isolate};
use crate::model::{ActivationError, OutcomeKind, StartKind};

/// How often idle isolates are checked for eviction.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

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
pub(super) struct Executor {
    config: PoolConfig,
    shared: Arc<ThreadShared>,
    stats: Arc<PoolStats>,
    budget_bytes: usize,
    local: Rc<RefCell<LocalPool>>,
    /// Notified whenever a piece of work ends, for draining before the thread exits.
    ended: Notify,
}

impl Executor {
    pub(super) fn new(
        config: PoolConfig,
        shared: Arc<ThreadShared>,
        stats: Arc<PoolStats>,
        budget_bytes: usize,
    ) -> Executor {
        Executor {
            config,
            shared,
            stats,
            budget_bytes,
            local: Rc::default(),
            ended: Notify::new(),
        }
    }

    pub(super) fn run(self, mut queue: mpsc::UnboundedReceiver<Job>) {
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
                executor.shared.queued.fetch_sub(1, Ordering::Relaxed);
                // Back from being stuck: the work still queued here has moved elsewhere.
                if executor.shared.is_abandoned() {
                    break;
                }
                match job {
                    Job::Run(claim) => {
                        let Some(work) = claim.take() else {
                            // Taken back by its dispatcher (past its deadline, or moved).
                            continue;
                        };
                        executor.shared.running.fetch_add(1, Ordering::Relaxed);
                        tokio::task::spawn_local(executor.clone().work(work, claim));
                    }
                    Job::Forget(version_id) => executor.forget(&version_id),
                    Job::Shutdown => break,
                }
            }
            drop(queue);
            // Work already started here ends within its own deadline; let it answer.
            while executor.shared.running.load(Ordering::Relaxed) > 0 {
                executor.ended.notified().await;
            }
        });
    }

    async fn work(self: Rc<Self>, work: Work, claim: Arc<Claim>) {
        match work {
            Work::Execute(execution, reply) => {
                self.clone().execute(*execution, reply, &claim).await;
            }
            Work::Check(check, reply) => {
                let result = {
                    let _section = self.shared.enter(check.deadline);
                    engine::check(&check.code, check.memory_bytes, check.deadline)
                };
                let _ = reply.send(result);
            }
        }
        self.shared.running.fetch_sub(1, Ordering::Relaxed);
        self.ended.notify_one();
    }

    async fn execute(
        self: Rc<Self>,
        execution: Execution,
        reply: oneshot::Sender<Executed>,
        claim: &Claim,
    ) {
        let started = Instant::now();
        let version_id = execution.version.id();
        let deadline = execution.deadline;
        let acquired = {
            // Top-level code runs while specialising: bound by the same deadline.
            let _section = self.shared.enter(deadline);
            self.acquire(&execution)
        };
        let kind = match &acquired {
            Ok((_, kind)) | Err((_, kind)) => *kind,
        };
        let _ = claim.start_kind.set(kind);
        let (output, start_kind) = match acquired {
            Ok((mut isolate, start_kind)) => {
                let output = {
                    let invoked = isolate.invoke(ActivationInput {
                        event_json: execution.event_json,
                        ctx_json: execution.ctx_json,
                        deadline,
                        host: execution.host,
                        log_limits: self.config.log_limits,
                    });
                    let mut invoked = std::pin::pin!(invoked);
                    // The JavaScript runs inside polls of the invocation; each poll is a
                    // section the supervisor watches.
                    std::future::poll_fn(|cx| {
                        let _section = self.shared.enter(deadline);
                        invoked.as_mut().poll(cx)
                    })
                    .await
                };
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
        let _ = reply.send(Executed {
            start_kind,
            output,
            started,
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
            self.note_idle(&version_id, -1, warm.memory_bytes);
            return Ok((warm.isolate, StartKind::Warm));
        }
        let stem = self.local.borrow_mut().stems.pop();
        let (isolate, kind) = match stem {
            Some(stem) => {
                self.shared.note_stem(-1);
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
            .map(drop)
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
        self.note_idle(&version_id, 1, memory_bytes);
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
    fn note_idle(&self, version_id: &str, delta: isize, memory_bytes: usize) {
        {
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
        }
        self.shared.note_idle(delta, memory_bytes);
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
                        executor.shared.note_stem(1);
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
            self.note_idle(version_id, -1, warm.memory_bytes);
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
            self.note_idle(&version_id, -1, memory_bytes);
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
}
