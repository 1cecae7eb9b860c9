//! Authentication (every 401) and namespace isolation between tokens (403s).

use axum::body::Body;
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferrobase_core::auth::Role;
use http_body_util::BodyExt as _;
use serde_json::json;

use crate::harness::{SECRET, TestApp, TokenSpec, unix_now, verifier_with_secret};

// ---- 401: no valid token ----

/// Signs an arbitrary JSON payload with the server's secret, bypassing the typed claims.
fn sign_raw(payload: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        payload,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let app = TestApp::new().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_verifier = verifier_with_secret("another-secret-of-at-least-32-bytes!!", &other_dir);
    let spec = TokenSpec::new(Role::Service, Some("shop"));
    let valid_claims = spec.claims();
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid_claims).unwrap()),
    );
    let exp = unix_now() + 3600;
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        (
            "basic scheme",
            Some(format!("Basic {}", URL_SAFE_NO_PAD.encode("a:b"))),
        ),
        ("bare token without scheme", Some(app.service("shop"))),
        ("malformed token", Some("Bearer not.a.jwt".to_owned())),
        ("empty token", Some("Bearer ".to_owned())),
        (
            "expired token",
            Some(format!(
                "Bearer {}",
                app.mint(spec.clone().exp(unix_now() - 3600))
            )),
        ),
        (
            "signed with another secret",
            Some(format!(
                "Bearer {}",
                other_verifier.mint(&valid_claims).unwrap()
            )),
        ),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        (
            "unknown role",
            Some(format!(
                "Bearer {}",
                sign_raw(&json!({"sub": "x", "exp": exp, "ns": "shop", "role": "root"}))
            )),
        ),
        (
            "reserved namespace",
            Some(format!(
                "Bearer {}",
                sign_raw(&json!({"sub": "x", "exp": exp, "ns": "_system", "role": "admin"}))
            )),
        ),
        (
            "no expiry",
            Some(format!(
                "Bearer {}",
                sign_raw(&json!({"sub": "x", "ns": "shop", "role": "service"}))
            )),
        ),
    ];
    for (what, authorization) in cases {
        for (method, uri) in [
            (Method::GET, "/v1/kv/shop/k"),
            (Method::PUT, "/v1/kv/shop/k"),
            (Method::GET, "/v1/kv/shop"),
            (Method::POST, "/v1/kv/shop/_txn"),
            (Method::GET, "/v1/events/shop"),
            (Method::GET, "/v1/policies/shop"),
        ] {
            let mut call = app.request(method.clone(), uri);
            if let Some(value) = &authorization {
                call = call.header("authorization", value);
            }
            let resp = call.body(r#"{"ops":[{"op":"delete","key":"k"}]}"#).await;
            assert_eq!(
                resp.status,
                StatusCode::UNAUTHORIZED,
                "{what}, {method} {uri}"
            );
            resp.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
        }
    }
    app.assert_untouched("shop").await;
}

#[tokio::test]
async fn the_scheme_is_case_insensitive_and_get_accepts_a_query_token() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    app.put_value("shop", "k", "v").await;
    let resp = app
        .get("/v1/kv/shop/k")
        .header("authorization", &format!("bearer {token}"))
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    // Browsers' EventSource cannot set headers, so GETs may carry the token in the query.
    let resp = app
        .get(&format!("/v1/events/shop?access_token={token}"))
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    // Never for writes.
    app.put(&format!("/v1/kv/shop/k?access_token={token}"))
        .body("w")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(app.value_of("shop", "k").await.as_deref(), Some(&b"v"[..]));
}

// ---- 403: namespace isolation ----

/// Every namespaced route, as `(method, uri, body)`.
fn routes_of(ns: &str) -> Vec<(Method, String, &'static str)> {
    vec![
        (Method::GET, format!("/v1/kv/{ns}/k"), ""),
        (Method::HEAD, format!("/v1/kv/{ns}/k"), ""),
        (Method::PUT, format!("/v1/kv/{ns}/k"), "intruder"),
        (Method::DELETE, format!("/v1/kv/{ns}/k"), ""),
        (Method::GET, format!("/v1/kv/{ns}"), ""),
        (
            Method::POST,
            format!("/v1/kv/{ns}/_txn"),
            r#"{"ops":[{"op":"put","key":"k","value":"intruder"}]}"#,
        ),
        (Method::GET, format!("/v1/events/{ns}"), ""),
        (Method::GET, format!("/v1/events/{ns}/stream"), ""),
        (Method::GET, format!("/v1/policies/{ns}"), ""),
        (
            Method::PUT,
            format!("/v1/policies/{ns}"),
            r#"{"rules":[{"actions":["read"],"resources":["kv:**"]}]}"#,
        ),
    ]
}

#[tokio::test]
async fn tokens_for_one_namespace_cannot_reach_another() {
    let app = TestApp::new().await;
    app.put_value("b", "k", "owned by b").await;
    let before = app.events("b").await;

    let tokens = [
        ("service for a", app.service("a")),
        (
            "admin for a",
            app.mint(TokenSpec::new(Role::Admin, Some("a"))),
        ),
        ("user of a", app.user("a", "alice")),
        (
            "service without ns",
            app.mint(TokenSpec::new(Role::Service, None)),
        ),
        (
            "user without ns",
            app.mint(TokenSpec::new(Role::User, None)),
        ),
    ];
    for (who, token) in &tokens {
        for (method, uri, body) in routes_of("b") {
            let resp = app
                .request(method.clone(), &uri)
                .token(token)
                .body(body)
                .await;
            if method == Method::HEAD {
                assert_eq!(resp.status, StatusCode::FORBIDDEN, "{who}: HEAD {uri}");
                continue;
            }
            assert_eq!(
                resp.status,
                StatusCode::FORBIDDEN,
                "{who}: {method} {uri}: {resp:?}"
            );
            resp.assert_error(StatusCode::FORBIDDEN, "permission_denied");
        }
    }
    assert_eq!(
        app.value_of("b", "k").await.as_deref(),
        Some(&b"owned by b"[..])
    );
    assert_eq!(app.events("b").await, before);
    let resp = app.get("/v1/policies/b").token(&app.admin()).send().await;
    resp.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn an_admin_without_namespace_reaches_every_namespace() {
    let app = TestApp::new().await;
    let admin = app.admin();
    // In the order of `routes_of`: the key and the policy do not exist until written.
    let expected = [
        StatusCode::NOT_FOUND,
        StatusCode::NOT_FOUND,
        StatusCode::OK,
        StatusCode::NO_CONTENT,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::NOT_FOUND,
        StatusCode::OK,
    ];
    for ns in ["a", "b"] {
        for ((method, uri, body), status) in routes_of(ns).into_iter().zip(expected) {
            let request = app.request(method.clone(), &uri).token(&admin);
            let status_seen = if uri.ends_with("/stream") {
                // The stream never ends: look at its head only.
                let body = Body::from(body);
                app.send_raw(request.build(body)).await.status()
            } else {
                request.body(body).await.status
            };
            assert_eq!(status_seen, status, "{method} {uri}");
        }
        assert_eq!(
            app.events(ns).await.len(),
            3,
            "put, delete, txn put in {ns}"
        );
    }
}

#[tokio::test]
async fn the_same_key_in_two_namespaces_is_two_keys() {
    let app = TestApp::new().await;
    let (a, b) = (app.service("a"), app.service("b"));
    let resp = app.put("/v1/kv/a/config").token(&a).body("for a").await;
    assert_eq!(resp.json()["version"], 1);
    let resp = app.put("/v1/kv/b/config").token(&b).body("for b").await;
    assert_eq!(resp.json()["version"], 1, "versions are per namespace");

    let resp = app.get("/v1/kv/a/config").token(&a).send().await;
    assert_eq!(resp.text(), "for a");
    let resp = app.delete("/v1/kv/b/config").token(&b).send().await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    let resp = app.get("/v1/kv/a/config").token(&a).send().await;
    assert_eq!(resp.text(), "for a", "deleting in b left a alone");

    let subjects = |events: Vec<serde_json::Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{} {}", e["source"], e["type"]))
            .collect()
    };
    assert_eq!(
        subjects(app.events("a").await),
        [r#""/ns/a/kv" "ferrobase.kv.put""#]
    );
    assert_eq!(
        subjects(app.events("b").await),
        [
            r#""/ns/b/kv" "ferrobase.kv.put""#,
            r#""/ns/b/kv" "ferrobase.kv.delete""#
        ]
    );
}

#[tokio::test]
async fn the_event_stream_sends_the_log_and_resumes_after_last_event_id() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    for key in ["a", "b", "c"] {
        app.put_value("shop", key, "v").await;
    }

    let first_data = |last_event_id: Option<&'static str>| {
        let app = &app;
        let token = token.clone();
        async move {
            let mut call = app.get("/v1/events/shop/stream").token(&token);
            if let Some(id) = last_event_id {
                call = call.header("last-event-id", id);
            }
            let response = app.send_raw(call.build(Body::empty())).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()["content-type"].to_str().unwrap(),
                "text/event-stream"
            );
            let mut body = response.into_body();
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
                .await
                .expect("an event within 5 s")
                .expect("a frame")
                .expect("no body error");
            String::from_utf8(frame.into_data().expect("data frame").to_vec()).unwrap()
        }
    };
    let first = first_data(None).await;
    assert!(first.contains("id: 1\n"), "{first}");
    assert!(first.contains(r#""subject":"a""#), "{first}");
    let resumed = first_data(Some("2")).await;
    assert!(resumed.contains("id: 3\n"), "{resumed}");
    assert!(resumed.contains(r#""subject":"c""#), "{resumed}");

    let resp = app
        .get("/v1/events/shop/stream")
        .token(&token)
        .header("last-event-id", "yesterday")
        .send()
        .await;
    resp.assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
}

// ---- scopes ----

#[tokio::test]
async fn scopes_narrow_what_a_token_may_do() {
    let app = TestApp::new().await;
    app.put_value("shop", "k", "v").await;
    let read_only = app.mint(TokenSpec::new(Role::Service, Some("shop")).scopes(&["kv:read"]));

    let resp = app.get("/v1/kv/shop/k").token(&read_only).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    let resp = app.get("/v1/kv/shop").token(&read_only).send().await;
    assert_eq!(resp.json()["items"].as_array().unwrap().len(), 1);

    app.put("/v1/kv/shop/k")
        .token(&read_only)
        .body("w")
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.put("/v1/kv/shop/new")
        .token(&read_only)
        .body("w")
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.delete("/v1/kv/shop/k")
        .token(&read_only)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.post("/v1/kv/shop/_txn")
        .token(&read_only)
        .json(&json!({"ops": [{"op": "delete", "key": "k"}]}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");

    // A scope for another service grants nothing here.
    let storage_only = app.mint(TokenSpec::new(Role::Service, Some("shop")).scopes(&["storage:*"]));
    app.get("/v1/kv/shop/k")
        .token(&storage_only)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");

    let writer = app.mint(TokenSpec::new(Role::Service, Some("shop")).scopes(&["kv:*"]));
    let resp = app.put("/v1/kv/shop/k").token(&writer).body("w2").await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");

    assert_eq!(app.value_of("shop", "k").await.as_deref(), Some(&b"w2"[..]));
    assert_eq!(app.value_of("shop", "new").await, None);
    assert_eq!(app.events("shop").await.len(), 2);
}
