//! The KV API: single-key operations and their events, conditional writes, TTL, listing and
//! paging, and the limits on keys and values.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{MAX_VALUE, TestApp};

/// The `(type, subject, ferrobaseseq)` of each event.
fn summary(events: &[Value]) -> Vec<(String, String, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().expect("type").to_owned(),
                e["subject"].as_str().expect("subject").to_owned(),
                e["ferrobaseseq"].as_u64().expect("seq"),
            )
        })
        .collect()
}

fn put(key: &str, seq: u64) -> (String, String, u64) {
    ("ferrobase.kv.put".into(), key.into(), seq)
}

fn delete(key: &str, seq: u64) -> (String, String, u64) {
    ("ferrobase.kv.delete".into(), key.into(), seq)
}

// ---- single-key operations and their events ----

#[tokio::test]
async fn put_get_head_delete_and_list() {
    let app = TestApp::new().await;
    let token = app.service("shop");

    let resp = app
        .put("/v1/kv/shop/orders/42")
        .token(&token)
        .header("content-type", "application/json")
        .body(r#"{"total":12}"#)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(resp.json(), &json!({"key": "orders/42", "version": 1}));
    assert_eq!(resp.header("etag"), Some("\"1\""));

    let resp = app.get("/v1/kv/shop/orders/42").token(&token).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), r#"{"total":12}"#);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("etag"), Some("\"1\""));
    assert_eq!(resp.header("x-ferrobase-expires-at"), None);

    // Without a Content-Type the value is stored as bytes.
    let resp = app
        .put("/v1/kv/shop/blob")
        .token(&token)
        .body(vec![0u8, 159, 255])
        .await;
    assert_eq!(resp.json(), &json!({"key": "blob", "version": 2}));
    let resp = app.get("/v1/kv/shop/blob").token(&token).send().await;
    assert_eq!(resp.body, Bytes::from_static(&[0, 159, 255]));
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );

    let resp = app
        .get("/v1/kv/shop/orders/42")
        .token(&token)
        .header("if-none-match", "\"1\"")
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::NOT_MODIFIED);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("etag"), Some("\"1\""));
    // A stale ETag gets the value.
    let resp = app
        .get("/v1/kv/shop/orders/42")
        .token(&token)
        .header("if-none-match", "\"7\"")
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), r#"{"total":12}"#);

    let resp = app
        .request(axum::http::Method::HEAD, "/v1/kv/shop/orders/42")
        .token(&token)
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("etag"), Some("\"1\""));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let resp = app
        .request(axum::http::Method::HEAD, "/v1/kv/shop/missing")
        .token(&token)
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);

    let resp = app.get("/v1/kv/shop").token(&token).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    let items = resp.json()["items"].as_array().expect("items").clone();
    let keys: Vec<(&str, u64, u64, &str)> = items
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap(),
                i["version"].as_u64().unwrap(),
                i["size"].as_u64().unwrap(),
                i["content_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("blob", 2, 3, "application/octet-stream"),
            ("orders/42", 1, 12, "application/json"),
        ]
    );
    assert!(items[0]["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(resp.json()["next"], Value::Null);

    let resp = app
        .delete("/v1/kv/shop/orders/42")
        .token(&token)
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{resp:?}");
    assert!(resp.body.is_empty());
    app.get("/v1/kv/shop/orders/42")
        .token(&token)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/v1/kv/shop/orders/42")
        .token(&token)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let events = app.events("shop").await;
    assert_eq!(
        summary(&events),
        [put("orders/42", 1), put("blob", 2), delete("orders/42", 3)]
    );
    let first = &events[0];
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["source"], "/ns/shop/kv");
    assert_eq!(first["datacontenttype"], "application/json");
    assert_eq!(first["data"]["key"], "orders/42");
    assert_eq!(first["data"]["version"], 1);
    assert_eq!(first["data"]["size"], 12);
    assert_eq!(events[2]["data"]["previous_version"], 1);
}

#[tokio::test]
async fn versions_increase_across_overwrites_and_recreation() {
    let app = TestApp::new().await;
    assert_eq!(app.put_value("shop", "a", "1").await, 1);
    assert_eq!(app.put_value("shop", "a", "2").await, 2);
    let resp = app.delete("/v1/kv/shop/a").token(&app.admin()).send().await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    // A re-created key never reuses a version, so stale ETags cannot match it.
    assert_eq!(app.put_value("shop", "a", "3").await, 4);
    assert_eq!(app.value_of("shop", "a").await.as_deref(), Some(&b"3"[..]));
}

#[tokio::test]
async fn events_filter_by_type_and_page_by_offset() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    app.put_value("shop", "a", "1").await;
    app.put_value("shop", "b", "1").await;
    app.put_value("shop", "a", "2").await;
    let resp = app.delete("/v1/kv/shop/b").token(&token).send().await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);

    let read = |query: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let resp = app
                .get(&format!("/v1/events/shop{query}"))
                .token(&token)
                .send()
                .await;
            assert_eq!(resp.status, StatusCode::OK, "{query}: {resp:?}");
            let json = resp.json().clone();
            (
                summary(json["events"].as_array().expect("events")),
                json["next_after"].as_u64().expect("next_after"),
            )
        }
    };

    assert_eq!(
        read("").await,
        (
            vec![put("a", 1), put("b", 2), put("a", 3), delete("b", 4)],
            4
        )
    );
    assert_eq!(
        read("?type=ferrobase.kv.delete").await,
        (vec![delete("b", 4)], 4)
    );
    assert_eq!(
        read("?type=ferrobase.kv.put").await,
        // The cursor covers the delete the filter skipped, so it is not read again.
        (vec![put("a", 1), put("b", 2), put("a", 3)], 4)
    );
    assert_eq!(read("?type=ferrobase.kv.").await.0.len(), 4);
    assert_eq!(read("?type=ferrobase.storage.").await.0, vec![]);

    // Paging: each page resumes after the previous page's `next_after`.
    assert_eq!(
        read("?after=1&limit=2").await,
        (vec![put("b", 2), put("a", 3)], 3)
    );
    assert_eq!(read("?after=3&limit=2").await, (vec![delete("b", 4)], 4));
    assert_eq!(read("?after=4&limit=2").await, (vec![], 4));
    assert_eq!(read("?after=100").await, (vec![], 100));

    for bad in ["?limit=0", "?limit=1001", "?type=kv.put"] {
        app.get(&format!("/v1/events/shop{bad}"))
            .token(&token)
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
}

// ---- conditional writes ----

#[tokio::test]
async fn if_match_replaces_only_the_expected_version() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    app.put_value("shop", "doc", "v1").await;

    let resp = app
        .put("/v1/kv/shop/doc")
        .token(&token)
        .header("if-match", "\"1\"")
        .body("v2")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(resp.json(), &json!({"key": "doc", "version": 2}));
    assert_eq!(resp.header("etag"), Some("\"2\""));

    // The version it was based on is gone: a lost update is refused.
    app.put("/v1/kv/shop/doc")
        .token(&token)
        .header("if-match", "\"1\"")
        .body("v3")
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    app.delete("/v1/kv/shop/doc")
        .token(&token)
        .header("if-match", "\"1\"")
        .send()
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert_eq!(
        app.value_of("shop", "doc").await.as_deref(),
        Some(&b"v2"[..])
    );

    // Weak and bare ETags name the same version.
    let resp = app
        .put("/v1/kv/shop/doc")
        .token(&token)
        .header("if-match", "W/\"2\"")
        .body("v3")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let resp = app
        .delete("/v1/kv/shop/doc")
        .token(&token)
        .header("if-match", "3")
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{resp:?}");

    let events = app.events("shop").await;
    assert_eq!(
        summary(&events),
        [
            put("doc", 1),
            put("doc", 2),
            put("doc", 3),
            delete("doc", 4)
        ]
    );
}

#[tokio::test]
async fn if_match_any_needs_an_existing_key() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    app.put("/v1/kv/shop/missing")
        .token(&token)
        .header("if-match", "*")
        .body("x")
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    app.assert_untouched("shop").await;

    app.put_value("shop", "present", "1").await;
    let resp = app
        .put("/v1/kv/shop/present")
        .token(&token)
        .header("if-match", "*")
        .body("2")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(resp.json()["version"], 2);
}

#[tokio::test]
async fn if_none_match_any_creates_only_once() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let resp = app
        .put("/v1/kv/shop/lock")
        .token(&token)
        .header("if-none-match", "*")
        .body("first")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(resp.json(), &json!({"key": "lock", "version": 1}));

    app.put("/v1/kv/shop/lock")
        .token(&token)
        .header("if-none-match", "*")
        .body("second")
        .await
        .assert_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert_eq!(
        app.value_of("shop", "lock").await.as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(summary(&app.events("shop").await), [put("lock", 1)]);
}

#[tokio::test]
async fn malformed_preconditions_are_refused_before_writing() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    for (name, value) in [
        ("if-match", "\"abc\""),
        ("if-match", "\"1\", \"2\""),
        ("if-match", ""),
        ("if-match", "-1"),
        // On writes If-None-Match only means "create if absent".
        ("if-none-match", "\"1\""),
    ] {
        app.put("/v1/kv/shop/doc")
            .token(&token)
            .header(name, value)
            .body("x")
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    app.assert_untouched("shop").await;
}

// ---- TTL ----

#[tokio::test]
async fn ttl_hides_the_key_when_due_and_the_sweep_logs_its_expiry() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let resp = app
        .put("/v1/kv/shop/session/1?ttl=60")
        .token(&token)
        .body("s")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    app.put_value("shop", "session/keep", "k").await;

    app.advance(Duration::from_secs(59));
    let resp = app.get("/v1/kv/shop/session/1").token(&token).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), "s");
    assert!(resp.header("x-ferrobase-expires-at").is_some());
    let resp = app
        .get("/v1/kv/shop?prefix=session/")
        .token(&token)
        .send()
        .await;
    let items = &resp.json()["items"];
    assert_eq!(items[0]["key"], "session/1");
    assert!(items[0]["expires_at"].is_string(), "{items}");
    assert!(items[1].get("expires_at").is_none(), "{items}");

    app.advance(Duration::from_secs(1));
    app.get("/v1/kv/shop/session/1")
        .token(&token)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let resp = app
        .get("/v1/kv/shop?prefix=session/")
        .token(&token)
        .send()
        .await;
    assert_eq!(resp.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(resp.json()["items"][0]["key"], "session/keep");
    // Expiry is visible at once; its event is written by the sweep.
    assert_eq!(
        summary(&app.events("shop").await),
        [put("session/1", 1), put("session/keep", 2)]
    );

    assert_eq!(app.engine_sweep().await, 1);
    let resp = app
        .get("/v1/events/shop?type=ferrobase.kv.expire")
        .token(&token)
        .send()
        .await;
    let events = resp.json()["events"].as_array().unwrap().clone();
    assert_eq!(
        summary(&events),
        [("ferrobase.kv.expire".to_owned(), "session/1".to_owned(), 3)]
    );
    assert_eq!(events[0]["data"]["previous_version"], 1);
    assert_eq!(app.engine_sweep().await, 0);
}

#[tokio::test]
async fn invalid_ttls_are_refused() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    app.put("/v1/kv/shop/k?ttl=0")
        .token(&token)
        .body("x")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    app.put("/v1/kv/shop/k?ttl=999999999999")
        .token(&token)
        .body("x")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    for bad in ["abc", "-1", "1.5"] {
        let resp = app
            .put(&format!("/v1/kv/shop/k?ttl={bad}"))
            .token(&token)
            .body("x")
            .await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "ttl={bad}: {resp:?}");
    }
    app.assert_untouched("shop").await;
}

// ---- listing ----

#[tokio::test]
async fn listing_pages_through_a_prefix_without_gaps_or_duplicates() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let expected: Vec<String> = (0..25).map(|i| format!("items/{i:02}")).collect();
    // Neighbours outside the prefix must not appear.
    app.put_value("shop", "item", "x").await;
    app.put_value("shop", "itemsX", "x").await;
    app.put_value("shop", "zzz", "x").await;
    for key in expected.iter().rev() {
        app.put_value("shop", key, "v").await;
    }

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut uri = "/v1/kv/shop?prefix=items/&limit=10".to_owned();
    loop {
        let resp = app.get(&uri).token(&token).send().await;
        assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
        let json = resp.json();
        let keys: Vec<String> = json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_owned())
            .collect();
        pages.push(keys.len());
        seen.extend(keys);
        match json["next"].as_str() {
            Some(next) => uri = format!("/v1/kv/shop?prefix=items/&limit=10&after={next}"),
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages, [10, 10, 5]);
    assert_eq!(seen, expected);

    for bad in ["limit=0", "limit=1001", "prefix=%01"] {
        app.get(&format!("/v1/kv/shop?{bad}"))
            .token(&token)
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let resp = app.get("/v1/kv/shop?limit=1000").token(&token).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json()["items"].as_array().unwrap().len(), 28);
}

// ---- limits and malformed input ----

#[tokio::test]
async fn keys_are_limited_to_1024_bytes_without_control_characters() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let longest = "k".repeat(1024);
    let resp = app
        .put(&format!("/v1/kv/shop/{longest}"))
        .token(&token)
        .body("x")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");

    let too_long = "k".repeat(1025);
    for uri in [
        format!("/v1/kv/shop/{too_long}"),
        "/v1/kv/shop/bad%01key".to_owned(),
        "/v1/kv/shop/line%0Abreak".to_owned(),
        "/v1/kv/shop/del%7F".to_owned(),
    ] {
        app.put(&uri)
            .token(&token)
            .body("x")
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
        app.get(&uri)
            .token(&token)
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let events = app.events("shop").await;
    assert_eq!(
        events.len(),
        1,
        "only the valid key was written: {events:?}"
    );
}

#[tokio::test]
async fn values_over_the_limit_are_refused_with_413_and_not_stored() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let resp = app
        .put("/v1/kv/shop/full")
        .token(&token)
        .body(vec![b'x'; MAX_VALUE])
        .await;
    assert_eq!(
        resp.status,
        StatusCode::OK,
        "a value of exactly the limit: {resp:?}"
    );

    // Declared by Content-Length.
    app.put("/v1/kv/shop/big")
        .token(&token)
        .body(vec![b'x'; MAX_VALUE + 1])
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // Streamed without a length: found out while reading.
    let chunks = vec![Bytes::from(vec![b'x'; 600]), Bytes::from(vec![b'x'; 600])];
    app.put("/v1/kv/shop/big")
        .token(&token)
        .stream(chunks)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // A streamed value within the limit is stored whole.
    let chunks = vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
    let resp = app
        .put("/v1/kv/shop/streamed")
        .token(&token)
        .stream(chunks)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(
        app.value_of("shop", "streamed").await.as_deref(),
        Some(&b"hello world"[..])
    );

    assert_eq!(app.value_of("shop", "big").await, None);
    assert_eq!(
        summary(&app.events("shop").await),
        [put("full", 1), put("streamed", 2)]
    );
}

#[tokio::test]
async fn invalid_namespaces_are_refused() {
    let app = TestApp::new().await;
    let token = app.admin();
    for uri in [
        "/v1/kv/Bad_NS/k",
        "/v1/kv/Bad_NS",
        "/v1/events/Bad_NS",
        "/v1/kv/_system/policies/shop",
        "/v1/events/_system",
    ] {
        app.get(uri)
            .token(&token)
            .send()
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let longest = "n".repeat(63);
    let resp = app
        .put(&format!("/v1/kv/{longest}/k"))
        .token(&token)
        .body("x")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let too_long = "n".repeat(64);
    for uri in [
        "/v1/kv/Bad_NS/k".to_owned(),
        "/v1/kv/-ns/k".to_owned(),
        format!("/v1/kv/{too_long}/k"),
    ] {
        app.put(&uri)
            .token(&token)
            .body("x")
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
}

#[tokio::test]
async fn content_types_are_bounded() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let longest = format!("text/{}", "x".repeat(250));
    let resp = app
        .put("/v1/kv/shop/ok")
        .token(&token)
        .header("content-type", &longest)
        .body("x")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let resp = app.get("/v1/kv/shop/ok").token(&token).send().await;
    assert_eq!(resp.header("content-type"), Some(longest.as_str()));

    for bad in [format!("{longest}y"), String::new()] {
        app.put("/v1/kv/shop/bad")
            .token(&token)
            .header("content-type", &bad)
            .body("x")
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    assert_eq!(app.value_of("shop", "bad").await, None);
    assert_eq!(app.events("shop").await.len(), 1);
}

#[tokio::test]
async fn post_is_only_for_transactions() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    app.post("/v1/kv/shop/orders")
        .token(&token)
        .body("x")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    app.assert_untouched("shop").await;
}

impl TestApp {
    /// Runs the TTL sweep the server's maintenance task would run.
    async fn engine_sweep(&self) -> usize {
        use ferrobase_kv::KvEngine as _;
        self.engine.expire_due(100).await.expect("sweep")
    }
}
