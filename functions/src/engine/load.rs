//! Loading a function's code: QuickJS's own parser decides whether it is an OpenWhisk script
//! or an ES module, the code is evaluated in that form, and its entry point is found.
//!
//! The decision is made on the parse, not on how lines start (minified bundles put everything
//! on one line, often ending in `export{x as default}`):
//!
//! 1. The code is compiled, not run, as the body of a function (the `Function` constructor).
//!    That grammar accepts every script, and refuses `import` and `export` declarations. When
//!    it compiles, the code is a **script**: it is evaluated as global code in sloppy mode, as
//!    OpenWhisk's Node.js runtime runs actions (an assignment to an undeclared name creates a
//!    global), and its global `main` is the entry point.
//! 2. Otherwise it is compiled as an **ES module** (strict, `import` allowed). Its
//!    `default` export is the entry point when it is a function (called as `(event, ctx)`),
//!    else its `main` export (called as OpenWhisk's `main(params)`).
//! 3. When neither parse succeeds, the error reported is the one found further into the code:
//!    a typo inside a module is reported where it is, not at the module's first `export`.
//!
//! A bundle that ends in `export` is parsed twice (once to find it is no script); a script is
//! parsed twice too (the check, then the evaluation). Parsing is fast next to running, and it
//! happens once per isolate.

use rquickjs::promise::PromiseState;
use rquickjs::{CatchResultExt, CaughtError, Ctx, Function, Module, Value};

use super::{CompileError, compile_error};
use crate::model::Contract;

/// What a function's code exports to the host: the function to call, and how to call it.
pub(super) struct Entry<'js> {
    pub function: Function<'js>,
    pub contract: Contract,
}

const NO_ENTRY: &str = "the code must `export default` a function, export a function `main`, or be a script defining `function main(params)`";

/// Loads `code` under the file name `name` (used in stacks and error positions).
pub(super) fn load<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    code: &str,
) -> Result<Entry<'js>, CompileError> {
    match probe_script(ctx, code)? {
        Probe::Script => load_script(ctx, name, code),
        Probe::NotScript(script_error) => load_module(ctx, name, code, script_error),
    }
}

/// Whether `code` parses as a script; when it does not, where the script parse failed.
enum Probe {
    Script,
    NotScript(CompileError),
}

/// How many lines QuickJS's `Function` constructor puts before the body: `(function
/// anonymous(` and `) {`.
const FUNCTION_WRAPPER_LINES: u32 = 2;

fn probe_script(ctx: &Ctx<'_>, code: &str) -> Result<Probe, CompileError> {
    let constructor: Function = ctx
        .globals()
        .get("Function")
        .map_err(|e| CompileError::plain(format!("engine error: {e}")))?;
    match constructor.call::<_, Value>((code,)).catch(ctx) {
        Ok(_) => Ok(Probe::Script),
        Err(error) if is_syntax_error(&error) => {
            let mut error = compile_error(&error);
            error.line = error.line.map(|l| l.saturating_sub(FUNCTION_WRAPPER_LINES));
            Ok(Probe::NotScript(error))
        }
        // Out of memory, the deadline, a stack overflow on deeply nested code: no parse says
        // anything more.
        Err(error) => Err(compile_error(&error)),
    }
}

fn is_syntax_error(error: &CaughtError<'_>) -> bool {
    match error {
        CaughtError::Exception(exception) => exception
            .get::<_, Option<String>>("name")
            .ok()
            .flatten()
            .is_some_and(|name| name == "SyntaxError"),
        _ => false,
    }
}

fn load_script<'js>(ctx: &Ctx<'js>, name: &str, code: &str) -> Result<Entry<'js>, CompileError> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.filename = Some(name.to_owned());
    ctx.eval_with_options::<(), _>(code, options)
        .catch(ctx)
        .map_err(|e| compile_error(&e))?;
    let main: Value = ctx
        .globals()
        .get("main")
        .catch(ctx)
        .map_err(|e| compile_error(&e))?;
    match main.into_function() {
        Some(function) => Ok(Entry {
            function,
            contract: Contract::OpenWhisk,
        }),
        None => Err(CompileError::plain(NO_ENTRY)),
    }
}

fn load_module<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    code: &str,
    script_error: CompileError,
) -> Result<Entry<'js>, CompileError> {
    let declared = Module::declare(ctx.clone(), name, code)
        .catch(ctx)
        .map_err(|error| further(compile_error(&error), script_error))?;
    let (module, promise) = declared.eval().catch(ctx).map_err(|e| compile_error(&e))?;
    while ctx.execute_pending_job() {}
    match promise.state() {
        PromiseState::Resolved => {}
        PromiseState::Rejected => {
            let error = promise.result::<Value>().map(|r| r.catch(ctx));
            return Err(match error {
                Some(Err(error)) => compile_error(&error),
                _ => CompileError::plain("the module failed to evaluate"),
            });
        }
        PromiseState::Pending => {
            return Err(CompileError::plain(
                "top-level await that waits on the SDK is not supported; await inside the function",
            ));
        }
    }
    let export = |export: &str| -> Result<Option<Function<'js>>, CompileError> {
        let value: Value = module
            .get(export)
            .catch(ctx)
            .map_err(|e| compile_error(&e))?;
        Ok(value.into_function())
    };
    if let Some(function) = export("default")? {
        return Ok(Entry {
            function,
            contract: Contract::Ferrobase,
        });
    }
    match export("main")? {
        Some(function) => Ok(Entry {
            function,
            contract: Contract::OpenWhisk,
        }),
        None => Err(CompileError::plain(NO_ENTRY)),
    }
}

/// Of a module's and a script's parse errors, the one further into the code.
fn further(module: CompileError, script: CompileError) -> CompileError {
    let at = |e: &CompileError| e.line.zip(e.column);
    match (at(&module), at(&script)) {
        (Some(m), Some(s)) if s > m => script,
        (None, Some(_)) => script,
        _ => module,
    }
}
