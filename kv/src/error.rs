//! Errors of the KV service.

use ferrobase_core::ErrorCode;

/// What went wrong with a KV operation. Every variant maps to one public error code.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("value of {size} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge { size: usize, max: usize },
    #[error("transaction too large: {0}")]
    TxnTooLarge(String),
    /// A compare-and-set check did not hold; nothing was written.
    #[error("check {index} failed for key {key:?}: {reason}")]
    CheckFailed {
        index: usize,
        key: String,
        reason: String,
    },
    /// The write's idempotency key (`Causation::write_key`) was applied before; nothing was
    /// written this time.
    #[error("this write was applied before (idempotency key {0:?})")]
    AlreadyApplied(String),
    /// The backend failed; details are for logs, not clients.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl KvError {
    pub fn code(&self) -> ErrorCode {
        match self {
            KvError::InvalidKey(_) | KvError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            KvError::ValueTooLarge { .. } | KvError::TxnTooLarge(_) => ErrorCode::TooLarge,
            KvError::CheckFailed { .. } | KvError::AlreadyApplied(_) => {
                ErrorCode::PreconditionFailed
            }
            KvError::Storage(_) => ErrorCode::Internal,
        }
    }
}

impl From<sled::Error> for KvError {
    fn from(error: sled::Error) -> Self {
        KvError::Storage(error.to_string())
    }
}
