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
