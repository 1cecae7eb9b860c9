//! The isolate pool: executor threads that own isolates, and the supervisor that keeps their
//! deadlines.
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
//! if there is one, otherwise to the least busy thread. Deploy-time checks of top-level code
//! run on the same threads.
//!
//! # Why a supervisor
//!
//! QuickJS polls its interrupt handler (our deadline) only between bytecode instructions, not
//! inside native builtins: `Array.prototype.reverse.call({length: 4e8})`, a quadratic
//! `indexOf` or a join of a huge sparse array run for seconds to minutes in one C call, and
//! while they do, the whole thread — and every activation on it — is stuck. A deadline that
//! depends on the guest's cooperation is not a limit, and the vendored engine cannot sensibly
//! be patched loop by loop, so the pool does not rely on it:
//! - every dispatch waits for its answer until the deadline plus [`DEADLINE_GRACE`], then
//!   answers `timeout` itself, whatever the thread is doing;
//! - each thread publishes the deadline of the JavaScript it is running at the moment (see
//!   `threads::Section`); a supervisor thread that finds one past that deadline plus the grace
//!   *abandons* the thread: it leaves the pool, work queued on it and not yet started is
//!   re-dispatched to another thread, activations already started there (say, waiting on an
//!   SDK call, which cannot progress while the thread is blocked) are answered `timeout` at
//!   their own deadlines, and its warm isolates are lost with it;
//! - a fresh thread takes the abandoned one's place, unless `max_abandoned_threads`
//!   abandoned threads are still running: then the slot stays empty, so the pool never runs
//!   more than `threads + max_abandoned_threads` OS threads, and once no slot is live new work
//!   is refused as unavailable. An abandoned thread that finally returns lets the activations
//!   it still holds finish, exits, and frees its place.

mod executor;
mod threads;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::FunctionError;
use crate::engine::{ActivationOutput, CompileError, HostBinding, LogLimits};
use crate::model::Contract;
use crate::model::{FunctionVersion, StartKind};
use threads::{Submitted, Threads};

/// How long past its deadline an activation may take to answer before the supervisor answers
/// for it, and a thread may stay in one piece of JavaScript before it is abandoned.
pub const DEADLINE_GRACE: Duration = Duration::from_millis(200);

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
    /// Most abandoned threads (stuck in native code past a deadline) that get a replacement
    /// while they still run. Default 8.
    pub max_abandoned_threads: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            threads: 0,
            stems_per_thread: 2,
            idle_ttl: Duration::from_secs(600),
            memory_budget_bytes: 1024 * 1024 * 1024,
            log_limits: LogLimits::default(),
            max_abandoned_threads: 8,
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
    /// When it started running (monotonic: the service turns it into wall-clock time with its
    /// clock).
    pub started: Instant,
    pub duration: Duration,
}

/// Counters and gauges of the pool, for metrics and tests. The isolate gauges count live
/// threads only: an abandoned thread's isolates are lost.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub cold: AtomicU64,
    pub prewarmed: AtomicU64,
    pub warm: AtomicU64,
    pub evicted: AtomicU64,
    pub warm_idle: AtomicUsize,
    pub stems: AtomicUsize,
    pub idle_memory_bytes: AtomicUsize,
    /// Threads abandoned because they ran past a deadline, ever.
    pub abandoned: AtomicU64,
    /// Abandoned threads still stuck (or draining) that have not exited yet.
    pub abandoned_running: AtomicUsize,
}

/// A deploy-time check of top-level code.
#[derive(Debug)]
struct Check {
    code: String,
    memory_bytes: usize,
    deadline: Instant,
}

/// What an executor thread is asked to do, with where to send the answer.
#[derive(Debug)]
enum Work {
    Execute(Box<Execution>, oneshot::Sender<Executed>),
    Check(Box<Check>, oneshot::Sender<Result<Contract, CompileError>>),
}

/// Work handed to a thread that the dispatcher can take back until the thread starts it: so
/// work queued on a thread that got stuck moves elsewhere, and work whose deadline passed in
/// the queue is never started.
#[derive(Debug)]
struct Claim {
    work: Mutex<Option<Work>>,
    /// Set by the executor once it has an isolate.
    start_kind: OnceLock<StartKind>,
}

impl Claim {
    fn new(work: Work) -> Arc<Claim> {
        Arc::new(Claim {
            work: Mutex::new(Some(work)),
            start_kind: OnceLock::new(),
        })
    }

    /// The work, unless a thread has started it (or it was taken back already).
    fn take(&self) -> Option<Work> {
        self.work.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[derive(Debug)]
enum Job {
    Run(Arc<Claim>),
    /// Drop idle isolates of a version (the function was deleted or redeployed).
    Forget(String),
    Shutdown,
}

/// How waiting for work ended.
enum Waited<T> {
    Answered(T),
    /// Past the deadline and its grace without an answer; the start kind if it got that far.
    Overdue(Option<StartKind>),
}

/// The executor threads, their dispatcher and supervisor. Dropping it stops them.
#[derive(Debug)]
pub struct Pool {
    threads: Arc<Threads>,
    /// Dropped with the pool, which stops the supervisor.
    _supervisor: std::sync::mpsc::Sender<()>,
}

impl Pool {
    pub fn start(config: PoolConfig) -> Result<Pool, FunctionError> {
        let count = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.threads
        };
        let threads = Arc::new(Threads::start(config, count)?);
        let (stop, stopped) = std::sync::mpsc::channel();
        let supervised = threads.clone();
        std::thread::Builder::new()
            .name("ferrobase-js-supervisor".into())
            .spawn(move || supervised.supervise(&stopped))
            .map_err(|error| {
                FunctionError::Unavailable(format!("cannot start the pool supervisor: {error}"))
            })?;
        Ok(Pool {
            threads,
            _supervisor: stop,
        })
    }

    pub fn stats(&self) -> &PoolStats {
        self.threads.stats()
    }

    /// Refuses new work when no executor thread is live (all stuck, at the abandoned bound).
    pub fn accepting(&self) -> Result<(), FunctionError> {
        self.threads.pick(None).map(drop)
    }

    /// Runs `execution` on an executor thread and waits for it to end, at the latest its
    /// deadline plus [`DEADLINE_GRACE`]: then the answer is `timeout`, whatever the thread does.
    pub async fn execute(&self, execution: Execution) -> Result<Executed, FunctionError> {
        let version_id = execution.version.id();
        let deadline = execution.deadline;
        let dispatched = Instant::now();
        let (reply, answer) = oneshot::channel();
        let work = Work::Execute(Box::new(execution), reply);
        match self
            .dispatch(work, answer, deadline, Some(&version_id))
            .await?
        {
            Waited::Answered(executed) => Ok(executed),
            Waited::Overdue(start_kind) => Ok(Executed {
                // Work that never left the queue had no isolate; cold is the honest guess.
                start_kind: start_kind.unwrap_or(StartKind::Cold),
                output: ActivationOutput::timed_out(),
                started: dispatched,
                duration: dispatched.elapsed(),
            }),
        }
    }

    /// Checks that `code` loads (compiles, its top level ends within `limit`, it exports a
    /// function) on an executor thread, under the same supervision as activations; answers
    /// how the code is called.
    pub async fn check(
        &self,
        code: String,
        memory_bytes: usize,
        limit: Duration,
    ) -> Result<Contract, FunctionError> {
        let deadline = Instant::now() + limit;
        let (reply, answer) = oneshot::channel();
        let check = Check {
            code,
            memory_bytes,
            deadline,
        };
        match self
            .dispatch(Work::Check(Box::new(check), reply), answer, deadline, None)
            .await?
        {
            Waited::Answered(result) => result.map_err(FunctionError::Compile),
            Waited::Overdue(_) => Err(FunctionError::Compile(CompileError {
                message: format!(
                    "the top-level code did not finish within the deploy check's limit of {} ms",
                    limit.as_millis()
                ),
                line: None,
                column: None,
            })),
        }
    }

    /// Drops idle isolates of `version_id` everywhere.
    pub fn forget(&self, version_id: &str) {
        self.threads
            .broadcast(|| Job::Forget(version_id.to_owned()));
    }

    /// Hands `work` to a thread and waits for `answer` until `deadline` plus the grace. When
    /// the thread is retired (stuck or gone) before starting the work, the work moves on.
    async fn dispatch<T>(
        &self,
        mut work: Work,
        mut answer: oneshot::Receiver<T>,
        deadline: Instant,
        version_id: Option<&str>,
    ) -> Result<Waited<T>, FunctionError> {
        let give_up = tokio::time::Instant::from_std(deadline + DEADLINE_GRACE);
        let lost = |_| FunctionError::Unavailable("the executor thread stopped".into());
        loop {
            let claim = Claim::new(work);
            let thread = match self.threads.submit(version_id, Job::Run(claim.clone()))? {
                Submitted::Queued(thread) => thread,
                Submitted::Closed(thread) => {
                    work = claim.take().expect("the claim never reached a thread");
                    let mut retired = thread.retired();
                    tokio::select! {
                        _ = retired.wait_for(|retired| *retired) => continue,
                        _ = tokio::time::sleep_until(give_up) => return Ok(Waited::Overdue(None)),
                    }
                }
            };
            let mut retired = thread.retired();
            tokio::select! {
                answered = &mut answer => return answered.map(Waited::Answered).map_err(lost),
                _ = retired.wait_for(|retired| *retired) => {}
                _ = tokio::time::sleep_until(give_up) => {
                    claim.take();
                    return Ok(Waited::Overdue(claim.start_kind.get().copied()));
                }
            }
            match claim.take() {
                Some(unstarted) => work = unstarted,
                // Started on the retired thread: it can only answer if it comes back in time.
                None => {
                    return tokio::select! {
                        answered = &mut answer => answered.map(Waited::Answered).map_err(lost),
                        _ = tokio::time::sleep_until(give_up) => {
                            Ok(Waited::Overdue(claim.start_kind.get().copied()))
                        }
                    };
                }
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.threads.broadcast(|| Job::Shutdown);
    }
}
