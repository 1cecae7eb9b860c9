//! What the auth service refuses, and how each refusal is answered over HTTP.
//!
//! The mapping lives here rather than in `crate::error` because that module sits below `auth`
//! (docs/architecture.md); it is still the one place these errors become statuses.

use ferrobase_core::ErrorCode;
use ferrobase_core::records::RecordError;
use serde_json::json;

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the auth service is not enabled in namespace {0}")]
    NotEnabled(String),
    #[error("anonymous sign-up is not allowed in this namespace")]
    AnonymousNotAllowed,
    #[error("{0}")]
    Invalid(String),
    /// The same answer for an unknown email and a wrong password.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; its session is revoked")]
    RefreshTokenReused,
    #[error("invalid access token: {0}")]
    InvalidAccessToken(String),
    #[error("this user is disabled")]
    UserDisabled,
    #[error("this email is already registered")]
    EmailTaken,
    #[error("{0}")]
    NotFound(String),
    #[error("invalid or expired code")]
    InvalidCode,
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Another request changed the same records first; retrying is safe.
    #[error("changed concurrently; retry")]
    Contended,
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error("auth internal error: {0}")]
    Internal(String),
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        let code = match &error {
            AccountError::NotEnabled(_)
            | AccountError::AnonymousNotAllowed
            | AccountError::UserDisabled => ErrorCode::PermissionDenied,
            AccountError::Invalid(_) | AccountError::InvalidCode => ErrorCode::InvalidArgument,
            AccountError::InvalidCredentials
            | AccountError::InvalidRefreshToken
            | AccountError::RefreshTokenReused
            | AccountError::InvalidAccessToken(_) => ErrorCode::Unauthenticated,
            AccountError::EmailTaken | AccountError::Contended => ErrorCode::Conflict,
            AccountError::NotFound(_) => ErrorCode::NotFound,
            AccountError::RateLimited { retry_after_secs } => {
                return ApiError::new(ErrorCode::ResourceExhausted, error.to_string())
                    .with_details(json!({ "retry_after": retry_after_secs }));
            }
            AccountError::Records(RecordError::ConditionFailed { .. }) => ErrorCode::Conflict,
            AccountError::Records(_) | AccountError::Internal(_) => {
                return ApiError::internal(error);
            }
        };
        ApiError::new(code, crate::error::bounded(&error.to_string()))
    }
}
