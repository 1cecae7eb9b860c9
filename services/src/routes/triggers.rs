//! Triggers, rules and the dead-letter list:
//! `PUT/GET/DELETE /v1/triggers/{ns}/{name}`, `POST /v1/triggers/{ns}/{name}/fire`,
//! `PUT/GET/DELETE /v1/rules/{ns}/{name}`, `GET /v1/dlq/{ns}`,
//! `POST /v1/dlq/{ns}/{id}/replay`, `DELETE /v1/dlq/{ns}/{id}`.
//!
//! Managing triggers, rules and dead letters is for admin and service tokens, within their
//! scopes: they belong to the `function` service, so reading them needs `function:read` and
//! changing them (including replaying or purging a dead letter, which runs or drops work)
//! `function:write`. Firing a manual trigger needs `invoke` on `function:triggers/{name}`, for
//! user tokens by policy.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferrobase_core::Namespace;
use ferrobase_core::auth::Role;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_functions::triggers::model::{RuleSpec, TriggerSpec};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Authorizer;
use crate::error::ApiError;
use crate::routes::extract::{Path, Query};
use crate::state::AppState;

const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/triggers/{ns}/{name}",
            get(get_trigger).put(put_trigger).delete(delete_trigger),
        )
        .route("/v1/triggers/{ns}/{name}/fire", post(fire))
        .route(
            "/v1/rules/{ns}/{name}",
            get(get_rule).put(put_rule).delete(delete_rule),
        )
        .route("/v1/dlq/{ns}", get(list_dead_letters))
        .route("/v1/dlq/{ns}/{id}", delete(purge))
        .route("/v1/dlq/{ns}/{id}/replay", post(replay))
}

/// Admin and service tokens of the namespace manage triggers, rules and dead letters, when
/// their scopes cover `action` on functions.
fn manager(authorizer: &Authorizer, action: Action) -> Result<Namespace, ApiError> {
    authorizer.require_manager(&[Role::Admin, Role::Service], Service::Function, action)?;
    Ok(authorizer.namespace().clone())
}

async fn document<T: serde::de::DeserializeOwned>(body: Body, what: &str) -> Result<T, ApiError> {
    let bytes = crate::routes::read_body(body, MAX_DOCUMENT_BYTES, what).await?;
    serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::invalid(format!("invalid {what}: {error}")))
}

async fn put_trigger(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    let spec: TriggerSpec = document(body, "trigger").await?;
    let stored = state.triggers.put_trigger(&ns, &name, spec).await?;
    Ok(Json(json!({"name": name, "source": stored.source})).into_response())
}

async fn get_trigger(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let spec = state.triggers.trigger(&ns, &name).await?;
    Ok(Json(json!({"name": name, "source": spec.source})).into_response())
}

async fn delete_trigger(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    state.triggers.delete_trigger(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn fire(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    let path = format!("triggers/{name}");
    authorizer.require(Action::Invoke, Resource::new(Service::Function, &path))?;
    let bytes = crate::routes::read_body(body, MAX_PAYLOAD_BYTES, "payload").await?;
    let payload: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::invalid(format!("the payload must be JSON: {error}")))?
    };
    let offset = state.triggers.fire(&ns, &name, payload).await?;
    Ok(Json(json!({"trigger": name, "event_offset": offset})).into_response())
}

async fn put_rule(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    let rule: RuleSpec = document(body, "rule").await?;
    let stored = state.triggers.put_rule(&ns, &name, rule).await?;
    Ok(Json(json!({"name": name, "rule": stored})).into_response())
}

async fn get_rule(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let rule = state.triggers.rule(&ns, &name).await?;
    Ok(Json(json!({"name": name, "rule": rule})).into_response())
}

async fn delete_rule(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    state.triggers.delete_rule(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct ListParams {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_dead_letters(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let letters = state
        .triggers
        .dead_letters(&ns, params.after.as_deref(), limit)
        .await?;
    let next = (letters.len() == limit)
        .then(|| letters.last().map(|l| l.id.clone()))
        .flatten();
    Ok(Json(json!({"dead_letters": letters, "next": next})).into_response())
}

async fn replay(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    match state.triggers.replay(&ns, &id).await? {
        None => Ok(Json(json!({"id": id, "delivered": true})).into_response()),
        Some(letter) => Ok(Json(
            json!({"id": id, "delivered": false, "attempts": letter.attempts}),
        )
        .into_response()),
    }
}

async fn purge(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    state.triggers.purge(&ns, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
