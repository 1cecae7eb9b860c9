//! The JavaScript engine boundary: QuickJS-ng through rquickjs. No rquickjs type leaves this
//! module, so another engine (deno_core/V8) can be added beside it later.
//!
//! An [`Isolate`] is one QuickJS runtime with one context, created with the SDK already loaded
//! (a pre-warmed "stem cell"), then specialised with one function version's code. It runs one
//! activation at a time, on the executor thread that created it (isolates are `!Send`).
//!
//! SDK calls are asynchronous host operations: the SDK hands a JSON request and the promise's
//! resolve/reject functions to `__ferrobase_host`; the isolate spawns the host call on the
//! thread's event loop and settles the promise when it completes. Between settlements the
//! activation waits without blocking the thread, so other activations run meanwhile.
//!
//! The web platform globals (`URL`, `TextEncoder`, `crypto`, timers, `Response`, `Buffer`,
//! `process`, ...) and the `node:` modules are installed lazily by `web`: the isolate pays
//! for a group of globals only when its function first touches one. Timers (`timers`) run on
//! the same loop as SDK calls: the activation's loop sleeps until an SDK answer, the next due
//! timer or the deadline, and an activation whose promise has settled still waits for its
//! pending timers, up to the deadline.
//!
//! Limits: the runtime's heap limit (an allocation beyond it throws "out of memory": outcome
//! `oom`), an interrupt handler that stops JavaScript at the deadline (outcome `timeout`), and
//! a bounded stack. An isolate whose activation did not end `ok` must be dropped, never reused.
//!
//! Layout: `isolate` (the [`Isolate`] and an activation's loop), `globals` (console, the SDK's
//! host function, `fetch`), `load` (module or script, decided by parsing), `outcome` (results,
//! failures and their classification, compile errors), `timers`, `logs`, and `web` (the web
//! platform and `node:` modules).

mod globals;
mod isolate;
mod load;
mod logs;
mod outcome;
mod timers;
mod web;

use std::sync::Arc;
use std::time::Instant;

pub use isolate::Isolate;
use logs::LogBuffer;
pub use logs::LogLimits;
use outcome::compile_error;
use outcome::{TIMEOUT_MESSAGE, failed};
pub use timers::MAX_PENDING_TIMERS;

pub use crate::fetch::FetchPolicy;
use crate::host::{HostApi, HostContext};
use crate::model::{ActivationError, Contract, OutcomeKind};

/// Stack available to JavaScript; deep recursion ends in a RangeError, not a crash. Executor
/// threads are spawned with a larger native stack than this.
pub const MAX_JS_STACK_BYTES: usize = 1024 * 1024;
/// Heap limit of an isolate before it is specialised.
const STEM_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Why code could not be loaded; line and column are 1-based when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// The services an activation may call, and as whom.
#[derive(Debug, Clone)]
pub struct HostBinding {
    pub api: Arc<dyn HostApi>,
    pub context: HostContext,
    pub fetch: Arc<FetchPolicy>,
}

/// One activation's inputs.
#[derive(Debug)]
pub struct ActivationInput {
    /// The event (first argument), as JSON.
    pub event_json: String,
    /// The `ctx` object (second argument), as JSON.
    pub ctx_json: String,
    pub deadline: Instant,
    pub host: HostBinding,
    pub log_limits: LogLimits,
}

/// How an activation ended, with what it returned and logged.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationOutput {
    pub outcome: OutcomeKind,
    /// The result as JSON text, when the outcome is `ok`.
    pub result_json: Option<String>,
    pub error: Option<ActivationError>,
    pub logs: Vec<String>,
    /// Lines dropped beyond the log limits (0 when nothing was cut).
    pub logs_dropped: usize,
}

impl ActivationOutput {
    /// The output of an activation stopped at its deadline, when nothing else of it is known
    /// (the pool's supervisor answers for a thread stuck in native code).
    pub fn timed_out() -> Self {
        failed(
            OutcomeKind::Timeout,
            TIMEOUT_MESSAGE,
            None,
            LogBuffer::default(),
        )
    }
}

/// Checks that `code` loads: compiles, evaluates its top level within `deadline`, exports a
/// function. Used at deploy time, in a throwaway isolate, on a supervised executor thread: the
/// interrupt that enforces `deadline` is not polled inside native builtins.
pub fn check(code: &str, memory_bytes: usize, deadline: Instant) -> Result<Contract, CompileError> {
    let mut isolate = Isolate::new()?;
    isolate.specialize("deploy-check", code, memory_bytes, deadline)
}
