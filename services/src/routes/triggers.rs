//! Triggers, rules and the dead-letter list:
//! `GET /v1/triggers/{ns}`, `PUT/GET/DELETE /v1/triggers/{ns}/{name}`,
//! `POST /v1/triggers/{ns}/{name}/fire`, `GET /v1/rules/{ns}`,
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
use ferrobase_core::wire::Page;
use ferrobase_core::wire::triggers::{
    DeadLetterPage, Fired, Replayed, RuleDocument, TriggerDocument,
};
use ferrobase_functions::triggers::MissingFunction;
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
        .route("/v1/triggers/{ns}", get(list_triggers))
        .route(
            "/v1/triggers/{ns}/{name}",
            get(get_trigger).put(put_trigger).delete(delete_trigger),
        )
        .route("/v1/triggers/{ns}/{name}/fire", post(fire))
        .route("/v1/rules/{ns}", get(list_rules))
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
    Ok(Json(TriggerDocument {
        name,
        source: stored.source,
    })
    .into_response())
}

async fn get_trigger(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let spec = state.triggers.trigger(&ns, &name).await?;
    Ok(Json(TriggerDocument {
        name,
        source: spec.source,
    })
    .into_response())
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
    Ok(Json(Fired {
        trigger: name,
        event_offset: offset,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
struct PutRuleParams {
    #[serde(default)]
    allow_missing: bool,
}

async fn put_rule(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    Query(params): Query<PutRuleParams>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    let rule: RuleSpec = document(body, "rule").await?;
    let missing = if params.allow_missing {
        MissingFunction::Allow
    } else {
        MissingFunction::Refuse
    };
    let stored = state.triggers.put_rule(&ns, &name, rule, missing).await?;
    let problem = state.triggers.rule_problem(&ns, &stored).await;
    Ok(Json(RuleDocument {
        name,
        rule: stored,
        problem,
    })
    .into_response())
}

async fn get_rule(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let rule = state.triggers.rule(&ns, &name).await?;
    let problem = state.triggers.rule_problem(&ns, &rule).await;
    Ok(Json(RuleDocument {
        name,
        rule,
        problem,
    })
    .into_response())
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

impl ListParams {
    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        crate::routes::page_limit(self.limit, default, max)
    }
}

/// The cursor after a page of names: the last one when the page is full (there may be more),
/// none when it is not (the listing is complete).
fn next_after<T>(items: &[T], limit: usize, name: impl Fn(&T) -> &String) -> Option<String> {
    (items.len() == limit)
        .then(|| items.last().map(|item| name(item).clone()))
        .flatten()
}

/// Default and largest page of the trigger and rule listings.
const DEFAULT_LIST_LIMIT: usize = 100;
const MAX_LIST_LIMIT: usize = 1000;

async fn list_triggers(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let limit = params.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let items: Vec<TriggerDocument> = state
        .triggers
        .triggers(&ns, params.after.as_deref(), limit)
        .await?
        .into_iter()
        .map(|(name, spec)| TriggerDocument {
            name,
            source: spec.source,
        })
        .collect();
    let next = next_after(&items, limit, |item| &item.name);
    Ok(Json(Page { items, next }).into_response())
}

async fn list_rules(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let limit = params.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let mut items = Vec::new();
    for (name, rule) in state
        .triggers
        .rules(&ns, params.after.as_deref(), limit)
        .await?
    {
        let problem = state.triggers.rule_problem(&ns, &rule).await;
        items.push(RuleDocument {
            name,
            rule,
            problem,
        });
    }
    let next = next_after(&items, limit, |item| &item.name);
    Ok(Json(Page { items, next }).into_response())
}

async fn list_dead_letters(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Read)?;
    let limit = params.limit(100, 1000)?;
    let dead_letters = state
        .triggers
        .dead_letters(&ns, params.after.as_deref(), limit)
        .await?;
    let next = next_after(&dead_letters, limit, |letter| &letter.id);
    Ok(Json(DeadLetterPage { dead_letters, next }).into_response())
}

async fn replay(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = manager(&authorizer, Action::Write)?;
    let left = state.triggers.replay(&ns, &id).await?;
    Ok(Json(Replayed {
        id,
        delivered: left.is_none(),
        attempts: left.map(|letter| letter.attempts),
    })
    .into_response())
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
