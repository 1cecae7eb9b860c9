//! Errors of the queue service.

use ferrobase_core::ErrorCode;

/// What went wrong with a queue operation. Every variant maps to one public error code.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A name, body, option or receipt is malformed or out of bounds; nothing was written.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The queue has not been configured (`PUT /v1/queues/{ns}/{queue}` creates it).
    #[error("queue {0:?} not found")]
    QueueNotFound(String),
    /// A message or batch is larger than the engine accepts; nothing was written.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The backend failed; details are for logs, not clients.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueueError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            QueueError::QueueNotFound(_) => ErrorCode::NotFound,
            QueueError::TooLarge(_) => ErrorCode::TooLarge,
            QueueError::Storage(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        QueueError::InvalidArgument(message.into())
    }
}

impl From<sled::Error> for QueueError {
    fn from(error: sled::Error) -> Self {
        QueueError::Storage(error.to_string())
    }
}
