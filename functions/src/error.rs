//! Errors of the function service.

use ferrobase_core::ErrorCode;
use ferrobase_core::records::RecordError;

use crate::engine::CompileError;

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0}")]
    Invalid(String),
    /// The code does not load; nothing was deployed.
    #[error("the code does not compile: {0}")]
    Compile(CompileError),
    #[error("{0}")]
    NotFound(String),
    /// Too many activations of the function are running and waiting.
    #[error("{0}")]
    Busy(String),
    /// Concurrent deploys raced; retry.
    #[error("{0}")]
    Conflict(String),
    #[error("function runtime unavailable: {0}")]
    Unavailable(String),
    #[error("storage failure: {0}")]
    Storage(String),
}

impl FunctionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            FunctionError::Invalid(_) | FunctionError::Compile(_) => ErrorCode::InvalidArgument,
            FunctionError::NotFound(_) => ErrorCode::NotFound,
            FunctionError::Busy(_) => ErrorCode::ResourceExhausted,
            FunctionError::Conflict(_) => ErrorCode::Conflict,
            FunctionError::Unavailable(_) => ErrorCode::Unavailable,
            FunctionError::Storage(_) => ErrorCode::Internal,
        }
    }
}

impl From<RecordError> for FunctionError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::ConditionFailed { .. } => FunctionError::Conflict(error.to_string()),
            RecordError::Invalid(message) => FunctionError::Invalid(message),
            RecordError::Storage(message) => FunctionError::Storage(message),
        }
    }
}
