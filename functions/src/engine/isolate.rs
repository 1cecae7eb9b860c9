//! [`Isolate`]: one QuickJS runtime and context, pre-warmed with the SDK and the web glue,
//! specialised with one function version, running one activation at a time. An activation's
//! loop (`drive`) settles SDK calls as the host answers them and fires timers as they fall
//! due, until the function's promise has settled and no timer is pending, or the deadline.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use rquickjs::promise::PromiseState;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Exception, Function, Persistent, Promise, Runtime, Value,
};
use tokio::sync::mpsc;

use super::globals::{ActiveCall, Completion, SDK_MODULE, Slot, install_globals};
use super::logs::LogBuffer;
use super::outcome::{
    Failure, TIMEOUT_MESSAGE, engine_error, failed, openwhisk_result, result_json,
};
use super::timers::Timers;
use super::{
    ActivationInput, ActivationOutput, CompileError, MAX_JS_STACK_BYTES, STEM_MEMORY_BYTES, load,
    web,
};
use crate::model::{Contract, OutcomeKind};

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
