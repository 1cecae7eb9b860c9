//! How an activation or a load ends: the result as JSON (Ferrobase's and OpenWhisk's rules),
//! a [`Failure`] classified as error, timeout or oom, and compile errors with their line and
//! column read from QuickJS's stack.

use std::time::Instant;

use rquickjs::{CatchResultExt, CaughtError, Ctx, Exception, Value};

use super::globals::display;
use super::logs::LogBuffer;
use super::{ActivationOutput, CompileError};
use crate::model::{ActivationError, OutcomeKind};

/// What a timed-out activation's error says.
pub(super) const TIMEOUT_MESSAGE: &str = "the function did not finish before its deadline";

/// The activation's result as JSON: `undefined` becomes `null`; anything JSON cannot express
/// (functions, symbols, BigInt, cycles) is an error, not a silent `{}`.
pub(super) fn result_json<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<String, Failure> {
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
pub(super) fn openwhisk_result<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<String, Failure> {
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

/// What a thrown `null` reads as; see [`Failure::classify`].
const NULL_THROWN: &str = "thrown value: null";

/// Why an activation failed, before classification.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) stack: Option<String>,
    timed_out: bool,
}

impl Failure {
    pub(super) fn plain(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            stack: None,
            timed_out: false,
        }
    }

    pub(super) fn timeout() -> Self {
        Failure {
            timed_out: true,
            ..Failure::plain("deadline passed")
        }
    }

    pub(super) fn engine(error: &rquickjs::Error) -> Self {
        Failure::plain(format!("engine error: {error}"))
    }

    pub(super) fn caught(error: CaughtError<'_>) -> Self {
        match &error {
            CaughtError::Exception(exception) => Failure {
                message: exception_message(exception),
                stack: exception.stack().filter(|s| !s.is_empty()),
                timed_out: false,
            },
            _ => Failure::plain(caught_message(&error)),
        }
    }

    pub(super) fn classify(&self, deadline: Instant) -> OutcomeKind {
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

pub(super) fn failed(
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

pub(super) fn engine_error(error: rquickjs::Error) -> CompileError {
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
pub(super) fn compile_error(error: &CaughtError<'_>) -> CompileError {
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
