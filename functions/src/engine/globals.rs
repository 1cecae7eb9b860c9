//! What every isolate starts with: `console` (into the activation's log buffer), the host
//! function behind the `ferrobase` SDK (each call spawned on the thread's event loop and
//! answered through the activation's completion channel), a global `fetch`, and the lazy web
//! platform globals of `web`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use ferrobase_core::ErrorCode;
use rquickjs::function::Rest;
use rquickjs::{Ctx, Exception, Function, Module, Object, Persistent, Value};
use tokio::sync::mpsc;

use super::logs::LogBuffer;
use super::timers::Timers;
use super::{HostBinding, web};
use crate::host::{HostContext, HostError, HostOp};

const SDK_SOURCE: &str = include_str!("sdk.js");
pub(super) const SDK_MODULE: &str = "ferrobase";

/// Per-activation state reachable from the host function installed in the context.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) active: Option<ActiveCall>,
    pub(super) logs: LogBuffer,
}

pub(super) struct ActiveCall {
    pub(super) host: HostBinding,
    pub(super) completions: mpsc::UnboundedSender<Completion>,
    pub(super) pending:
        HashMap<u64, (Persistent<Function<'static>>, Persistent<Function<'static>>)>,
    pub(super) next_op: u64,
}

pub(super) struct Completion {
    pub(super) op: u64,
    pub(super) result: Result<serde_json::Value, HostError>,
}

/// Installs `console`, the host function behind the SDK, the `ferrobase` module, a global
/// `fetch` and the web platform globals (see the `web` module).
pub(super) fn install_globals<'js>(
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
pub(super) fn display<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
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
