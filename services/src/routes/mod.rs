//! The HTTP API: one router function per area, composed here with the cross-cutting layers
//! (metrics, tracing, CORS).

pub mod auth;
pub mod events;
pub mod extract;
pub mod functions;
pub mod kv;
pub mod ops;
pub mod policies;
pub mod queue;
pub mod storage;
pub mod triggers;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::config::CorsConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The whole HTTP API.
pub fn router(state: AppState, cors: &CorsConfig) -> anyhow::Result<Router> {
    let api = Router::new()
        .merge(ops::router())
        .merge(kv::router())
        .merge(auth::router())
        .merge(events::router())
        .merge(policies::router())
        .merge(storage::router())
        .merge(functions::router())
        .merge(triggers::router())
        .merge(queue::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ferrobase_core::ErrorCode::InvalidArgument,
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    Ok(match cors_layer(cors)? {
        Some(cors) => api.layer(cors),
        None => api,
    })
}

fn cors_layer(cors: &CorsConfig) -> anyhow::Result<Option<CorsLayer>> {
    if cors.allowed_origins.is_empty() {
        return Ok(None);
    }
    let origins = if cors.allowed_origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let values = cors
            .allowed_origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin)
                    .map_err(|_| anyhow::anyhow!("invalid CORS origin {origin:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::POST,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::ETAG]),
    ))
}

/// Parses a namespace from a path segment, as a 400 when invalid.
/// The page size a listing asked for: `default` when absent, refused outside 1..=`max` with
/// the bound in the message. Every listing route reads `limit` through this.
pub(crate) fn page_limit(
    asked: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let limit = asked.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

pub(crate) fn parse_ns(raw: &str) -> Result<ferrobase_core::Namespace, ApiError> {
    ferrobase_core::Namespace::parse(raw).map_err(|error| ApiError::invalid(error.to_string()))
}

/// Reads a request body of at most `limit` bytes, answering 413 beyond it.
pub(crate) async fn read_body(
    body: axum::body::Body,
    limit: usize,
    what: &str,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ferrobase_core::ErrorCode::TooLarge,
            format!("{what} exceeds the limit of {limit} bytes"),
        )
    };
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
            while let Some(current) = source {
                if current.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = current.source();
            }
            Err(ApiError::invalid(format!(
                "cannot read the request body: {error}"
            )))
        }
    }
}
