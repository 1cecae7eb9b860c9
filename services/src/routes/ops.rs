//! Operations endpoints: liveness, readiness and metrics. Unauthenticated, as probes and
//! scrapers expect.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use ferrobase_core::Namespace;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// The engines answer and the server is not shutting down.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match state.changelog.head(&Namespace::system()).await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let retained = state.changelog.retained().await.unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot count change-log events");
        0
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        {
            let mut text = state.metrics.render(retained);
            crate::metrics::append_function_metrics(&mut text, &state.functions);
            crate::metrics::append_trigger_metrics(&mut text, state.triggers.stats());
            text
        },
    )
}
