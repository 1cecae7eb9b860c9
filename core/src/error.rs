//! Error codes of the public API contract (docs/api.md).
//!
//! Libraries keep their own typed errors; each maps onto one of these codes, and only the HTTP
//! layer in `services` turns a code into a status line.

use serde::{Deserialize, Serialize};

/// The stable, machine-readable `error.code` of every API error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Conflict,
    PreconditionFailed,
    TooLarge,
    ResourceExhausted,
    Internal,
    Unavailable,
    /// A function's activation ended in an error (its result, a throw or a rejection).
    FunctionError,
    /// A function's activation ran past its deadline.
    Timeout,
    /// A function's activation ran out of its memory limit.
    Oom,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::FunctionError => "function_error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Oom => "oom",
        }
    }
}

/// Compares with the wire spelling, so callers can match a code read from an answer against
/// the string the API documents.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
