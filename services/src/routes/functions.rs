//! The functions API: deploy, inspect and delete functions, invoke them (blocking or not),
//! web actions, and activation records.
//!
//! - `GET /v1/functions/{ns}`: the latest version of each function the caller may read
//! - `PUT/GET/DELETE /v1/functions/{ns}/{name}`
//! - `POST /v1/functions/{ns}/{name}/invoke[?blocking=false]` (`name` or `name@version`)
//! - `ANY /web/{ns}/{name}/{*path}` for functions deployed with `"web": true`, no token needed
//! - `GET /v1/activations/{ns}?function=&after=&limit=`, `GET /v1/activations/{ns}/{id}`

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use ferrobase_core::ErrorCode;
use ferrobase_core::event::Causation;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_core::wire::functions::{
    ActivationPage, FunctionDocument, FunctionSummary, FunctionVersionDetail,
};
use ferrobase_core::wire::{ActivationAccepted, Page};
use ferrobase_functions::model::{Cause, Contract, Target};
use ferrobase_functions::service::{Completed, Invocation};
use ferrobase_functions::web::{self, ResponseType, WebRequest};
use ferrobase_functions::{FunctionError, FunctionSpec, OutcomeKind};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Authorizer;
use crate::auth::listing::{Listing, SourceBatch};
use crate::error::ApiError;
use crate::routes::extract::{Path, Query};
use crate::routes::parse_ns;
use crate::state::AppState;

/// Largest deploy document (the code is limited to 4 MiB inside it).
const MAX_DEPLOY_BYTES: usize = 5 * 1024 * 1024;
/// Largest invocation payload.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;
const DEFAULT_LIST_LIMIT: usize = 20;
const MAX_LIST_LIMIT: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/functions/{ns}", get(list_functions))
        .route(
            "/v1/functions/{ns}/{name}",
            get(get_function).put(deploy).delete(delete),
        )
        .route("/v1/functions/{ns}/{name}/invoke", post(invoke))
        .route("/v1/activations/{ns}", get(list_activations))
        .route("/v1/activations/{ns}/{id}", get(get_activation))
        .route("/web/{ns}/{name}", any(web_action))
        .route("/web/{ns}/{name}/{*path}", any(web_action))
}

/// The function name of a `name` or `name@version` target, for policy checks.
fn base_name(target: &str) -> &str {
    // An invalid target is refused by the service with the parser's message; the policy
    // check before it sees the name part.
    Target::parse(target).map_or_else(|_| target.split('@').next().unwrap_or(target), |t| t.name)
}

fn function(name: &str) -> Resource<'_> {
    Resource::new(Service::Function, name)
}

impl From<FunctionError> for ApiError {
    fn from(error: FunctionError) -> Self {
        match &error {
            FunctionError::Compile(compile) => {
                ApiError::new(ErrorCode::InvalidArgument, error.to_string()).with_details(json!({
                    "line": compile.line,
                    "column": compile.column,
                }))
            }
            FunctionError::Storage(_) => ApiError::internal(error),
            _ => ApiError::new(error.code(), error.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    after: Option<String>,
    limit: Option<usize>,
}

/// The latest version of each function the caller may read, in name order, paged like every
/// listing through the authoriser (a cursor never names a function the caller may not read).
async fn list_functions(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    let limit = crate::routes::page_limit(params.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let listing = Listing::new(
        &authorizer,
        &state.cursors,
        Service::Function,
        "functions",
        "",
        None,
        limit,
    )?;
    let start = listing.start(params.after.as_deref())?;
    let service = &state.functions;
    let fetch = |after: Option<String>, max: usize| {
        let ns = &ns;
        async move {
            let versions = service.list(ns, after.as_deref(), max).await?;
            Ok(SourceBatch {
                exhausted: versions.len() < max,
                entries: versions
                    .into_iter()
                    .map(|version| {
                        (
                            version.name.clone(),
                            FunctionSummary::from(version.as_ref()),
                        )
                    })
                    .collect(),
            })
        }
    };
    let page = listing
        .run(start, fetch, |name, _| {
            authorizer.allows(Action::Read, function(name))
        })
        .await?;
    Ok(Json(Page {
        items: page.items,
        next: page.next,
    })
    .into_response())
}

async fn deploy(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Write, function(&name))?;
    let body = crate::routes::read_body(body, MAX_DEPLOY_BYTES, "deploy document").await?;
    let spec: FunctionSpec = serde_json::from_slice(&body)
        .map_err(|error| ApiError::invalid(format!("invalid deploy document: {error}")))?;
    let version = state.functions.deploy(&ns, &name, spec).await?;
    Ok(Json(FunctionSummary::from(version.as_ref())).into_response())
}

#[derive(Debug, Deserialize)]
struct GetParams {
    version: Option<u32>,
}

async fn get_function(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    Query(params): Query<GetParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Read, function(&name))?;
    let service = &state.functions;
    let versions = service.versions(&ns, &name).await?;
    let shown = match params.version {
        Some(number) => service.get(&ns, &format!("{name}@{number}")).await?,
        None => versions
            .last()
            .cloned()
            .expect("versions() never answers an empty list"),
    };
    Ok(Json(FunctionDocument {
        name,
        latest: versions.last().map(|v| v.version),
        version: FunctionVersionDetail::from(shown.as_ref()),
        versions: versions
            .iter()
            .map(|v| FunctionSummary::from(v.as_ref()))
            .collect(),
    })
    .into_response())
}

async fn delete(
    State(state): State<AppState>,
    Path((_, name)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Write, function(&name))?;
    state.functions.delete(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct InvokeParams {
    #[serde(default = "yes")]
    blocking: bool,
}

fn yes() -> bool {
    true
}

async fn invoke(
    State(state): State<AppState>,
    Path((_, target)): Path<(String, String)>,
    Query(params): Query<InvokeParams>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require(Action::Invoke, function(base_name(&target)))?;
    let body = crate::routes::read_body(body, MAX_EVENT_BYTES, "invocation payload").await?;
    let event: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::invalid(format!("the payload must be JSON: {error}")))?
    };
    let invocation = Invocation {
        namespace: ns,
        target,
        event,
        cause: Cause::Request,
        causation: Causation::default(),
    };
    let service = &state.functions;
    if !params.blocking {
        let id = service.start_invoke(invocation).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(ActivationAccepted { activation_id: id }),
        )
            .into_response());
    }
    let completed = service.invoke(invocation).await?;
    Ok(invoke_response(completed))
}

/// The result as JSON (200), or the failure: 502 for errors and oom, 504 for timeouts, each
/// with the activation id so the record can be looked up.
fn invoke_response(completed: Completed) -> Response {
    let id = completed.record.id.clone();
    let mut response = match (completed.record.outcome, completed.result_json) {
        (OutcomeKind::Ok, Some(json)) => {
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        (outcome, _) => failure_response(outcome, &completed.record.error, &id),
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert("x-ferrobase-activation-id", value);
    }
    response
}

fn failure_response(
    outcome: OutcomeKind,
    error: &Option<ferrobase_functions::model::ActivationError>,
    id: &str,
) -> Response {
    let code = match outcome {
        OutcomeKind::Timeout => ErrorCode::Timeout,
        OutcomeKind::Oom => ErrorCode::Oom,
        OutcomeKind::Error | OutcomeKind::Ok => ErrorCode::FunctionError,
    };
    let message = error
        .as_ref()
        .map_or("the function failed", |e| e.message.as_str());
    ApiError::new(code, message)
        .with_details(json!({ "activation_id": id }))
        .into_response()
}

/// A web action: the request becomes the event (or OpenWhisk params) and the result the
/// response, both by [`ferrobase_functions::web`]; an unsendable result is an activation
/// error. The name may end in `.http`, `.json`, `.html` or `.text` (the response type).
async fn web_action(
    State(state): State<AppState>,
    Path(params): Path<BTreeMap<String, String>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let ns = parse_ns(params.get("ns").map_or("", String::as_str))?;
    let segment = params.get("name").map_or("", String::as_str);
    let Some((name, response_type)) = ResponseType::split(segment) else {
        return Err(ApiError::not_found("no such web action"));
    };
    let service = &state.functions;
    let version = match service.get(&ns, name).await {
        Ok(version) if version.spec.web => version,
        // Functions not exported to the web look absent, like any unknown path.
        Ok(_) | Err(FunctionError::NotFound(_)) | Err(FunctionError::Invalid(_)) => {
            return Err(ApiError::not_found("no such web action"));
        }
        Err(error) => return Err(error.into()),
    };
    let (parts, body) = request.into_parts();
    let body = crate::routes::read_body(body, MAX_EVENT_BYTES, "request body").await?;
    let caller = crate::auth::web_caller(&state, &parts, &ns).await;
    let path = format!("/{}", params.get("path").map_or("", String::as_str));
    let web_request = WebRequest {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: &body,
        auth: caller
            .as_ref()
            .map(|claims| json!({"sub": claims.sub, "role": claims.role, "ns": claims.ns})),
    };
    let event = web::event(&web_request, version.contract);
    let completed = service
        .invoke(Invocation {
            namespace: ns,
            target: format!("{}@{}", version.name, version.version),
            event,
            cause: Cause::Web {
                response: response_type,
            },
            causation: Causation::default(),
        })
        .await?;
    Ok(web_response(completed, version.contract, response_type))
}

fn web_response(completed: Completed, contract: Contract, response_type: ResponseType) -> Response {
    let id = completed.record.id.clone();
    let (OutcomeKind::Ok, Some(json)) = (completed.record.outcome, completed.result_json) else {
        return failure_response(completed.record.outcome, &completed.record.error, &id);
    };
    // The service has checked the result already (an unsendable one is an error outcome).
    let shaped = match web::shape(&json, contract, response_type) {
        Ok(shaped) => shaped,
        Err(message) => {
            let error = ferrobase_functions::model::ActivationError {
                message,
                stack: None,
            };
            return failure_response(OutcomeKind::Error, &Some(error), &id);
        }
    };
    let mut response = Response::new(Body::from(shaped.body));
    *response.status_mut() = StatusCode::from_u16(shaped.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in shaped.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    response
}

#[derive(Debug, Deserialize)]
struct ActivationParams {
    function: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_activations(
    State(state): State<AppState>,
    Query(params): Query<ActivationParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    if let Some(name) = &params.function {
        authorizer.require(Action::Read, function(name))?;
    }
    let limit = crate::routes::page_limit(params.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let what = format!("activations/{}", params.function.as_deref().unwrap_or(""));
    let listing = Listing::new(
        &authorizer,
        &state.cursors,
        Service::Function,
        &what,
        "",
        None,
        limit,
    )?;
    let start = listing.start(params.after.as_deref())?;
    let service = &state.functions;
    let fetch = |after: Option<String>, max: usize| {
        let function = params.function.as_deref();
        let ns = &ns;
        async move {
            let records = service
                .activations(ns, function, after.as_deref(), max)
                .await?;
            Ok(SourceBatch {
                exhausted: records.len() < max,
                entries: records
                    .into_iter()
                    .map(|record| (record.id.clone(), record))
                    .collect(),
            })
        }
    };
    let page = listing
        .run(start, fetch, |_, record| {
            authorizer.allows(Action::Read, function(&record.function))
        })
        .await?;
    Ok(Json(ActivationPage {
        activations: page.items,
        next: page.next,
    })
    .into_response())
}

async fn get_activation(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    // Out of scope is a 403 before the lookup, so it cannot probe which ids exist.
    authorizer.require_scope(Service::Function, Action::Read)?;
    let record = state.functions.activation(&ns, &id).await?;
    authorizer.require(Action::Read, function(&record.function))?;
    Ok(Json(record).into_response())
}
