//! In-process tests of the queue API (`/v1/queues/...`), driven with `tower::ServiceExt::oneshot`
//! against the embedded queue engine in a temp directory, the in-memory KV engine (for the
//! change log and policies) and a manual clock.

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use ferrobase_core::auth::Role;
use ferrobase_queue::QueueLimits;
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use support::{Services, TestApp, TokenSpec};

struct App {
    app: TestApp,
}

struct Resp {
    status: StatusCode,
    json: Value,
}

impl App {
    async fn new() -> App {
        let services = Services {
            queue: QueueLimits {
                max_message_bytes: 1024,
                ..QueueLimits::default()
            },
            ..Services::roomy()
        };
        App {
            app: TestApp::with_services(services).await,
        }
    }

    fn token(&self, role: Role, ns: Option<&str>, sub: &str) -> String {
        self.app.mint(TokenSpec::new(role, ns).sub(sub))
    }

    fn admin(&self) -> String {
        self.token(Role::Admin, Some("shop"), "admin")
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> axum::response::Response {
        let mut call = self.app.request(method, uri);
        if let Some(token) = token {
            call = call.token(token);
        }
        let request = match body {
            Some(value) => call
                .header(header::CONTENT_TYPE.as_str(), "application/json")
                .build(Body::from(serde_json::to_vec(&value).unwrap())),
            None => call.build(Body::empty()),
        };
        self.app.send_raw(request).await
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let response = self.raw(method, uri, token, body).await;
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("JSON answer, got {:?}", String::from_utf8_lossy(&bytes))
            })
        };
        Resp { status, json }
    }

    async fn post(&self, uri: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    async fn get(&self, uri: &str, token: &str) -> Resp {
        self.call(Method::GET, uri, Some(token), None).await
    }

    async fn put(&self, uri: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, uri, Some(token), Some(body)).await
    }

    /// Configures `shop/{queue}` with `config` as admin.
    async fn create(&self, queue: &str, config: Value) {
        let resp = self
            .put(&format!("/v1/queues/shop/{queue}"), &self.admin(), config)
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.json);
    }
}

fn error_code(resp: &Resp) -> &str {
    resp.json["error"]["code"].as_str().unwrap_or("<none>")
}

fn receipts(messages: &Value) -> Value {
    Value::Array(
        messages
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["receipt"].clone())
            .collect(),
    )
}

#[tokio::test]
async fn configure_publish_pull_ack() {
    let app = App::new().await;
    let admin = app.admin();
    let resp = app
        .put(
            "/v1/queues/shop/orders",
            &admin,
            json!({"max_deliver": 3, "retention": {"max_age_s": 3600}, "dedup_window_s": 60}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.json,
        json!({"queue": "orders", "max_deliver": 3, "emit_events": false, "dedup_window_s": 60,
               "retention": {"max_age_s": 3600, "max_messages": null}})
    );

    let published = app
        .post(
            "/v1/queues/shop/orders/messages",
            &admin,
            json!({"messages": [
                {"body": {"order": 1}, "key": "alice"},
                {"body": "plain text", "dedup_id": "d-1"},
                {"body": 42, "delay_ms": 5000}
            ]}),
        )
        .await;
    assert_eq!(published.status, StatusCode::OK, "{:?}", published.json);
    let ids = published.json["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(Value::is_string));

    let pulled = app
        .post(
            "/v1/queues/shop/orders/pull",
            &admin,
            json!({"max": 10, "lease_ms": 10000}),
        )
        .await;
    assert_eq!(pulled.status, StatusCode::OK);
    let messages = pulled.json["messages"].clone();
    assert_eq!(
        messages.as_array().unwrap().len(),
        2,
        "the delayed one waits"
    );
    assert_eq!(messages[0]["id"], ids[0]);
    assert_eq!(messages[0]["body"], json!({"order": 1}));
    assert_eq!(messages[0]["key"], "alice");
    assert_eq!(messages[0]["attempt"], 1);
    assert_eq!(messages[1]["body"], "plain text");
    assert_eq!(messages[1]["key"], Value::Null);

    let acked = app
        .post(
            "/v1/queues/shop/orders/ack",
            &admin,
            json!({"receipts": receipts(&messages)}),
        )
        .await;
    assert_eq!(acked.status, StatusCode::OK);
    assert_eq!(acked.json, json!({"acked": 2, "stale": []}));
    let again = app
        .post(
            "/v1/queues/shop/orders/ack",
            &admin,
            json!({"receipts": receipts(&messages)}),
        )
        .await;
    assert_eq!(again.json["acked"], 0);
    assert_eq!(again.json["stale"], receipts(&messages));

    app.app.advance(Duration::from_secs(5));
    let later = app
        .post("/v1/queues/shop/orders/pull", &admin, json!({}))
        .await;
    assert_eq!(later.json["messages"][0]["body"], 42);

    let info = app.get("/v1/queues/shop/orders", &admin).await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.json["config"]["max_deliver"], 3);
    assert_eq!(info.json["groups"][0]["name"], "default");
    assert_eq!(info.json["groups"][0]["pending"], 1);
}

#[tokio::test]
async fn nack_dead_letters_replay_and_purge() {
    let app = App::new().await;
    let admin = app.admin();
    app.create("jobs", json!({"max_deliver": 1})).await;
    app.post(
        "/v1/queues/shop/jobs/messages",
        &admin,
        json!({"messages": [{"body": "a"}, {"body": "b"}]}),
    )
    .await;
    let pulled = app
        .post(
            "/v1/queues/shop/jobs/pull",
            &admin,
            json!({"group": "workers"}),
        )
        .await;
    let messages = pulled.json["messages"].clone();
    let nacked = app
        .post(
            "/v1/queues/shop/jobs/nack",
            &admin,
            json!({"receipts": receipts(&messages), "error": "upstream down"}),
        )
        .await;
    assert_eq!(nacked.json, json!({"nacked": 2, "stale": []}));

    let dlq = app
        .get("/v1/queues/shop/jobs/dlq?group=workers", &admin)
        .await;
    assert_eq!(dlq.status, StatusCode::OK);
    let dead = dlq.json["messages"].as_array().unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["body"], "a");
    assert_eq!(dead[0]["attempts"], 1);
    assert_eq!(dead[0]["last_error"], "upstream down");
    assert_eq!(dlq.json["next"], Value::Null);
    let default_group = app.get("/v1/queues/shop/jobs/dlq", &admin).await;
    assert_eq!(default_group.json["messages"], json!([]));

    let replayed = app
        .post(
            "/v1/queues/shop/jobs/dlq/replay",
            &admin,
            json!({"group": "workers", "ids": [dead[0]["id"].clone()]}),
        )
        .await;
    assert_eq!(replayed.json, json!({"replayed": 1}));
    let again = app
        .post(
            "/v1/queues/shop/jobs/pull",
            &admin,
            json!({"group": "workers"}),
        )
        .await;
    assert_eq!(again.json["messages"][0]["body"], "a");
    assert_eq!(again.json["messages"][0]["attempt"], 1);

    let purged = app
        .post(
            "/v1/queues/shop/jobs/dlq/purge",
            &admin,
            json!({"group": "workers"}),
        )
        .await;
    assert_eq!(purged.json, json!({"purged": 1}));
    let empty = app
        .get("/v1/queues/shop/jobs/dlq?group=workers", &admin)
        .await;
    assert_eq!(empty.json["messages"], json!([]));
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let app = App::new().await;
    let admin = app.admin();
    let missing = app
        .post(
            "/v1/queues/shop/nope/messages",
            &admin,
            json!({"messages": [{"body": 1}]}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "not_found");

    app.create("q", json!({})).await;
    let cases = [
        (
            "/v1/queues/shop/q/messages",
            json!({"messages": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/queues/shop/q/messages",
            json!({"msgs": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/queues/shop/q/messages",
            json!({"messages": [{"body": "x".repeat(2000)}]}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/v1/queues/shop/q/pull",
            json!({"max": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/queues/shop/q/ack",
            json!({"receipts": ["garbage"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/queues/shop/q/ack",
            json!({"receipts": ["default:1:1"], "error": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/queues/shop/bad%20name/pull",
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (uri, body, status) in cases {
        let resp = app.post(uri, &admin, body.clone()).await;
        assert_eq!(resp.status, status, "{uri} {body}: {:?}", resp.json);
        assert!(resp.json["error"]["message"].is_string(), "{:?}", resp.json);
    }
    let bad_config = app
        .put("/v1/queues/shop/q", &admin, json!({"max_deliver": 0}))
        .await;
    assert_eq!(bad_config.status, StatusCode::BAD_REQUEST);

    let anonymous = app
        .call(
            Method::POST,
            "/v1/queues/shop/q/pull",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let other_ns = app.token(Role::Service, Some("other"), "svc");
    let foreign = app
        .post("/v1/queues/shop/q/pull", &other_ns, json!({}))
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn user_tokens_get_what_the_policy_grants() {
    let app = App::new().await;
    let admin = app.admin();
    app.create("alice", json!({})).await;
    app.create("bob", json!({})).await;
    let policy = app
        .put(
            "/v1/policies/shop",
            &admin,
            json!({"rules": [
                {"roles": ["user"], "actions": ["read"], "resources": ["queue:{sub}"]},
                {"roles": ["user"], "actions": ["write"], "resources": ["queue:*"]}
            ]}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{:?}", policy.json);
    let alice = app.token(Role::User, Some("shop"), "alice");

    // Anyone may drop a message into any inbox...
    let sent = app
        .post(
            "/v1/queues/shop/bob/messages",
            &alice,
            json!({"messages": [{"body": "hi bob"}]}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    // ...but only read their own.
    let snoop = app
        .post("/v1/queues/shop/bob/pull", &alice, json!({}))
        .await;
    assert_eq!(snoop.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&snoop), "permission_denied");
    let own = app
        .post("/v1/queues/shop/alice/pull", &alice, json!({}))
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let dlq = app.get("/v1/queues/shop/bob/dlq", &alice).await;
    assert_eq!(dlq.status, StatusCode::FORBIDDEN);
    // A listing shows her only the queue she may read.
    let listed = app.get("/v1/queues/shop", &alice).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.json);
    assert_eq!(
        listed.json,
        json!({"items": [{"queue": "alice", "messages": 0}], "next": null})
    );
}

#[tokio::test]
async fn queues_list_by_name_with_their_depth_in_pages() {
    let app = App::new().await;
    let admin = app.admin();
    for queue in ["jobs", "audit", "mail"] {
        app.create(queue, json!({})).await;
    }
    let sent = app
        .post(
            "/v1/queues/shop/jobs/messages",
            &admin,
            json!({"messages": [{"body": 1}, {"body": 2}]}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    let first = app.get("/v1/queues/shop?limit=2", &admin).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.json);
    assert_eq!(
        first.json["items"],
        json!([{"queue": "audit", "messages": 0}, {"queue": "jobs", "messages": 2}])
    );
    let next = first.json["next"]
        .as_str()
        .expect("a full page has a cursor");
    let rest = app
        .get(&format!("/v1/queues/shop?limit=2&after={next}"), &admin)
        .await;
    assert_eq!(
        rest.json,
        json!({"items": [{"queue": "mail", "messages": 0}], "next": null})
    );
    let bad = app.get("/v1/queues/shop?limit=0", &admin).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad), "invalid_argument");
}

#[tokio::test]
async fn publishes_to_queues_with_events_reach_the_change_log() {
    let app = App::new().await;
    let admin = app.admin();
    app.create("loud", json!({"emit_events": true})).await;
    app.create("quiet", json!({})).await;
    app.post(
        "/v1/queues/shop/quiet/messages",
        &admin,
        json!({"messages": [{"body": 0}]}),
    )
    .await;
    let published = app
        .post(
            "/v1/queues/shop/loud/messages",
            &admin,
            json!({"messages": [{"body": 1, "key": "k"}, {"body": 2}]}),
        )
        .await;
    let ids = published.json["ids"].clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let page = app
            .get("/v1/events/shop?type=ferrobase.queue.message", &admin)
            .await;
        let events = page.json["events"].as_array().cloned().unwrap_or_default();
        if events.len() >= 2 {
            break events;
        }
        assert!(Instant::now() < deadline, "queue events did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "ferrobase.queue.message");
    assert_eq!(events[0]["source"], "/ns/shop/queue");
    assert_eq!(events[0]["subject"], "loud");
    assert_eq!(events[0]["data"]["id"], ids[0]);
    assert_eq!(events[0]["data"]["key"], "k");
    assert_eq!(events[1]["data"]["id"], ids[1]);
}

#[tokio::test]
async fn subscription_streams_and_acks() {
    let app = App::new().await;
    let admin = app.admin();
    app.create("live", json!({})).await;
    app.post(
        "/v1/queues/shop/live/messages",
        &admin,
        json!({"messages": [{"body": "first"}, {"body": "second"}]}),
    )
    .await;
    // Browsers pass the token in the query string.
    let response = app
        .raw(
            Method::GET,
            &format!("/v1/queues/shop/live/subscribe?max=1&access_token={admin}"),
            None,
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while text.matches("event: message").count() < 2 {
        assert!(Instant::now() < deadline, "stream too slow: {text:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("\"body\":\"first\""), "{text}");
    assert!(text.contains("\"body\":\"second\""), "{text}");
    // The second batch is acked when the stream asks for more: let it, then hang up.
    let _ = tokio::time::timeout(Duration::from_millis(300), body.next()).await;
    drop(body);

    // Both were acked: nothing comes back, even after every lease ran out.
    app.app.advance(Duration::from_secs(3600));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = app.get("/v1/queues/shop/live", &admin).await;
        if info.json["groups"][0]["pending"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not acked: {:?}", info.json);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pulled = app
        .post("/v1/queues/shop/live/pull", &admin, json!({}))
        .await;
    assert_eq!(pulled.json["messages"], json!([]));
}

#[tokio::test]
async fn subscribing_needs_read_and_write_and_a_known_queue() {
    let app = App::new().await;
    let admin = app.admin();
    app.create("alice", json!({})).await;
    let policy = app
        .put(
            "/v1/policies/shop",
            &admin,
            json!({"rules": [
                {"roles": ["user"], "actions": ["read"], "resources": ["queue:{sub}"]}
            ]}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK);
    let alice = app.token(Role::User, Some("shop"), "alice");
    // Reading alone may pull, but the subscription acks, which is a write.
    let pulled = app
        .post("/v1/queues/shop/alice/pull", &alice, json!({}))
        .await;
    assert_eq!(pulled.status, StatusCode::OK);
    let denied = app
        .get(
            &format!("/v1/queues/shop/alice/subscribe?access_token={alice}"),
            &alice,
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let missing = app.get("/v1/queues/shop/nobody/subscribe", &admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "not_found");
}
