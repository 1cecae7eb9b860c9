//! The KV API (docs/api.md):
//! `PUT/GET/HEAD/DELETE /v1/kv/{ns}/{*key}`, `GET /v1/kv/{ns}?prefix=&after=&limit=` and
//! `POST /v1/kv/{ns}/_txn`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use ferrobase_core::ErrorCode;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_core::wire::{KvListItem, KvStored, Page};
use ferrobase_kv::model::validate_key_text;
use ferrobase_kv::{Check, Key, ListQuery, Mutation, MutationResult, Txn};
use serde::Deserialize;

use crate::auth::Authorizer;
use crate::auth::listing::{Listing, SourceBatch};
use crate::error::ApiError;
use crate::metrics::KvOperation;
use crate::routes::extract::{Path, Query};
use crate::state::AppState;

/// The key reserved for transactions under a namespace.
const TXN_KEY: &str = "_txn";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const DEFAULT_LIST_LIMIT: usize = 100;
const MAX_LIST_LIMIT: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/kv/{ns}", get(list)).route(
        "/v1/kv/{ns}/{*key}",
        get(get_value)
            .put(put_value)
            .delete(delete_value)
            .post(post_action),
    )
}

fn kv(path: &str) -> Resource<'_> {
    Resource::new(Service::Kv, path)
}

fn parse_key(raw: &str) -> Result<Key, ApiError> {
    Key::parse(raw).map_err(ApiError::from)
}

/// `"7"` → 7, as sent in `ETag`, `If-Match` and `If-None-Match`.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits make a valid header")
}

/// A precondition header: `*` or one version ETag (quoted or bare, optionally weak).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precondition {
    Any,
    Version(u64),
}

fn precondition(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> Result<Option<Precondition>, ApiError> {
    let Some(value) = headers.get(&name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::invalid(format!("{name} is not valid text")))?
        .trim();
    if text == "*" {
        return Ok(Some(Precondition::Any));
    }
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    bare.parse::<u64>()
        .map(|v| Some(Precondition::Version(v)))
        .map_err(|_| {
            ApiError::invalid(format!(
                "{name} must be \"*\" or one version ETag such as \"7\""
            ))
        })
}

#[derive(Debug, Deserialize)]
struct PutParams {
    /// Seconds until the entry expires.
    ttl: Option<u64>,
}

async fn get_value(
    State(state): State<AppState>,
    Path((_, key)): Path<(String, String)>,
    headers: HeaderMap,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    let key = parse_key(&key)?;
    authorizer.require(Action::Read, kv(key.as_str()))?;
    state.metrics.count_kv(KvOperation::Get);
    let entry = state
        .kv
        .get(&ns, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("key {:?} not found", key.as_str())))?;
    let tag = etag(entry.meta.version);
    let not_modified = match precondition(&headers, header::IF_NONE_MATCH)? {
        Some(Precondition::Any) => true,
        Some(Precondition::Version(v)) => v == entry.meta.version,
        None => false,
    };
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    let content_type = HeaderValue::from_str(&entry.meta.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    let mut response = Response::new(Body::from(entry.value));
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, content_type);
    response_headers.insert(header::ETAG, tag);
    if let Some(at) = entry.meta.expires_at_ms {
        let expires = ferrobase_core::event::rfc3339_millis(at);
        if let Ok(value) = HeaderValue::from_str(&expires) {
            response_headers.insert("x-ferrobase-expires-at", value);
        }
    }
    Ok(response)
}

async fn put_value(
    State(state): State<AppState>,
    Path((_, key)): Path<(String, String)>,
    Query(params): Query<PutParams>,
    headers: HeaderMap,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    let key = parse_key(&key)?;
    authorizer.require(Action::Write, kv(key.as_str()))?;
    let max = state.limits.max_value_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("value exceeds the limit of {max} bytes"),
        ));
    }
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => DEFAULT_CONTENT_TYPE.to_owned(),
        // Its length is checked where every write path meets it: `Txn::validate`.
        Some(value) => value
            .to_str()
            .map_err(|_| ApiError::invalid("Content-Type must be visible ASCII"))?
            .to_owned(),
    };
    let value = crate::routes::read_body(body, max, "value").await?;
    let mut txn = Txn::put(key.clone(), value, content_type);
    if let Some(seconds) = params.ttl {
        txn = txn.with_ttl(Duration::from_secs(seconds));
    }
    txn.checks.extend(checks_from_headers(&headers, &key)?);
    state.metrics.count_kv(KvOperation::Put);
    let outcome = state.kv.commit(&ns, txn).await?;
    let Some(MutationResult::Put { version, .. }) = outcome.results.first() else {
        return Err(ApiError::internal("put committed without a put result"));
    };
    Ok((
        [(header::ETAG, etag(*version))],
        Json(KvStored {
            key: key.as_str().to_owned(),
            version: *version,
        }),
    )
        .into_response())
}

/// `If-Match` and `If-None-Match: *` as transaction checks on `key`.
fn checks_from_headers(headers: &HeaderMap, key: &Key) -> Result<Vec<Check>, ApiError> {
    let mut checks = Vec::new();
    match precondition(headers, header::IF_MATCH)? {
        Some(Precondition::Any) => checks.push(Check::Exists { key: key.clone() }),
        Some(Precondition::Version(version)) => checks.push(Check::Version {
            key: key.clone(),
            version,
        }),
        None => {}
    }
    match precondition(headers, header::IF_NONE_MATCH)? {
        Some(Precondition::Any) => checks.push(Check::Absent { key: key.clone() }),
        Some(Precondition::Version(_)) => {
            return Err(ApiError::invalid(
                "on writes, If-None-Match only supports \"*\" (create if absent)",
            ));
        }
        None => {}
    }
    Ok(checks)
}

async fn delete_value(
    State(state): State<AppState>,
    Path((_, key)): Path<(String, String)>,
    headers: HeaderMap,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    let key = parse_key(&key)?;
    authorizer.require(Action::Write, kv(key.as_str()))?;
    let mut txn = Txn::delete(key.clone());
    txn.checks.extend(checks_from_headers(&headers, &key)?);
    state.metrics.count_kv(KvOperation::Delete);
    let outcome = state.kv.commit(&ns, txn).await?;
    match outcome.results.first() {
        Some(MutationResult::Delete { existed: true, .. }) => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::not_found(format!(
            "key {:?} not found",
            key.as_str()
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    validate_key_text(&params.prefix)?;
    let limit = crate::routes::page_limit(params.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let listing = Listing::new(
        &authorizer,
        &state.cursors,
        Service::Kv,
        "keys",
        &params.prefix,
        None,
        limit,
    )?;
    let start = listing.start(params.after.as_deref())?;
    if let Some(after) = &start {
        validate_key_text(after)?;
    }
    state.metrics.count_kv(KvOperation::List);
    let fetch = |after: Option<String>, max: usize| {
        let query = ListQuery {
            prefix: params.prefix.clone(),
            after,
            limit: max,
        };
        let state = &state;
        let ns = &ns;
        async move {
            let page = state.kv.list(ns, &query).await?;
            Ok(SourceBatch {
                exhausted: page.next.is_none(),
                entries: page
                    .entries
                    .into_iter()
                    .map(|(key, meta)| (key.as_str().to_owned(), list_item(key, meta)))
                    .collect(),
            })
        }
    };
    let page = listing
        .run(start, fetch, |key, _| {
            authorizer.allows(Action::Read, kv(key))
        })
        .await?;
    Ok(Json(Page {
        items: page.items,
        next: page.next,
    })
    .into_response())
}

fn list_item(key: Key, meta: ferrobase_kv::EntryMeta) -> KvListItem {
    KvListItem {
        key: key.as_str().to_owned(),
        version: meta.version,
        size: meta.size,
        content_type: meta.content_type,
        updated_at: ferrobase_core::event::rfc3339_millis(meta.updated_at_ms),
        expires_at: meta
            .expires_at_ms
            .map(ferrobase_core::event::rfc3339_millis),
    }
}

async fn post_action(
    State(state): State<AppState>,
    Path((_, key)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    if key != TXN_KEY {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "POST is only for /v1/kv/{ns}/_txn; use PUT to write a key",
        ));
    }
    let ns = authorizer.namespace().clone();
    let body = crate::routes::read_body(body, state.limits.max_txn_bytes, "transaction").await?;
    let txn = parse_txn(&body)?;
    for check in &txn.checks {
        authorizer.require(Action::Read, kv(check.key().as_str()))?;
    }
    for mutation in &txn.mutations {
        authorizer.require(Action::Write, kv(mutation.key().as_str()))?;
    }
    state.metrics.count_kv(KvOperation::Txn);
    let outcome = state.kv.commit(&ns, txn).await?;
    Ok(Json(outcome).into_response())
}

/// Parses and checks the JSON body of `POST /v1/kv/{ns}/_txn` into the transaction the engine
/// is given (which still runs [`Txn::validate`] against its limits). Public for the fuzz
/// harness (`fuzz/`), which feeds it arbitrary bodies.
#[doc(hidden)]
pub fn parse_txn(body: &[u8]) -> Result<Txn, ApiError> {
    let request: TxnRequest = serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(format!("invalid transaction: {error}")))?;
    request.into_txn()
}

/// The JSON body of `POST /v1/kv/{ns}/_txn`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnRequest {
    #[serde(default)]
    checks: Vec<CheckRequest>,
    ops: Vec<OpRequest>,
}

/// `{"key": k, "version": n}`, `{"key": k, "exists": true}` or `{"key": k, "exists": false}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    key: String,
    version: Option<u64>,
    exists: Option<bool>,
}

/// `{"op": "put", "key": k, "value": "text" | "value_base64": "..." | "json": any,
/// "content_type"?: ..., "ttl"?: seconds}` or `{"op": "delete", "key": k}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum OpRequest {
    Put {
        key: String,
        value: Option<String>,
        value_base64: Option<String>,
        json: Option<serde_json::Value>,
        content_type: Option<String>,
        ttl: Option<u64>,
    },
    Delete {
        key: String,
    },
}

impl TxnRequest {
    fn into_txn(self) -> Result<Txn, ApiError> {
        let checks = self
            .checks
            .into_iter()
            .enumerate()
            .map(|(index, check)| {
                let key = parse_key(&check.key)?;
                match (check.version, check.exists) {
                    (Some(version), None | Some(true)) => Ok(Check::Version { key, version }),
                    (None, Some(true)) => Ok(Check::Exists { key }),
                    (None, Some(false)) => Ok(Check::Absent { key }),
                    _ => Err(ApiError::invalid(format!(
                        "check {index} needs \"version\" or \"exists\" (and not version with exists: false)"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let mutations = self
            .ops
            .into_iter()
            .enumerate()
            .map(|(index, op)| match op {
                OpRequest::Delete { key } => Ok(Mutation::Delete { key: parse_key(&key)? }),
                OpRequest::Put { key, value, value_base64, json, content_type, ttl } => {
                    let (value, default_type) = match (value, value_base64, json) {
                        (Some(text), None, None) => (Bytes::from(text), "text/plain; charset=utf-8"),
                        (None, Some(encoded), None) => (
                            base64::engine::general_purpose::STANDARD
                                .decode(encoded.as_bytes())
                                .map(Bytes::from)
                                .map_err(|error| {
                                    ApiError::invalid(format!("op {index}: invalid base64: {error}"))
                                })?,
                            DEFAULT_CONTENT_TYPE,
                        ),
                        (None, None, Some(document)) => (
                            Bytes::from(serde_json::to_vec(&document).map_err(ApiError::internal)?),
                            "application/json",
                        ),
                        _ => {
                            return Err(ApiError::invalid(format!(
                                "op {index}: a put needs exactly one of \"value\", \"value_base64\" or \"json\""
                            )));
                        }
                    };
                    Ok(Mutation::Put {
                        key: parse_key(&key)?,
                        value,
                        content_type: content_type.unwrap_or_else(|| default_type.to_owned()),
                        ttl: ttl.map(Duration::from_secs),
                    })
                }
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(Txn {
            checks,
            mutations,
            ..Txn::default()
        })
    }
}
