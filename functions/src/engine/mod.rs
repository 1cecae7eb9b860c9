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

mod load;
mod logs;
mod timers;
mod web;

use ferrobase_core::ErrorCode;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use rquickjs::function::Rest;
use rquickjs::promise::PromiseState;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Exception, Function, Module, Object, Persistent,
    Promise, Runtime, Value,
};
use tokio::sync::mpsc;

use logs::LogBuffer;
pub use logs::LogLimits;
pub use timers::MAX_PENDING_TIMERS;
use timers::Timers;

pub use crate::fetch::FetchPolicy;
use crate::host::{HostApi, HostContext, HostError, HostOp};
use crate::model::{ActivationError, Contract, OutcomeKind};

const SDK_SOURCE: &str = include_str!("sdk.js");
const SDK_MODULE: &str = "ferrobase";
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

/// What a timed-out activation's error says.
const TIMEOUT_MESSAGE: &str = "the function did not finish before its deadline";

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

/// Per-activation state reachable from the host function installed in the context.
#[derive(Default)]
struct Slot {
    active: Option<ActiveCall>,
    logs: LogBuffer,
}

struct ActiveCall {
    host: HostBinding,
    completions: mpsc::UnboundedSender<Completion>,
    pending: HashMap<u64, (Persistent<Function<'static>>, Persistent<Function<'static>>)>,
    next_op: u64,
}

struct Completion {
    op: u64,
    result: Result<serde_json::Value, HostError>,
}

/// One QuickJS runtime and context. Fields drop in order: JS handles before the context and
/// the runtime that own them.
pub struct Isolate {
    slot: Rc<RefCell<Slot>>,
    timers: Rc<RefCell<Timers>>,
    entry: Option<Persistent<Function<'static>>>,
    /// How `entry` is called.
    contract: Contract,
    /// The web glue's per-activation hook (it sets `process.env`).
    activate: Option<Persistent<Function<'static>>>,
    loaded: Option<String>,
    ctx: Context,
    rt: Runtime,
    deadline: Rc<Cell<Option<Instant>>>,
}

impl std::fmt::Debug for Isolate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Isolate")
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

impl Drop for Isolate {
    fn drop(&mut self) {
        // The host function (owned by the runtime) shares the slot; empty it first so no JS
        // handle outlives the runtime that owns it.
        let mut slot = self.slot.borrow_mut();
        slot.active = None;
        drop(slot);
        self.timers.borrow_mut().clear();
        self.entry = None;
        self.activate = None;
    }
}

impl Isolate {
    /// A pre-warmed isolate: runtime, context, console and the SDK, no function code yet.
    pub fn new() -> Result<Isolate, CompileError> {
        let rt = Runtime::new().map_err(engine_error)?;
        rt.set_max_stack_size(MAX_JS_STACK_BYTES);
        rt.set_memory_limit(STEM_MEMORY_BYTES);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::default();
        {
            let deadline = deadline.clone();
            rt.set_interrupt_handler(Some(Box::new(move || {
                deadline.get().is_some_and(|at| Instant::now() >= at)
            })));
        }
        rt.set_loader(web::BuiltinResolver { sdk: SDK_MODULE }, web::BuiltinLoader);
        let ctx = Context::full(&rt).map_err(engine_error)?;
        let slot: Rc<RefCell<Slot>> = Rc::default();
        let timers: Rc<RefCell<Timers>> = Rc::default();
        let activate = ctx
            .with(|ctx| install_globals(&ctx, &slot, &timers).map(|f| Persistent::save(&ctx, f)))
            .map_err(engine_error)?;
        let isolate = Isolate {
            slot,
            timers,
            entry: None,
            contract: Contract::Ferrobase,
            activate: Some(activate),
            loaded: None,
            ctx,
            rt,
            deadline,
        };
        isolate.run_jobs();
        Ok(isolate)
    }

    /// The function version this isolate holds, if specialised.
    pub fn loaded(&self) -> Option<&str> {
        self.loaded.as_deref()
    }

    /// Heap bytes in use by this isolate.
    pub fn memory_used(&self) -> usize {
        self.rt.memory_usage().memory_used_size.max(0) as usize
    }

    /// Loads a function's code: an ES module with a default export or a `main` export, or a
    /// script defining `main` (OpenWhisk style), decided by parsing (see `load`). Top-level
    /// code runs now, bounded by `deadline`. Answers how the code is called.
    pub fn specialize(
        &mut self,
        version_id: &str,
        code: &str,
        memory_bytes: usize,
        deadline: Instant,
    ) -> Result<Contract, CompileError> {
        self.rt.set_memory_limit(memory_bytes);
        self.deadline.set(Some(deadline));
        let name = format!("{version_id}.js");
        let loaded = self.ctx.with(|ctx| {
            load::load(&ctx, &name, code)
                .map(|entry| (Persistent::save(&ctx, entry.function), entry.contract))
        });
        self.deadline.set(None);
        let (entry, contract) = loaded?;
        self.entry = Some(entry);
        self.contract = contract;
        self.loaded = Some(version_id.to_owned());
        Ok(contract)
    }

    fn run_jobs(&self) {
        while self.rt.is_job_pending() {
            if self.rt.execute_pending_job().is_err() {
                // A failing job (e.g. a rejected promise nobody awaits) is the function's own
                // business; the activation's promise reports what matters.
                continue;
            }
        }
    }

    /// Runs one activation to its end. Must be called on a tokio `LocalSet`: SDK calls are
    /// spawned as local tasks.
    pub async fn invoke(&mut self, input: ActivationInput) -> ActivationOutput {
        let Some(entry) = self.entry.clone() else {
            return failed(
                OutcomeKind::Error,
                "the isolate holds no function",
                None,
                LogBuffer::default(),
            );
        };
        let (completions, mut completed) = mpsc::unbounded_channel();
        {
            let mut slot = self.slot.borrow_mut();
            slot.logs = LogBuffer::new(input.log_limits);
            slot.active = Some(ActiveCall {
                host: input.host,
                completions,
                pending: HashMap::new(),
                next_op: 0,
            });
        }
        self.deadline.set(Some(input.deadline));
        self.timers.borrow_mut().start();

        let started = self
            .ctx
            .with(|ctx| -> Result<Persistent<Promise<'static>>, Failure> {
                let function = entry.restore(&ctx).map_err(|e| Failure::engine(&e))?;
                let event = ctx
                    .json_parse(input.event_json)
                    .catch(&ctx)
                    .map_err(Failure::caught)?;
                let context = ctx
                    .json_parse(input.ctx_json)
                    .catch(&ctx)
                    .map_err(Failure::caught)?;
                if let Some(activate) = &self.activate {
                    let activate = activate
                        .clone()
                        .restore(&ctx)
                        .map_err(|e| Failure::engine(&e))?;
                    activate
                        .call::<_, ()>((context.clone(),))
                        .catch(&ctx)
                        .map_err(Failure::caught)?;
                }
                let called = match self.contract {
                    Contract::Ferrobase => function.call((event, context)),
                    Contract::OpenWhisk => function.call((event,)),
                };
                let value: Value = called.catch(&ctx).map_err(Failure::caught)?;
                let promise = match value.clone().into_promise() {
                    Some(promise) => promise,
                    None => {
                        // A plain value: wrap it so that both forms settle the same way.
                        let (promise, resolve, _) =
                            Promise::new(&ctx).map_err(|e| Failure::engine(&e))?;
                        resolve
                            .call::<_, ()>((value,))
                            .map_err(|e| Failure::engine(&e))?;
                        promise
                    }
                };
                Ok(Persistent::save(&ctx, promise))
            });

        let outcome = match started {
            Err(failure) => Err(failure),
            Ok(promise) => self.drive(promise, &mut completed, input.deadline).await,
        };
        self.timers.borrow_mut().clear();
        self.deadline.set(None);
        let logs = {
            let mut slot = self.slot.borrow_mut();
            slot.active = None;
            std::mem::take(&mut slot.logs)
        };
        match outcome {
            Ok(result_json) => {
                let (logs, logs_dropped) = logs.finish();
                ActivationOutput {
                    outcome: OutcomeKind::Ok,
                    result_json: Some(result_json),
                    error: None,
                    logs,
                    logs_dropped,
                }
            }
            Err(failure) => {
                let kind = failure.classify(input.deadline);
                let message = match kind {
                    OutcomeKind::Timeout => TIMEOUT_MESSAGE.to_owned(),
                    OutcomeKind::Oom => {
                        "out of memory: the function exceeded its memory_mb heap limit".to_owned()
                    }
                    OutcomeKind::Ok | OutcomeKind::Error => failure.message,
                };
                failed(kind, &message, failure.stack, logs)
            }
        }
    }

    /// Settles SDK calls as they complete and fires timers as they fall due, until the
    /// activation's promise settles and no timer is pending.
    async fn drive(
        &self,
        promise: Persistent<Promise<'static>>,
        completed: &mut mpsc::UnboundedReceiver<Completion>,
        deadline: Instant,
    ) -> Result<String, Failure> {
        // The result is taken when the promise settles; timers still pending then keep the
        // activation open (up to the deadline), as they would keep a Node process alive.
        let mut outcome: Option<String> = None;
        loop {
            self.run_jobs();
            if outcome.is_none() {
                outcome = self.settled(&promise)?;
            }
            let next_timer = self.timers.borrow().next_due();
            if let Some(json) = &outcome
                && next_timer.is_none()
            {
                return Ok(json.clone());
            }
            let completion = tokio::select! {
                completion = completed.recv() => completion,
                _ = tokio::time::sleep_until(next_timer.unwrap_or(deadline).into()), if next_timer.is_some() => {
                    self.fire_due_timer()?;
                    continue;
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Err(Failure::timeout());
                }
            };
            let Some(Completion { op, result }) = completion else {
                return Err(Failure::plain("the SDK's channel closed"));
            };
            let callbacks = self
                .slot
                .borrow_mut()
                .active
                .as_mut()
                .and_then(|a| a.pending.remove(&op));
            let Some((resolve, reject)) = callbacks else {
                continue;
            };
            self.ctx.with(|ctx| -> Result<(), Failure> {
                match result {
                    Ok(value) => {
                        let resolve = resolve.restore(&ctx).map_err(|e| Failure::engine(&e))?;
                        let value = ctx
                            .json_parse(value.to_string())
                            .catch(&ctx)
                            .map_err(Failure::caught)?;
                        resolve
                            .call::<_, ()>((value,))
                            .catch(&ctx)
                            .map_err(Failure::caught)?;
                    }
                    Err(error) => {
                        let reject = reject.restore(&ctx).map_err(|e| Failure::engine(&e))?;
                        let exception = Exception::from_message(ctx.clone(), &error.message)
                            .map_err(|e| Failure::engine(&e))?;
                        exception
                            .set("code", error.code.as_str())
                            .map_err(|e| Failure::engine(&e))?;
                        reject
                            .call::<_, ()>((exception,))
                            .catch(&ctx)
                            .map_err(Failure::caught)?;
                    }
                }
                Ok(())
            })?;
        }
    }
}

impl Isolate {
    /// The activation's result as JSON once its promise has settled; an error if it rejected.
    fn settled(&self, promise: &Persistent<Promise<'static>>) -> Result<Option<String>, Failure> {
        self.ctx.with(|ctx| -> Result<Option<String>, Failure> {
            let promise = promise
                .clone()
                .restore(&ctx)
                .map_err(|e| Failure::engine(&e))?;
            match promise.state() {
                PromiseState::Pending => Ok(None),
                PromiseState::Resolved => {
                    let value: Value = promise
                        .result::<Value>()
                        .and_then(Result::ok)
                        .unwrap_or_else(|| Value::new_undefined(ctx.clone()));
                    match self.contract {
                        Contract::Ferrobase => result_json(&ctx, value).map(Some),
                        Contract::OpenWhisk => openwhisk_result(&ctx, value).map(Some),
                    }
                }
                PromiseState::Rejected => match promise.result::<Value>() {
                    Some(Err(error)) => Err(Failure::caught(CaughtError::from_error(&ctx, error))),
                    _ => Err(Failure::plain("the function's promise was rejected")),
                },
            }
        })
    }

    /// Runs the earliest timer if it is due. An exception thrown by a timer's callback is
    /// uncaught, so it fails the activation, as it would end a Node process.
    fn fire_due_timer(&self) -> Result<(), Failure> {
        let Some(due) = self.timers.borrow_mut().take_due(Instant::now()) else {
            return Ok(());
        };
        self.ctx.with(|ctx| -> Result<(), Failure> {
            let callback = due
                .callback
                .restore(&ctx)
                .map_err(|e| Failure::engine(&e))?;
            callback
                .call::<_, ()>(())
                .catch(&ctx)
                .map_err(Failure::caught)
        })
    }
}

/// The activation's result as JSON: `undefined` becomes `null`; anything JSON cannot express
/// (functions, symbols, BigInt, cycles) is an error, not a silent `{}`.
fn result_json<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<String, Failure> {
    if value.is_undefined() {
        return Ok("null".to_owned());
    }
    match ctx.json_stringify(value).catch(ctx) {
        Ok(Some(text)) => text.to_string().map_err(|e| Failure::engine(&e)),
        Ok(None) => Err(Failure::plain(
            "the result is not JSON-serialisable (a function, symbol or undefined)",
        )),
        Err(error) => Err(Failure::plain(format!(
            "the result is not JSON-serialisable: {}",
            caught_message(&error)
        ))),
    }
}

/// An OpenWhisk action's result: nothing is `{}`, and an object with a top-level `error` is
/// an application error carrying that error (its text, or its JSON).
fn openwhisk_result<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<String, Failure> {
    if value.is_undefined() {
        return Ok("{}".to_owned());
    }
    if let Some(object) = value.as_object() {
        let error: Value = object.get("error").map_err(|e| Failure::engine(&e))?;
        if !error.is_undefined() {
            let message = match error.as_string() {
                Some(text) => text.to_string().map_err(|e| Failure::engine(&e))?,
                None => result_json(ctx, error)?,
            };
            return Err(Failure::plain(message));
        }
    }
    result_json(ctx, value)
}

/// Installs `console`, the host function behind the SDK, the `ferrobase` module, a global
/// `fetch` and the web platform globals (see the `web` module).
fn install_globals<'js>(
    ctx: &Ctx<'js>,
    slot: &Rc<RefCell<Slot>>,
    timers: &Rc<RefCell<Timers>>,
) -> rquickjs::Result<Function<'js>> {
    let globals = ctx.globals();
    let console = Object::new(ctx.clone())?;
    for level in ["log", "info", "warn", "error", "debug"] {
        let slot = slot.clone();
        let log = Function::new(ctx.clone(), move |args: Rest<Value<'_>>| {
            let text: Vec<String> = args
                .0
                .into_iter()
                .map(|value| display(&value.ctx().clone(), value))
                .collect();
            slot.borrow_mut().logs.push(level, &text.join(" "));
        })?;
        console.set(level, log)?;
    }
    globals.set("console", console)?;

    let host_slot = slot.clone();
    let host = Function::new(
        ctx.clone(),
        move |request: String,
              resolve: Function<'_>,
              reject: Function<'_>|
              -> rquickjs::Result<()> {
            let mut slot = host_slot.borrow_mut();
            let Some(active) = slot.active.as_mut() else {
                let error = Exception::from_message(
                    reject.ctx().clone(),
                    "SDK calls are only possible while the function runs",
                )?;
                return reject.call((error,));
            };
            let op = active.next_op;
            active.next_op += 1;
            let resolve = Persistent::save(&resolve.ctx().clone(), resolve);
            let reject = Persistent::save(&reject.ctx().clone(), reject);
            active.pending.insert(op, (resolve, reject));
            // Parsed here, in the order the function makes its calls, so that each write's
            // idempotency key is its position among the activation's writes.
            let call = parse_call(&active.host, &request);
            let host = active.host.clone();
            let completions = active.completions.clone();
            drop(slot);
            tokio::task::spawn_local(async move {
                let result = match call {
                    Ok((context, op)) => perform(&host, &context, op).await,
                    Err(error) => Err(error),
                };
                // The activation may have ended (timeout); then nobody waits for the answer.
                let _ = completions.send(Completion { op, result });
            });
            Ok(())
        },
    )?;
    globals.set("__ferrobase_host", host)?;

    let (module, promise) = Module::declare(ctx.clone(), SDK_MODULE, SDK_SOURCE)?.eval()?;
    while ctx.execute_pending_job() {}
    promise.finish::<()>()?;
    let fetch: Function = module.get("fetch")?;
    globals.set("fetch", fetch)?;
    globals.remove("__ferrobase_host")?;
    web::install(ctx, timers)
}

/// Parses one SDK request into the operation and the context it runs in.
fn parse_call(host: &HostBinding, request: &str) -> Result<(HostContext, HostOp), HostError> {
    let op: HostOp = serde_json::from_str(request).map_err(|error| {
        HostError::new(ErrorCode::InvalidArgument, format!("bad SDK call: {error}"))
    })?;
    Ok((host.context.for_call(&op), op))
}

/// Performs one SDK call.
async fn perform(
    host: &HostBinding,
    context: &HostContext,
    op: HostOp,
) -> Result<serde_json::Value, HostError> {
    // The URL was parsed once, when the call was read; the host sends this same value.
    if let HostOp::Fetch { url, .. } = &op {
        host.fetch.check(url)?;
    }
    host.api.call(context, op).await
}

/// Text for one console argument: strings as they are, everything else as JSON when possible.
fn display<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    if let Some(text) = value.as_string() {
        return text.to_string().unwrap_or_default();
    }
    if value.is_undefined() {
        return "undefined".to_owned();
    }
    if let Some(error) = value.as_exception() {
        return error.to_string();
    }
    match ctx.json_stringify(value.clone()) {
        Ok(Some(text)) => text.to_string().unwrap_or_default(),
        _ => value
            .get::<rquickjs::convert::Coerced<String>>()
            .map(|c| c.0)
            .unwrap_or_else(|_| "<unprintable>".to_owned()),
    }
}

/// Checks that `code` loads: compiles, evaluates its top level within `deadline`, exports a
/// function. Used at deploy time, in a throwaway isolate, on a supervised executor thread: the
/// interrupt that enforces `deadline` is not polled inside native builtins.
pub fn check(code: &str, memory_bytes: usize, deadline: Instant) -> Result<Contract, CompileError> {
    let mut isolate = Isolate::new()?;
    isolate.specialize("deploy-check", code, memory_bytes, deadline)
}

/// What a thrown `null` reads as; see [`Failure::classify`].
const NULL_THROWN: &str = "thrown value: null";

/// Why an activation failed, before classification.
#[derive(Debug)]
struct Failure {
    message: String,
    stack: Option<String>,
    timed_out: bool,
}

impl Failure {
    fn plain(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            stack: None,
            timed_out: false,
        }
    }

    fn timeout() -> Self {
        Failure {
            timed_out: true,
            ..Failure::plain("deadline passed")
        }
    }

    fn engine(error: &rquickjs::Error) -> Self {
        Failure::plain(format!("engine error: {error}"))
    }

    fn caught(error: CaughtError<'_>) -> Self {
        match &error {
            CaughtError::Exception(exception) => Failure {
                message: exception_message(exception),
                stack: exception.stack().filter(|s| !s.is_empty()),
                timed_out: false,
            },
            _ => Failure::plain(caught_message(&error)),
        }
    }

    fn classify(&self, deadline: Instant) -> OutcomeKind {
        if self.timed_out || (self.message.contains("interrupted") && Instant::now() >= deadline) {
            OutcomeKind::Timeout
        } else if self.message.contains("out of memory") || self.message == NULL_THROWN {
            // When the heap limit is hit, QuickJS cannot even allocate its "out of memory"
            // error and the exception is left `null`. A function that literally throws null
            // is classified as oom too; that is the price of telling the two apart cheaply.
            OutcomeKind::Oom
        } else {
            OutcomeKind::Error
        }
    }
}

fn exception_message(exception: &Exception<'_>) -> String {
    let name: Option<String> = exception.get::<_, Option<String>>("name").ok().flatten();
    let message = exception.message().unwrap_or_default();
    match name {
        Some(name) if !name.is_empty() && name != "Error" => format!("{name}: {message}"),
        _ => message,
    }
}

fn caught_message(error: &CaughtError<'_>) -> String {
    match error {
        CaughtError::Exception(exception) => exception_message(exception),
        CaughtError::Value(value) if value.is_null() => NULL_THROWN.to_owned(),
        CaughtError::Value(value) => {
            format!("thrown value: {}", display(value.ctx(), value.clone()))
        }
        CaughtError::Error(error) => error.to_string(),
    }
}

fn failed(
    kind: OutcomeKind,
    message: &str,
    stack: Option<String>,
    logs: LogBuffer,
) -> ActivationOutput {
    let (logs, logs_dropped) = logs.finish();
    ActivationOutput {
        outcome: kind,
        result_json: None,
        error: Some(ActivationError {
            message: message.to_owned(),
            stack,
        }),
        logs,
        logs_dropped,
    }
}

fn engine_error(error: rquickjs::Error) -> CompileError {
    CompileError::plain(format!("cannot create a JavaScript runtime: {error}"))
}

impl CompileError {
    pub(crate) fn plain(message: impl Into<String>) -> Self {
        CompileError {
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// A compile or evaluation error with its position, read from the stack ("at file.js:3:14").
fn compile_error(error: &CaughtError<'_>) -> CompileError {
    let message = caught_message(error);
    let (stack, display) = match error {
        CaughtError::Exception(exception) => {
            (exception.stack().unwrap_or_default(), exception.to_string())
        }
        _ => (String::new(), message.clone()),
    };
    let position = [stack.as_str(), display.as_str()]
        .into_iter()
        .find_map(parse_position);
    CompileError {
        message,
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
    }
}

/// The first `name.js:LINE:COL` in `text`.
fn parse_position(text: &str) -> Option<(u32, u32)> {
    text.split_whitespace().find_map(|word| {
        let word = word.trim_end_matches(')');
        let mut parts = word.rsplitn(3, ':');
        let column = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        parts
            .next()
            .filter(|file| file.ends_with(".js"))
            .map(|_| (line, column))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_read_from_stacks() {
        assert_eq!(
            parse_position("SyntaxError: x\n    at fn.js:3:14\n"),
            Some((3, 14))
        );
        assert_eq!(
            parse_position("    at main (shop/f@2.js:7:1)"),
            Some((7, 1))
        );
        assert_eq!(parse_position("no position"), None);
    }
}
