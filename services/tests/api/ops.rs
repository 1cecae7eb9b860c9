//! Operations endpoints, CORS, and the answers to requests no handler takes.

use axum::http::{Method, StatusCode};
use ferrobase::config::CorsConfig;

use crate::harness::TestApp;

// ---- health and metrics ----

#[tokio::test]
async fn probes_answer_without_a_token() {
    let app = TestApp::new().await;
    let resp = app.get("/healthz").send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), "ok");
    let resp = app.get("/readyz").send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), "ready");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_kv_operations() {
    let app = TestApp::new().await;
    app.put_value("shop", "a", "1").await;
    app.put_value("shop", "b", "2").await;
    let resp = app
        .get("/v1/kv/shop/missing")
        .token(&app.admin())
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);

    let resp = app.get("/metrics").send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.header("content-type")
            .is_some_and(|v| v.starts_with("application/openmetrics-text")),
        "{resp:?}"
    );
    let text = resp.text();
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        r#"ferrobase_http_requests_total{method="PUT",route="/v1/kv/{ns}/{*key}",status="200"} 2"#,
        r#"ferrobase_http_requests_total{method="GET",route="/v1/kv/{ns}/{*key}",status="404"} 1"#,
        r#"ferrobase_kv_operations_total{op="put"} 2"#,
        r#"ferrobase_kv_operations_total{op="get"} 1"#,
        "ferrobase_changelog_events 2",
    ] {
        assert!(
            lines.contains(&expected),
            "missing {expected:?} in:\n{text}"
        );
    }
    // Concrete paths never become labels.
    assert!(!text.contains("/v1/kv/shop/"), "{text}");
}

#[tokio::test]
async fn refused_requests_do_not_count_as_kv_operations() {
    let app = TestApp::new().await;
    let resp = app
        .put("/v1/kv/shop/a")
        .token(&app.user("shop", "alice"))
        .body("x")
        .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    let text = app.get("/metrics").send().await.text().to_owned();
    assert!(
        !text.contains(r#"ferrobase_kv_operations_total{op="put"}"#),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l
            == r#"ferrobase_http_requests_total{method="PUT",route="/v1/kv/{ns}/{*key}",status="403"} 1"#),
        "{text}"
    );
}

// ---- requests no handler takes ----

#[tokio::test]
async fn unknown_routes_answer_a_json_404() {
    let app = TestApp::new().await;
    let token = app.admin();
    for uri in ["/", "/v1", "/v1/nosuch/shop", "/v2/kv/shop/k", "/v1/kv"] {
        app.get(uri)
            .token(&token)
            .send()
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    // Also without a token: the route does not exist either way.
    app.get("/v1/nosuch")
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]

async fn malformed_query_parameters_answer_json_errors() {
    let app = TestApp::new().await;
    let token = app.admin();
    app.put_value("shop", "k", "v").await;
    for uri in [
        "/v1/kv/shop/k?ttl=abc",
        "/v1/kv/shop?limit=ten",
        "/v1/events/shop?after=-1",
        "/v1/events/shop?limit=x",
    ] {
        let method = if uri.contains("ttl") {
            Method::PUT
        } else {
            Method::GET
        };
        app.request(method, uri)
            .token(&token)
            .body("x")
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    // A key that is not UTF-8 once percent-decoded.
    app.get("/v1/kv/shop/%FF")
        .token(&token)
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
}

// ---- CORS ----

fn preflight<'a>(app: &'a TestApp, origin: &str) -> crate::harness::Call<'a> {
    app.request(Method::OPTIONS, "/v1/kv/shop/k")
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "authorization,if-match")
}

#[tokio::test]
async fn cors_allows_the_configured_origin_only() {
    let app = TestApp::with_cors(&CorsConfig {
        allowed_origins: vec!["https://app.example".to_owned()],
    })
    .await;
    let resp = preflight(&app, "https://app.example").send().await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let methods = resp
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("PUT"), "{methods}");
    let headers = resp
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("if-match"),
        "{headers}"
    );

    // Actual requests carry the origin and expose the ETag to scripts.
    app.put_value("shop", "k", "v").await;
    let resp = app
        .get("/v1/kv/shop/k")
        .token(&app.admin())
        .header("origin", "https://app.example")
        .send()
        .await;
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = resp
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{resp:?}");

    let resp = preflight(&app, "https://evil.example").send().await;
    assert_eq!(resp.header("access-control-allow-origin"), None, "{resp:?}");
    let resp = app
        .get("/v1/kv/shop/k")
        .token(&app.admin())
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(resp.header("access-control-allow-origin"), None, "{resp:?}");
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = TestApp::new().await;
    let resp = preflight(&app, "https://app.example").send().await;
    assert_eq!(resp.header("access-control-allow-origin"), None, "{resp:?}");
    assert_eq!(
        resp.header("access-control-allow-methods"),
        None,
        "{resp:?}"
    );
    let resp = app
        .get("/healthz")
        .header("origin", "https://app.example")
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("access-control-allow-origin"), None, "{resp:?}");
}
