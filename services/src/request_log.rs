//! One log line per API request, and the request id that ties it to everything else logged
//! while the request ran.
//!
//! [`log`] takes the caller's `x-request-id` when it is a sane token (so a proxy's id carries
//! through) or makes one, runs the request inside a `request` span holding that id, returns it
//! in the `x-request-id` response header, and logs method, matched route, status, latency and
//! namespace at info once the response head is ready (a streamed body may still be flowing).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header a request id arrives and leaves in.
pub const REQUEST_ID: &str = "x-request-id";

/// An incoming id longer than this is replaced rather than logged.
const MAX_ID_LEN: usize = 128;

/// The request-log middleware (see the module docs).
pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let ns = route
        .as_deref()
        .and_then(|route| namespace(route, request.uri().path()))
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let route = route.as_deref().unwrap_or("unmatched");
    if response.status().is_server_error() {
        tracing::warn!(%method, route = %route, status, latency_ms, request_id = %id, ns = %ns, "request");
    } else {
        tracing::info!(%method, route = %route, status, latency_ms, request_id = %id, ns = %ns, "request");
    }
    response
}

/// Letters, digits and `-_.:` only, so that an id can go into a header and a log line as is.
fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
}

/// The path segment standing where the matched route has `{ns}`.
fn namespace<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    let position = route.split('/').position(|segment| segment == "{ns}")?;
    path.split('/').nth(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_id_is_kept_only_when_it_is_a_plain_token() {
        assert!(is_sane("01HZX3-abc_def.1:2"));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane("new\nline"));
        assert!(!is_sane(&"a".repeat(MAX_ID_LEN + 1)));
    }

    #[test]
    fn the_namespace_is_read_where_the_route_has_it() {
        assert_eq!(
            namespace("/v1/kv/{ns}/{*key}", "/v1/kv/shop/a/b"),
            Some("shop")
        );
        assert_eq!(namespace("/v1/health", "/v1/health"), None);
    }
}
