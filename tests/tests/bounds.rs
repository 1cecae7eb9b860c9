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

/// Completion events of namespace `a`, by activation id.
async fn completed(api: &Api) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    let mut after = 0;
    loop {
        let path =
            format!("/v1/events/a?type=ferrobase.function.completed&after={after}&limit=1000");
        let (status, body) = api.send(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        for event in body["events"].as_array().unwrap() {
            seen.insert(event["data"]["activation_id"].as_str().unwrap().to_owned());
        }
        let next = body["next_after"].as_u64().unwrap();
        if next == after {
            return seen;
        }
        after = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_async_invocation_of_a_burst_completes_with_its_event() {
    let server = Server::start().unwrap();
    let api = std::sync::Arc::new(Api::new(&server));
    let spec = json!({"code": "export default (e) => e.n;", "concurrency": 500});
    let (status, body) = api
        .send(reqwest::Method::PUT, "/v1/functions/a/burst", Some(spec))
        .await;
    assert_eq!(status, 200, "{body}");
    let count = 1000;
    let senders: Vec<_> = (0..50)
        .map(|sender| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in (sender..count).step_by(50) {
                    let path = "/v1/functions/a/burst/invoke?blocking=false";
                    let (status, body) = api
                        .send(reqwest::Method::POST, path, Some(json!({"n": n})))
                        .await;
                    assert_eq!(status, 202, "{body}");
                    ids.push(body["activation_id"].as_str().expect("an id").to_owned());
                }
                ids
            })
        })
        .collect();
    let mut accepted = std::collections::HashSet::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    assert_eq!(accepted.len(), count);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let seen = completed(&api).await;
        if seen == accepted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} completion events after two minutes",
            seen.intersection(&accepted).count()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for id in accepted.iter().take(20) {
        let (status, body) = api
            .send(
                reqwest::Method::GET,
                &format!("/v1/activations/a/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}
