//! The real binary refuses sizes, counts and durations past their documented maximum with a
//! JSON 400, rather than storing something it cannot read back (Ferrobase issue 11).

use ferrobase_tests::Server;
use serde_json::{Value, json};

/// An HTTP client with the admin token of namespace `a`.
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: server.url.clone(),
            token: server.token("admin", Some("a"), "tests").unwrap(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn assert_invalid(status: u16, body: &Value) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.len() < 1000, "the message echoes input unbounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_refuses_a_content_type_longer_than_255_bytes() {
    let server = Server::start().unwrap();
    let api = Api::new(&server);
    for content_type in [
        "a".repeat(70_000),
        format!("{}a", "é".repeat(32_768)),
        "a".repeat(256),
    ] {
        let ops = json!({"ops": [{"op": "put", "key": "ct-demo", "json": "v",
                                  "content_type": content_type}]});
        let (status, body) = api
            .send(reqwest::Method::POST, "/v1/kv/a/_txn", Some(ops))
            .await;
        assert_invalid(status, &body);
        assert_eq!(
            api.send(reqwest::Method::GET, "/v1/kv/a/ct-demo", None)
                .await
                .0,
            404,
            "nothing was written"
        );
    }
    let ops = json!({"ops": [{"op": "put", "key": "ct-demo", "json": "v",
                              "content_type": "a".repeat(255)}]});
    let (status, body) = api
        .send(reqwest::Method::POST, "/v1/kv/a/_txn", Some(ops))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        api.send(reqwest::Method::GET, "/v1/kv/a/ct-demo", None)
            .await,
        (200, json!("v")),
        "an acknowledged write reads back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_config_refuses_durations_and_counts_past_their_maximum() {
    let server = Server::start().unwrap();
    let api = Api::new(&server);
    let put = reqwest::Method::PUT;
    let (status, body) = api
        .send(put.clone(), "/v1/queues/a/ret", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = [
        // 2^64 ms and a bit: it wrapped to 384 ms, and published messages vanished.
        json!({"retention": {"max_age_s": 18_446_744_073_709_552u64}}),
        json!({"retention": {"max_age_s": u64::MAX}}),
        json!({"retention": {"max_messages": u64::MAX}}),
        json!({"dedup_window_s": u64::MAX}),
        json!({"max_deliver": 1001}),
        json!([]),
    ];
    for config in refused {
        let (status, body) = api
            .send(put.clone(), "/v1/queues/a/ret", Some(config))
            .await;
        assert_invalid(status, &body);
    }
    let message = json!({"messages": [{"body": {"n": 1}}]});
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/queues/a/ret/messages",
            Some(message),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .send(reqwest::Method::GET, "/v1/queues/a/ret", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"], 1, "the published message is kept: {body}");
    let pull = json!({"max": 10, "wait_ms": 0});
    let (status, body) = api
        .send(reqwest::Method::POST, "/v1/queues/a/ret/pull", Some(pull))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_refuse_version_zero() {
    let server = Server::start().unwrap();
    let api = Api::new(&server);
    let put = reqwest::Method::PUT;
    let code = json!({"code": "export default () => 'hi';"});
    let trigger = json!({"source": {"kind": "manual"}});
    for (path, body) in [
        ("/v1/functions/a/hello", code),
        ("/v1/triggers/a/go", trigger),
    ] {
        let (status, reply) = api.send(put.clone(), path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {reply}");
    }
    for function in ["hello@0", "hello@", "hello@x"] {
        let rule = json!({"trigger": "go", "function": function});
        let (status, body) = api.send(put.clone(), "/v1/rules/a/r", Some(rule)).await;
        assert_invalid(status, &body);
    }
    let rule = json!({"trigger": "go", "function": "hello@1"});
    let (status, body) = api.send(put, "/v1/rules/a/r", Some(rule)).await;
    assert_eq!(status, 200, "{body}");
}
