//! `PUT/GET /v1/policies/{ns}`: the namespace's policy document (admin only, and within the
//! token's scopes: `policy:read` to read it, `policy:write` to replace it).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ferrobase_core::policy::{Action, Policy, Service};

use crate::auth::Authorizer;
use crate::error::ApiError;
use crate::routes::read_body;
use crate::state::AppState;

/// Largest policy document accepted.
const MAX_POLICY_BYTES: usize = 2 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/policies/{ns}", get(get_policy).put(put_policy))
}

async fn get_policy(
    State(state): State<AppState>,
    authorizer: Authorizer,
) -> Result<Json<Policy>, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require_admin(Service::Policy, Action::Read)?;
    match state.policies.get(&ns).await? {
        Some(policy) => Ok(Json(Policy::clone(&policy))),
        None => Err(ApiError::not_found(format!("namespace {ns} has no policy"))),
    }
}

async fn put_policy(
    State(state): State<AppState>,
    authorizer: Authorizer,
    body: axum::body::Body,
) -> Result<Json<Policy>, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require_admin(Service::Policy, Action::Write)?;
    let body = read_body(body, MAX_POLICY_BYTES, "the policy document").await?;
    let policy: Policy = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!(
            "invalid policy document: {}",
            crate::routes::extract::bounded(&error.to_string())
        ))
    })?;
    let stored = state.policies.put(&ns, policy).await?;
    Ok(Json(Policy::clone(&stored)))
}
