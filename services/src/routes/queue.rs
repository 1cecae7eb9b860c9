//! The queue API (docs/api.md), all JSON:
//!
//! | route | body → answer | action on `queue:{queue}` |
//! |---|---|---|
//! | `GET /v1/queues/{ns}?after=&limit=` | → `{"items": [{"queue", "messages"}], "next"}`, the queues the caller may read | read |
//! | `PUT /v1/queues/{ns}/{queue}` | config → config | write |
//! | `GET /v1/queues/{ns}/{queue}` | → config, stored messages, groups | read |
//! | `POST .../messages` | `{"messages": [...]}` → `{"ids": [...]}` | write |
//! | `POST .../pull` | `{"max", "wait_ms", "lease_ms", "group"}` → `{"messages": [...]}` | read |
//! | `POST .../ack` | `{"receipts": [...]}` → `{"acked", "stale"}` | write |
//! | `POST .../nack` | `{"receipts", "delay_ms", "error"}` → `{"nacked", "stale"}` | write |
//! | `GET .../dlq?group=&after=&limit=` | → `{"messages": [...], "next"}` | read |
//! | `POST .../dlq/replay`, `POST .../dlq/purge` | `{"group", "ids"?}` → `{"replayed"}` / `{"purged"}` | write |
//! | `GET .../subscribe?group=&max=&lease_ms=` | Server-Sent Events, acked as delivered | read and write |
//!
//! Pulling is a read, settling (ack, nack) a write, as for every service: a consumer needs
//! both. The subscription acks what it sends, so it needs both as well. Message bodies are any
//! JSON value; they are stored as their JSON text.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferrobase_core::Namespace;
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_core::wire::Page;
use ferrobase_core::wire::queue::{
    Acked, DeadLettersPurged, DeadLettersReplayed, GroupInfo, Nacked, Published, Pulled,
    PulledMessage, QueueConfigDocument, QueueConfigured, QueueDeadLetter, QueueDeadLetterPage,
    QueueInfo, QueueSummary, RetentionDocument,
};
use ferrobase_queue::{
    DeadLetterSelection, Delivery, EventEmission, GroupName, MessageId, Nack, NewMessage,
    PullRequest, Queue, QueueConfig, QueueName, Receipt, Retention,
};
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Authorizer;
use crate::auth::listing::{Listing, SourceBatch};
use crate::error::ApiError;
use crate::routes::extract::{Path, Query};
use crate::routes::read_body;
use crate::state::AppState;

/// Largest request body of the queue API; each message is also held to the engine's limit.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
const DEFAULT_PULL_MAX: usize = 10;
const DEFAULT_LEASE_MS: u64 = 30_000;
const DEFAULT_DLQ_LIMIT: usize = 100;
const MAX_DLQ_LIMIT: usize = 1000;
/// How long a subscription's pull waits before looking again (and checking for shutdown).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);

pub fn router() -> Router<AppState> {
    let base = "/v1/queues/{ns}/{queue}";
    Router::new()
        .route("/v1/queues/{ns}", get(list_queues))
        .route(base, get(info).put(configure))
        .route(&format!("{base}/messages"), post(publish))
        .route(&format!("{base}/pull"), post(pull))
        .route(&format!("{base}/ack"), post(ack))
        .route(&format!("{base}/nack"), post(nack))
        .route(&format!("{base}/dlq"), get(dead_letters))
        .route(&format!("{base}/dlq/replay"), post(replay))
        .route(&format!("{base}/dlq/purge"), post(purge))
        .route(&format!("{base}/subscribe"), get(subscribe))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    after: Option<String>,
    limit: Option<usize>,
}

const DEFAULT_QUEUE_PAGE: usize = 100;
const MAX_QUEUE_PAGE: usize = 1000;

/// The namespace's queues the caller may read, by name, with their depth; paged through the
/// shared listing rules, so a cursor never names a queue the caller may not read.
async fn list_queues(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    let limit = crate::routes::page_limit(params.limit, DEFAULT_QUEUE_PAGE, MAX_QUEUE_PAGE)?;
    let listing = Listing::new(
        &authorizer,
        &state.cursors,
        Service::Queue,
        "queues",
        "",
        None,
        limit,
    )?;
    let start = listing.start(params.after.as_deref())?;
    let engine = &state.queue;
    let fetch = |after: Option<String>, max: usize| {
        let ns = &ns;
        async move {
            let after = after.as_deref().map(QueueName::parse).transpose()?;
            let names = engine.list(ns, after.as_ref(), max).await?;
            let exhausted = names.len() < max;
            let mut entries = Vec::with_capacity(names.len());
            for queue in names {
                // Deleted between the listing and the read: not listed.
                if let Some(info) = engine.info(ns, &queue).await? {
                    let name = queue.as_str().to_owned();
                    let summary = QueueSummary {
                        queue: name.clone(),
                        messages: info.messages,
                    };
                    entries.push((name, summary));
                }
            }
            Ok(SourceBatch { exhausted, entries })
        }
    };
    let page = listing
        .run(start, fetch, |name, _| {
            authorizer.allows(Action::Read, Resource::new(Service::Queue, name))
        })
        .await?;
    Ok(Json(Page {
        items: page.items,
        next: page.next,
    })
    .into_response())
}

/// Parses the queue name, checks `actions` on `queue:{queue}` and returns the engine.
fn authorize(
    state: &AppState,
    authorizer: &Authorizer,
    queue: &str,
    actions: &[Action],
) -> Result<(Arc<dyn Queue>, Namespace, QueueName), ApiError> {
    let queue = QueueName::parse(queue)?;
    for action in actions {
        authorizer.require(*action, Resource::new(Service::Queue, queue.as_str()))?;
    }
    Ok((state.queue.clone(), authorizer.namespace().clone(), queue))
}

/// Reads and parses a JSON request body (413 beyond [`MAX_REQUEST_BYTES`], 400 when invalid).
async fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = read_body(body, MAX_REQUEST_BYTES, "the request").await?;
    json_object(&bytes)
}

/// A request body that must be a JSON object (an empty body is `{}`).
fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    let value: Value = serde_json::from_slice(text)
        .map_err(|error| ApiError::invalid(format!("invalid body: {error}")))?;
    // serde would read a struct from an array of its fields too (`[]` for all defaults).
    if !value.is_object() {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|error| ApiError::invalid(format!("invalid body: {error}")))
}

fn group_of(name: Option<&str>) -> Result<GroupName, ApiError> {
    Ok(name.map(GroupName::parse).transpose()?.unwrap_or_default())
}

// ---- configuration ----

/// `{"max_deliver": 5, "retention": {"max_age_s": ..., "max_messages": ...},
/// "emit_events": false, "dedup_window_s": 120}`; every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    #[serde(default = "default_max_deliver")]
    max_deliver: u32,
    #[serde(default)]
    retention: RetentionBody,
    #[serde(default)]
    emit_events: bool,
    #[serde(default = "default_dedup_window")]
    dedup_window_s: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionBody {
    max_age_s: Option<u64>,
    max_messages: Option<u64>,
}

fn default_max_deliver() -> u32 {
    QueueConfig::default().max_deliver
}

fn default_dedup_window() -> u64 {
    QueueConfig::default().dedup_window.as_secs()
}

/// Parses a queue configuration body as `PUT /v1/queues/{ns}/{queue}` does (an empty body is
/// `{}`); the engine then runs [`QueueConfig::validate`]. Public for the fuzz harness.
#[doc(hidden)]
pub fn parse_config(body: &[u8]) -> Result<QueueConfig, ApiError> {
    json_object::<ConfigBody>(body).map(QueueConfig::from)
}

/// The JSON document a stored configuration is shown as. Public for the fuzz harness.
#[doc(hidden)]
pub fn config_document(config: &QueueConfig) -> QueueConfigDocument {
    QueueConfigDocument {
        max_deliver: config.max_deliver,
        retention: RetentionDocument {
            max_age_s: config.retention.max_age.map(|age| age.as_secs()),
            max_messages: config.retention.max_messages,
        },
        emit_events: config.events == EventEmission::On,
        dedup_window_s: config.dedup_window.as_secs(),
    }
}

impl From<ConfigBody> for QueueConfig {
    fn from(body: ConfigBody) -> Self {
        QueueConfig {
            max_deliver: body.max_deliver,
            retention: Retention {
                max_age: body.retention.max_age_s.map(Duration::from_secs),
                max_messages: body.retention.max_messages,
            },
            events: if body.emit_events {
                EventEmission::On
            } else {
                EventEmission::Off
            },
            dedup_window: Duration::from_secs(body.dedup_window_s),
        }
    }
}

async fn configure(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Write])?;
    let bytes = read_body(body, MAX_REQUEST_BYTES, "the request").await?;
    let stored = engine.configure(&ns, &queue, parse_config(&bytes)?).await?;
    Ok(Json(QueueConfigured {
        queue: queue.as_str().to_owned(),
        config: config_document(&stored),
    })
    .into_response())
}

async fn info(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Read])?;
    let info = engine
        .info(&ns, &queue)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("queue {:?} not found", queue.as_str())))?;
    let groups = info
        .groups
        .iter()
        .map(|g| GroupInfo {
            name: g.name.as_str().to_owned(),
            pending: g.pending,
            dead: g.dead,
        })
        .collect();
    Ok(Json(QueueInfo {
        queue: queue.as_str().to_owned(),
        config: config_document(&info.config),
        messages: info.messages,
        groups,
    })
    .into_response())
}

// ---- publishing ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    messages: Vec<MessageBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    body: Value,
    key: Option<String>,
    #[serde(default)]
    delay_ms: u64,
    dedup_id: Option<String>,
}

async fn publish(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Write])?;
    let body: PublishBody = json_body(body).await?;
    let messages = body
        .messages
        .into_iter()
        .map(|m| NewMessage {
            body: Bytes::from(m.body.to_string()),
            key: m.key,
            delay: Duration::from_millis(m.delay_ms),
            dedup_id: m.dedup_id,
        })
        .collect();
    let ids = engine.publish(&ns, &queue, messages).await?;
    let ids = ids.iter().map(MessageId::to_string).collect();
    Ok(Json(Published { ids }).into_response())
}

// ---- consuming ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullBody {
    max: Option<usize>,
    #[serde(default)]
    wait_ms: u64,
    lease_ms: Option<u64>,
    group: Option<String>,
}

/// A delivery as JSON: `{"id", "receipt", "body", "attempt", "key"}`.
fn pulled_message(delivery: &Delivery) -> PulledMessage {
    PulledMessage {
        id: delivery.id.to_string(),
        receipt: delivery.receipt.as_str().to_owned(),
        body: body_json(&delivery.body),
        attempt: delivery.attempt,
        key: delivery.key.clone(),
    }
}

/// A stored body as JSON: the API stores JSON text, other publishers may not.
fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn pull(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Read])?;
    let body: PullBody = json_body(body).await?;
    let request = PullRequest {
        group: group_of(body.group.as_deref())?,
        max: body.max.unwrap_or(DEFAULT_PULL_MAX),
        wait: Duration::from_millis(body.wait_ms),
        lease: Duration::from_millis(body.lease_ms.unwrap_or(DEFAULT_LEASE_MS)),
    };
    // A long poll must not hold shutdown up: it answers empty when draining begins.
    let deliveries = tokio::select! {
        result = engine.pull(&ns, &queue, &request) => result?,
        _ = state.shutdown_signal() => Vec::new(),
    };
    let messages = deliveries.iter().map(pulled_message).collect();
    Ok(Json(Pulled { messages }).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    receipts: Vec<String>,
    #[serde(default)]
    delay_ms: u64,
    error: Option<String>,
}

fn stale_receipts(stale: &[Receipt]) -> Vec<String> {
    stale.iter().map(|r| r.as_str().to_owned()).collect()
}

async fn ack(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Write])?;
    let body: SettleBody = json_body(body).await?;
    if body.delay_ms != 0 || body.error.is_some() {
        return Err(ApiError::invalid(
            "delay_ms and error belong to nack, not ack",
        ));
    }
    let receipts: Vec<Receipt> = body.receipts.into_iter().map(Receipt::from_text).collect();
    let outcome = engine.ack(&ns, &queue, &receipts).await?;
    Ok(Json(Acked {
        acked: outcome.settled,
        stale: stale_receipts(&outcome.stale),
    })
    .into_response())
}

async fn nack(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Write])?;
    let body: SettleBody = json_body(body).await?;
    let receipts: Vec<Receipt> = body.receipts.into_iter().map(Receipt::from_text).collect();
    let nack = Nack {
        delay: Duration::from_millis(body.delay_ms),
        error: body.error,
    };
    let outcome = engine.nack(&ns, &queue, &receipts, &nack).await?;
    Ok(Json(Nacked {
        nacked: outcome.settled,
        stale: stale_receipts(&outcome.stale),
    })
    .into_response())
}

// ---- dead letters ----

#[derive(Debug, Deserialize)]
struct DeadLetterParams {
    group: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn dead_letters(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    Query(params): Query<DeadLetterParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Read])?;
    let group = group_of(params.group.as_deref())?;
    let after = params.after.as_deref().map(MessageId::parse).transpose()?;
    let limit = crate::routes::page_limit(params.limit, DEFAULT_DLQ_LIMIT, MAX_DLQ_LIMIT)?;
    let page = engine
        .dead_letters(&ns, &queue, &group, after, limit)
        .await?;
    let messages = page
        .messages
        .iter()
        .map(|dead| QueueDeadLetter {
            id: dead.id.to_string(),
            body: body_json(&dead.body),
            attempts: dead.attempts,
            last_error: dead.last_error.clone(),
            key: dead.key.clone(),
            dead_at: ferrobase_core::event::rfc3339_millis(dead.dead_at_ms),
        })
        .collect();
    let next = page.next.map(|id| id.to_string());
    Ok(Json(QueueDeadLetterPage { messages, next }).into_response())
}

/// `{"group": "default", "ids": ["12", ...]}`; without `ids`, every dead letter of the group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterBody {
    group: Option<String>,
    ids: Option<Vec<String>>,
}

impl DeadLetterBody {
    fn selection(&self) -> Result<(GroupName, DeadLetterSelection), ApiError> {
        let selection = match &self.ids {
            None => DeadLetterSelection::All,
            Some(ids) => DeadLetterSelection::Ids(
                ids.iter()
                    .map(|id| MessageId::parse(id))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok((group_of(self.group.as_deref())?, selection))
    }
}

async fn replay(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Write])?;
    let (group, selection) = json_body::<DeadLetterBody>(body).await?.selection()?;
    let replayed = engine
        .replay_dead_letters(&ns, &queue, &group, &selection)
        .await?;
    Ok(Json(DeadLettersReplayed { replayed }).into_response())
}

async fn purge(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    authorizer: Authorizer,
    body: Body,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) = authorize(&state, &authorizer, &queue, &[Action::Write])?;
    let (group, selection) = json_body::<DeadLetterBody>(body).await?.selection()?;
    let purged = engine
        .purge_dead_letters(&ns, &queue, &group, &selection)
        .await?;
    Ok(Json(DeadLettersPurged { purged }).into_response())
}

// ---- the browser subscription ----

#[derive(Debug, Deserialize)]
struct SubscribeParams {
    group: Option<String>,
    max: Option<usize>,
    lease_ms: Option<u64>,
}

/// Streams messages as Server-Sent Events (`event: message`, `id` = message id, `data` = the
/// delivery as JSON). Each pulled batch is acked once all of it was handed to the connection,
/// before the next pull; a batch cut off by a disconnect is redelivered when its lease ends.
async fn subscribe(
    State(state): State<AppState>,
    Path((_, queue)): Path<(String, String)>,
    Query(params): Query<SubscribeParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let (engine, ns, queue) =
        authorize(&state, &authorizer, &queue, &[Action::Read, Action::Write])?;
    let request = PullRequest {
        group: group_of(params.group.as_deref())?,
        max: params.max.unwrap_or(DEFAULT_PULL_MAX),
        wait: SUBSCRIBE_WAIT,
        lease: Duration::from_millis(params.lease_ms.unwrap_or(DEFAULT_LEASE_MS)),
    };
    // Surface a bad request or an unknown queue as an error answer, not as an empty stream.
    engine
        .info(&ns, &queue)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("queue {:?} not found", queue.as_str())))?;
    let probe = PullRequest {
        wait: Duration::ZERO,
        ..request.clone()
    };
    let first = engine.pull(&ns, &queue, &probe).await?;
    let stream = subscription(state, engine, ns, queue, request, first);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn subscription(
    state: AppState,
    engine: Arc<dyn Queue>,
    ns: Namespace,
    queue: QueueName,
    request: PullRequest,
    first: Vec<Delivery>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct Cursor {
        state: AppState,
        engine: Arc<dyn Queue>,
        ns: Namespace,
        queue: QueueName,
        request: PullRequest,
        ready: VecDeque<Delivery>,
        sent: Vec<Receipt>,
    }
    let cursor = Cursor {
        state,
        engine,
        ns,
        queue,
        request,
        ready: first.into(),
        sent: Vec::new(),
    };
    futures::stream::unfold(cursor, |mut cursor| async move {
        loop {
            if let Some(delivery) = cursor.ready.pop_front() {
                cursor.sent.push(delivery.receipt.clone());
                let event = SseEvent::default()
                    .event("message")
                    .id(delivery.id.to_string())
                    .data(serde_json::to_string(&pulled_message(&delivery)).unwrap_or_default());
                return Some((Ok(event), cursor));
            }
            // The whole batch went out: ack it before asking for more.
            if !cursor.sent.is_empty() {
                let sent = std::mem::take(&mut cursor.sent);
                if let Err(error) = cursor.engine.ack(&cursor.ns, &cursor.queue, &sent).await {
                    tracing::warn!(%error, "queue subscription ends: ack failed");
                    return None;
                }
            }
            if cursor.state.is_draining() {
                return None;
            }
            let pulled = tokio::select! {
                result = cursor.engine.pull(&cursor.ns, &cursor.queue, &cursor.request) => result,
                _ = cursor.state.shutdown_signal() => return None,
            };
            match pulled {
                Ok(deliveries) => cursor.ready.extend(deliveries),
                Err(error) => {
                    tracing::warn!(%error, "queue subscription ends: pull failed");
                    return None;
                }
            }
        }
    })
}
