//! Extractors whose rejections answer in the API's JSON error format (axum's own answer in
//! plain text). Every handler extracts through these, so no rejection escapes as plain text.
//! Messages echo at most [`MAX_ECHO`] characters of what the client sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;
use ferrobase_core::ErrorCode;

pub use crate::error::{MAX_ECHO, bounded};

/// `axum::extract::Query` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::Json` (as a request body) with JSON errors.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(format!(
            "invalid query: {}",
            bounded(&rejection.body_text())
        ))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid(format!("invalid path: {}", bounded(&rejection.body_text())))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = bounded(&rejection.body_text());
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::invalid("the request body must be JSON (content-type: application/json)")
            }
            JsonRejection::BytesRejection(_)
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(ErrorCode::TooLarge, message)
            }
            _ => ApiError::invalid(format!("invalid JSON body: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_bounded_on_character_boundaries() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_ECHO + 10);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_ECHO + 3);
        assert!(cut.ends_with("..."));
    }
}
