//! The pool's thread slots and the supervisor that abandons threads stuck past a deadline
//! and replaces them (see the pool's module docs for why).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::executor::Executor;
use super::{DEADLINE_GRACE, Job, PoolConfig, PoolStats};
use crate::FunctionError;

/// Native stack of executor threads: comfortably above the JS stack limit.
const EXECUTOR_STACK_BYTES: usize = 16 * 1024 * 1024;
/// How often the supervisor looks for stuck and exited threads.
const SUPERVISOR_TICK: Duration = Duration::from_millis(25);

/// Where [`Threads::submit`] put a job.
pub(super) enum Submitted {
    Queued(Arc<ThreadHandle>),
    /// The chosen thread had exited (the supervisor replaces it shortly).
    Closed(Arc<ThreadHandle>),
}

/// One executor thread as the dispatcher and the supervisor see it.
#[derive(Debug)]
pub(super) struct ThreadHandle {
    jobs: mpsc::UnboundedSender<Job>,
    pub(super) shared: Arc<ThreadShared>,
}

impl ThreadHandle {
    pub(super) fn send(&self, job: Job) -> Result<(), mpsc::error::SendError<Job>> {
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).inspect_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Becomes `true` once the thread has left the pool (abandoned or exited).
    pub(super) fn retired(&self) -> watch::Receiver<bool> {
        self.shared.retired.subscribe()
    }
}

/// What a thread shares with the dispatcher and the supervisor.
#[derive(Debug)]
pub(super) struct ThreadShared {
    /// Idle warm isolates per version id on this thread.
    pub(super) warm_idle: Mutex<HashMap<String, usize>>,
    pub(super) running: AtomicUsize,
    /// Jobs sent and not yet taken off the queue: with `running`, the thread's load.
    pub(super) queued: AtomicUsize,
    /// Deadline of the JavaScript running on the thread now, as microseconds after `epoch`
    /// plus one; 0 while no JavaScript runs.
    section: AtomicU64,
    epoch: Instant,
    retired: watch::Sender<bool>,
    life: Mutex<Life>,
    stats: Arc<PoolStats>,
}

/// Whether the thread is still part of the pool, and its share of the pool's gauges.
#[derive(Debug, Default)]
struct Life {
    abandoned: bool,
    exited: bool,
    warm_idle: usize,
    stems: usize,
    idle_memory_bytes: usize,
}

/// While alive, the thread runs JavaScript bound by `deadline`.
pub(super) struct Section<'a>(&'a ThreadShared);

impl Drop for Section<'_> {
    fn drop(&mut self) {
        self.0.section.store(0, Ordering::Release);
    }
}

impl ThreadShared {
    /// Marks the thread as running JavaScript bound by `deadline` until the guard drops.
    pub(super) fn enter(&self, deadline: Instant) -> Section<'_> {
        let micros = deadline.saturating_duration_since(self.epoch).as_micros();
        let encoded = u64::try_from(micros).unwrap_or(u64::MAX - 1) + 1;
        self.section.store(encoded, Ordering::Release);
        Section(self)
    }

    /// Whether the JavaScript running now is past its deadline plus the grace.
    fn stuck(&self, now: Instant) -> bool {
        match self.section.load(Ordering::Acquire) {
            0 => false,
            encoded => {
                let deadline = self.epoch + Duration::from_micros(encoded - 1);
                now > deadline + DEADLINE_GRACE
            }
        }
    }

    pub(super) fn is_abandoned(&self) -> bool {
        self.life
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abandoned
    }

    /// Counts an idle isolate of `memory_bytes` in (`delta` 1) or out (-1).
    pub(super) fn note_idle(&self, delta: isize, memory_bytes: usize) {
        let mut life = self.life.lock().unwrap_or_else(|e| e.into_inner());
        if delta > 0 {
            life.warm_idle += 1;
            life.idle_memory_bytes += memory_bytes;
        } else {
            life.warm_idle = life.warm_idle.saturating_sub(1);
            life.idle_memory_bytes = life.idle_memory_bytes.saturating_sub(memory_bytes);
        }
        if life.abandoned {
            return;
        }
        if delta > 0 {
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

    /// Counts a stem cell in (`delta` 1) or out (-1).
    pub(super) fn note_stem(&self, delta: isize) {
        let mut life = self.life.lock().unwrap_or_else(|e| e.into_inner());
        life.stems = life.stems.saturating_add_signed(delta);
        if life.abandoned {
            return;
        }
        if delta > 0 {
            self.stats.stems.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.stems.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Takes this thread's isolates out of the pool's gauges: they no longer serve anyone.
    fn withdraw_gauges(&self, life: &Life) {
        self.stats
            .warm_idle
            .fetch_sub(life.warm_idle, Ordering::Relaxed);
        self.stats.stems.fetch_sub(life.stems, Ordering::Relaxed);
        self.stats
            .idle_memory_bytes
            .fetch_sub(life.idle_memory_bytes, Ordering::Relaxed);
    }

    /// Leaves the pool because the thread is stuck; false if it has exited already.
    fn abandon(&self) -> bool {
        let mut life = self.life.lock().unwrap_or_else(|e| e.into_inner());
        if life.exited {
            return false;
        }
        life.abandoned = true;
        self.withdraw_gauges(&life);
        self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
        self.stats.abandoned_running.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The thread is ending (also when it panics): it frees its place.
    fn exited(&self) {
        let mut life = self.life.lock().unwrap_or_else(|e| e.into_inner());
        life.exited = true;
        if life.abandoned {
            self.stats.abandoned_running.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.withdraw_gauges(&life);
        }
        drop(life);
        self.retired.send_replace(true);
    }
}

/// Calls [`ThreadShared::exited`] when the thread ends, however it ends.
struct ExitGuard(Arc<ThreadShared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.exited();
    }
}

/// The pool's thread slots; a slot is empty while its thread is abandoned and the bound on
/// abandoned threads keeps it from being refilled.
#[derive(Debug)]
pub(super) struct Threads {
    config: PoolConfig,
    stats: Arc<PoolStats>,
    slots: Mutex<Vec<Option<Arc<ThreadHandle>>>>,
    budget_bytes: usize,
    epoch: Instant,
    spawned: AtomicUsize,
}

impl Threads {
    pub(super) fn start(config: PoolConfig, count: usize) -> Result<Threads, FunctionError> {
        let threads = Threads {
            budget_bytes: config.memory_budget_bytes / count,
            config,
            stats: Arc::new(PoolStats::default()),
            slots: Mutex::new(Vec::with_capacity(count)),
            epoch: Instant::now(),
            spawned: AtomicUsize::new(0),
        };
        for _ in 0..count {
            let thread = threads.spawn()?;
            threads.lock().push(Some(thread));
        }
        Ok(threads)
    }

    pub(super) fn stats(&self) -> &PoolStats {
        &self.stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Arc<ThreadHandle>>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `job` to the thread [`Threads::pick`] chooses, in one step so that concurrent
    /// dispatches see each other's load.
    pub(super) fn submit(
        &self,
        version_id: Option<&str>,
        job: Job,
    ) -> Result<Submitted, FunctionError> {
        let slots = self.lock();
        let thread = self.choose(&slots, version_id)?;
        Ok(match thread.send(job) {
            Ok(()) => Submitted::Queued(thread),
            Err(_) => Submitted::Closed(thread),
        })
    }

    /// A live thread with an idle warm isolate for the version, else the least busy one.
    pub(super) fn pick(
        &self,
        version_id: Option<&str>,
    ) -> Result<Arc<ThreadHandle>, FunctionError> {
        self.choose(&self.lock(), version_id)
    }

    fn choose(
        &self,
        slots: &[Option<Arc<ThreadHandle>>],
        version_id: Option<&str>,
    ) -> Result<Arc<ThreadHandle>, FunctionError> {
        let load = |t: &&Arc<ThreadHandle>| {
            t.shared.running.load(Ordering::Relaxed) + t.shared.queued.load(Ordering::Relaxed)
        };
        let warm = version_id.and_then(|version_id| {
            slots
                .iter()
                .flatten()
                .filter(|t| {
                    t.shared
                        .warm_idle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(version_id)
                        .is_some_and(|idle| *idle > 0)
                })
                .min_by_key(load)
        });
        warm.or_else(|| slots.iter().flatten().min_by_key(load))
            .cloned()
            .ok_or_else(|| {
                FunctionError::Unavailable(format!(
                    "every executor thread is stuck in code that ran past its deadline, and {} abandoned threads (the most that get replaced is {}) are still running; try again later",
                    self.stats.abandoned_running.load(Ordering::Relaxed),
                    self.config.max_abandoned_threads
                ))
            })
    }

    /// Sends a job to every live thread.
    pub(super) fn broadcast(&self, job: impl Fn() -> Job) {
        for thread in self.lock().iter().flatten() {
            let _ = thread.send(job());
        }
    }

    fn spawn(&self) -> Result<Arc<ThreadHandle>, FunctionError> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(ThreadShared {
            warm_idle: Mutex::default(),
            running: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            section: AtomicU64::new(0),
            epoch: self.epoch,
            retired: watch::Sender::new(false),
            life: Mutex::default(),
            stats: self.stats.clone(),
        });
        let (config, thread_shared, stats, budget_bytes) = (
            self.config.clone(),
            shared.clone(),
            self.stats.clone(),
            self.budget_bytes,
        );
        let exit = ExitGuard(shared.clone());
        let index = self.spawned.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name(format!("ferrobase-js-{index}"))
            .stack_size(EXECUTOR_STACK_BYTES)
            .spawn(move || {
                let _exit = exit;
                Executor::new(config, thread_shared, stats, budget_bytes).run(queue);
            })
            .map_err(|error| {
                FunctionError::Unavailable(format!("cannot start executor: {error}"))
            })?;
        Ok(Arc::new(ThreadHandle { jobs, shared }))
    }

    /// The supervisor's loop, on its own thread, until `stop`'s sender is dropped.
    pub(super) fn supervise(&self, stop: &std::sync::mpsc::Receiver<()>) {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stop.recv_timeout(SUPERVISOR_TICK)
        {
            self.inspect(Instant::now());
        }
    }

    /// Retires threads that are stuck or have exited, then refills empty slots within the
    /// bound on abandoned threads.
    fn inspect(&self, now: Instant) {
        let mut slots = self.lock();
        for slot in slots.iter_mut() {
            let Some(thread) = slot else { continue };
            let exited = thread.jobs.is_closed();
            if !exited && !thread.shared.stuck(now) {
                continue;
            }
            if !exited && thread.shared.abandon() {
                tracing::warn!(
                    "an executor thread ran JavaScript past its deadline (a native builtin that \
                     ignores interrupts); it is abandoned and replaced"
                );
                // It stops taking work when it comes back, and then exits.
                let _ = thread.send(Job::Shutdown);
            }
            // Under the slots' lock, so that no dispatcher picks it once this is seen.
            thread.shared.retired.send_replace(true);
            *slot = None;
        }
        let allowed = slots.len() + self.config.max_abandoned_threads;
        let mut live = slots.iter().flatten().count();
        for slot in slots.iter_mut().filter(|slot| slot.is_none()) {
            if live + self.stats.abandoned_running.load(Ordering::Relaxed) >= allowed {
                break;
            }
            match self.spawn() {
                Ok(thread) => {
                    *slot = Some(thread);
                    live += 1;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot replace an executor thread");
                    break;
                }
            }
        }
    }
}
