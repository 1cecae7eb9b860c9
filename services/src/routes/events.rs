//! The change-log API: `GET /v1/events/{ns}?after=&limit=&type=` pages through a namespace's
//! log; `GET /v1/events/{ns}/stream?after=` streams it as Server-Sent Events.
//!
//! The stream sends each event with its offset as the SSE `id`, so a browser's `EventSource`
//! reconnects with `Last-Event-ID` and resumes exactly after the last event it saw.
//!
//! Both routes need a token whose scopes cover `events:read`; each event is then shown only
//! when the caller may read the resource it is about (`kv:` and `storage:` events need read on
//! the key or object, by policy for `user` tokens and by scope for scoped tokens).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ferrobase_core::policy::{Action, Resource, Service};
use ferrobase_core::wire::EventPage;
use ferrobase_core::{Event, EventQuery, EventType, Namespace};
use futures::Stream;
use serde::Deserialize;

use crate::auth::Authorizer;
use crate::error::ApiError;
use crate::routes::extract::Query;
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Events fetched per read while streaming.
const STREAM_BATCH: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{ns}", get(list_events))
        .route("/v1/events/{ns}/stream", get(stream_events))
}

#[derive(Debug, Deserialize)]
struct EventParams {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    #[serde(rename = "type")]
    type_filter: Option<String>,
}

/// The resource an event is about, for filtering what `user` tokens see.
fn resource_of(event: &Event) -> Resource<'_> {
    let service = match event.event_type {
        EventType::KvPut | EventType::KvDelete | EventType::KvExpire => Service::Kv,
        EventType::StorageObjectCreated | EventType::StorageObjectDeleted => Service::Storage,
        EventType::QueueMessage => Service::Queue,
        EventType::CronTick | EventType::TriggerFired | EventType::FunctionCompleted => {
            Service::Events
        }
        // Account events carry emails and one-time codes: only tokens that manage accounts
        // (admin and service tokens whose scopes cover `auth:read`) see them.
        EventType::AuthUserCreated
        | EventType::AuthUserUpdated
        | EventType::AuthUserDeleted
        | EventType::AuthSignedIn
        | EventType::AuthTokenRefreshed
        | EventType::AuthSessionRevoked
        | EventType::AuthVerificationRequested
        | EventType::AuthPasswordResetRequested
        | EventType::AuthConfigUpdated
        | EventType::AuthKeyRotated => Service::Auth,
    };
    Resource::new(service, &event.subject)
}

fn validate_type_filter(filter: &Option<String>) -> Result<(), ApiError> {
    match filter {
        Some(filter) if !filter.starts_with("ferrobase.") => Err(ApiError::invalid(
            "type must be an event type such as ferrobase.kv.put, or a prefix ending in '.'",
        )),
        _ => Ok(()),
    }
}

async fn list_events(
    State(state): State<AppState>,
    Query(params): Query<EventParams>,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require_scope(Service::Events, Action::Read)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    validate_type_filter(&params.type_filter)?;
    let query = EventQuery {
        after: params.after,
        limit,
        type_filter: params.type_filter,
    };
    let page = state.changelog.read(&ns, &query).await?;
    let events: Vec<Event> = page
        .events
        .into_iter()
        .filter(|event| authorizer.allows(Action::Read, resource_of(event)))
        .collect();
    Ok(Json(EventPage {
        events,
        next_after: page.next_after,
    })
    .into_response())
}

async fn stream_events(
    State(state): State<AppState>,
    Query(params): Query<EventParams>,
    headers: HeaderMap,
    authorizer: Authorizer,
) -> Result<Response, ApiError> {
    let ns = authorizer.namespace().clone();
    authorizer.require_scope(Service::Events, Action::Read)?;
    validate_type_filter(&params.type_filter)?;
    // A reconnecting EventSource says where it got to; that wins over the original `after`.
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event offset"))?,
        None => params.after,
    };
    let stream = event_stream(state, ns, authorizer, after, params.type_filter);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Pages through the log from `after`, then waits for appends; ends when the server shuts down
/// or the log fails.
fn event_stream(
    state: AppState,
    ns: Namespace,
    authorizer: Authorizer,
    after: u64,
    type_filter: Option<String>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct Cursor {
        state: AppState,
        ns: Namespace,
        authorizer: Authorizer,
        query: EventQuery,
        ready: std::collections::VecDeque<SseEvent>,
    }
    let cursor = Cursor {
        state,
        ns,
        authorizer,
        query: EventQuery {
            after,
            limit: STREAM_BATCH,
            type_filter,
        },
        ready: Default::default(),
    };
    futures::stream::unfold(cursor, |mut cursor| async move {
        loop {
            if let Some(event) = cursor.ready.pop_front() {
                return Some((Ok(event), cursor));
            }
            if cursor.state.is_draining() {
                return None;
            }
            let page = match cursor.state.changelog.read(&cursor.ns, &cursor.query).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, ns = %cursor.ns, "event stream ends: log unreadable");
                    return None;
                }
            };
            let scanned_any = page.next_after > cursor.query.after;
            cursor.query.after = page.next_after;
            for event in page.events {
                if !cursor.authorizer.allows(Action::Read, resource_of(&event)) {
                    continue;
                }
                let data = serde_json::to_string(&event).expect("events serialise");
                cursor.ready.push_back(
                    SseEvent::default()
                        .id(event.ferrobaseseq.to_string())
                        .data(data),
                );
            }
            if !scanned_any {
                let wait = cursor
                    .state
                    .changelog
                    .wait_beyond(&cursor.ns, cursor.query.after);
                tokio::select! {
                    _ = wait => {}
                    _ = cursor.state.shutdown_signal() => return None,
                }
            }
        }
    })
}
