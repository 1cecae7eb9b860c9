//! `POST /v1/kv/{ns}/_txn`: checks and mutations, all or nothing.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{MAX_TXN, TestApp};

const TXN: &str = "/v1/kv/shop/_txn";

#[tokio::test]
async fn a_transaction_applies_every_mutation_with_results() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let stock = app.put_value("shop", "stock/apple", "10").await;
    app.put_value("shop", "cart/old", "x").await;

    let resp = app
        .post(TXN)
        .token(&token)
        .json(&json!({
            "checks": [
                {"key": "stock/apple", "version": stock},
                {"key": "orders/1", "exists": false},
                {"key": "cart/old", "exists": true},
            ],
            "ops": [
                {"op": "put", "key": "stock/apple", "value": "9"},
                {"op": "put", "key": "orders/1", "json": {"item": "apple"}},
                {"op": "put", "key": "raw", "value_base64": "AP8=", "content_type": "image/x-test"},
                {"op": "delete", "key": "cart/old"},
                {"op": "delete", "key": "never/existed"},
            ],
        }))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(
        resp.json(),
        &json!({"results": [
            {"op": "put", "key": "stock/apple", "version": 3},
            {"op": "put", "key": "orders/1", "version": 4},
            {"op": "put", "key": "raw", "version": 5},
            {"op": "delete", "key": "cart/old", "existed": true},
            {"op": "delete", "key": "never/existed", "existed": false},
        ]})
    );

    let resp = app
        .get("/v1/kv/shop/stock/apple")
        .token(&token)
        .send()
        .await;
    assert_eq!(resp.text(), "9");
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let resp = app.get("/v1/kv/shop/orders/1").token(&token).send().await;
    assert_eq!(resp.json(), &json!({"item": "apple"}));
    let resp = app.get("/v1/kv/shop/raw").token(&token).send().await;
    assert_eq!(&resp.body[..], &[0u8, 255]);
    assert_eq!(resp.header("content-type"), Some("image/x-test"));
    assert_eq!(app.value_of("shop", "cart/old").await, None);

    // One event per effective mutation; deleting nothing logs nothing.
    let types: Vec<(String, u64)> = app
        .events("shop")
        .await
        .iter()
        .map(|e| {
            (
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["subject"].as_str().unwrap()
                ),
                e["ferrobaseseq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("ferrobase.kv.put stock/apple".to_owned(), 1),
            ("ferrobase.kv.put cart/old".to_owned(), 2),
            ("ferrobase.kv.put stock/apple".to_owned(), 3),
            ("ferrobase.kv.put orders/1".to_owned(), 4),
            ("ferrobase.kv.put raw".to_owned(), 5),
            ("ferrobase.kv.delete cart/old".to_owned(), 6),
        ]
    );
}

#[tokio::test]
async fn a_failed_check_writes_nothing() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    app.put_value("shop", "stock/apple", "10").await;
    let before = app.events("shop").await;

    for check in [
        json!({"key": "stock/apple", "version": 99}),
        json!({"key": "stock/apple", "exists": false}),
        json!({"key": "missing", "exists": true}),
        json!({"key": "missing", "version": 1}),
    ] {
        app.post(TXN)
            .token(&token)
            .json(&json!({
                "checks": [check],
                "ops": [
                    {"op": "put", "key": "orders/1", "value": "new"},
                    {"op": "delete", "key": "stock/apple"},
                ],
            }))
            .await
            .assert_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    }
    assert_eq!(app.value_of("shop", "orders/1").await, None);
    assert_eq!(
        app.value_of("shop", "stock/apple").await.as_deref(),
        Some(&b"10"[..])
    );
    assert_eq!(app.events("shop").await, before);
}

#[tokio::test]
async fn malformed_transactions_are_refused() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    let put = |key: &str| json!({"op": "put", "key": key, "value": "x"});
    let cases: Vec<(&str, Value)> = vec![
        ("no ops", json!({"checks": []})),
        ("empty ops", json!({"ops": []})),
        (
            "unknown top-level field",
            json!({"ops": [put("a")], "extra": 1}),
        ),
        (
            "unknown op field",
            json!({"ops": [{"op": "put", "key": "a", "value": "x", "colour": "red"}]}),
        ),
        ("unknown op", json!({"ops": [{"op": "merge", "key": "a"}]})),
        (
            "two value kinds",
            json!({"ops": [{"op": "put", "key": "a", "value": "x", "json": 1}]}),
        ),
        ("no value", json!({"ops": [{"op": "put", "key": "a"}]})),
        ("duplicate keys", json!({"ops": [put("a"), put("a")]})),
        (
            "put and delete of one key",
            json!({"ops": [put("a"), {"op": "delete", "key": "a"}]}),
        ),
        (
            "invalid base64",
            json!({"ops": [{"op": "put", "key": "a", "value_base64": "not base64!"}]}),
        ),
        ("empty key", json!({"ops": [put("")]})),
        ("control character in key", json!({"ops": [put("a\u{1}")]})),
        (
            "check without condition",
            json!({"checks": [{"key": "a"}], "ops": [put("b")]}),
        ),
        (
            "check with version and exists: false",
            json!({"checks": [{"key": "a", "version": 1, "exists": false}], "ops": [put("b")]}),
        ),
        (
            "zero ttl",
            json!({"ops": [{"op": "put", "key": "a", "value": "x", "ttl": 0}]}),
        ),
    ];
    for (what, body) in cases {
        let resp = app.post(TXN).token(&token).json(&body).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{what}: {resp:?}");
        assert_eq!(resp.json()["error"]["code"], "invalid_argument", "{what}");
    }
    for raw in ["{", "not json", "", "[]"] {
        app.post(TXN)
            .token(&token)
            .header("content-type", "application/json")
            .body(raw)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    app.assert_untouched("shop").await;
}

#[tokio::test]
async fn oversized_transactions_are_refused_with_413() {
    let app = TestApp::new().await;
    let token = app.service("shop");
    // A body over the transaction limit, declared and streamed.
    let big_value = "x".repeat(900);
    let ops: Vec<Value> = (0..5)
        .map(|i| json!({"op": "put", "key": format!("k{i}"), "value": big_value}))
        .collect();
    let body = serde_json::to_vec(&json!({ "ops": ops })).unwrap();
    assert!(body.len() > MAX_TXN);
    app.post(TXN)
        .token(&token)
        .body(body.clone())
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    app.post(TXN)
        .token(&token)
        .stream(
            body.chunks(1000)
                .map(axum::body::Bytes::copy_from_slice)
                .collect(),
        )
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // A single value over the value limit.
    app.post(TXN)
        .token(&token)
        .json(&json!({"ops": [{"op": "put", "key": "k", "value": "x".repeat(1025)}]}))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // More operations than one transaction may carry.
    let ops: Vec<Value> = (0..129)
        .map(|i| json!({"op": "delete", "key": format!("{i}")}))
        .collect();
    app.post(TXN)
        .token(&token)
        .json(&json!({ "ops": ops }))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    app.assert_untouched("shop").await;
}
