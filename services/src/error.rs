//! The one place where library errors become HTTP responses.
//!
//! Every error body is `{"error":{"code":"...","message":"..."}}` (docs/api.md, "Errors"). Internal
//! failures are logged with their details and answered with a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferrobase_core::ErrorCode;
use ferrobase_core::event::ChangeLogError;
use ferrobase_core::wire::{ErrorBody, ErrorDocument};
use ferrobase_kv::KvError;
use ferrobase_queue::QueueError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields merged into the error object (e.g. `line` and `column` of a compile error).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds fields (a JSON object) to the error object.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// Logs `detail` and answers a generic internal error, so internals never leak.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error")
    }
}

/// The HTTP status of each public error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        // A failed activation: the function, behind us, failed (docs/api.md).
        ErrorCode::FunctionError | ErrorCode::Oom => StatusCode::BAD_GATEWAY,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A rate limit says when to come back, in the header clients and proxies read.
        let retry_after = match (&self.code, &self.details) {
            (ErrorCode::ResourceExhausted, Some(details)) => details
                .get("retry_after")
                .and_then(serde_json::Value::as_u64),
            _ => None,
        };
        let mut response = (
            status_of(self.code),
            Json(ErrorDocument {
                error: ErrorBody {
                    code: self.code,
                    message: self.message,
                    details: match self.details {
                        Some(serde_json::Value::Object(mut extra)) => {
                            // Details never shadow the two fields every error has.
                            extra.remove("code");
                            extra.remove("message");
                            extra
                        }
                        _ => serde_json::Map::new(),
                    },
                },
            }),
        )
            .into_response();
        if self.code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<KvError> for ApiError {
    fn from(error: KvError) -> Self {
        match error.code() {
            ErrorCode::Internal => ApiError::internal(error),
            code => ApiError::new(code, error.to_string()),
        }
    }
}

impl From<ChangeLogError> for ApiError {
    fn from(error: ChangeLogError) -> Self {
        ApiError::internal(error)
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error.code() {
            ErrorCode::Internal => ApiError::internal(error),
            code => ApiError::new(code, error.to_string()),
        }
    }
}

impl From<ferrobase_storage::StorageError> for ApiError {
    fn from(error: ferrobase_storage::StorageError) -> Self {
        match error.code() {
            ErrorCode::Internal => ApiError::internal(error),
            code => ApiError::new(code, bounded(&error.to_string())),
        }
    }
}

/// How many characters of client input an error message repeats at most.
pub const MAX_ECHO: usize = 200;

/// `text` cut to [`MAX_ECHO`] characters, marked when cut: the one way an error message
/// repeats what a client sent.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}
