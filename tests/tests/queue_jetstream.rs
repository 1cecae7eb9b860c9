//! The queue service on the NATS JetStream engine, through the real binary: two `ferrobase`
//! nodes started with `--queue-engine jetstream` against one `nats-server -js` share their
//! queues — a batch published on one node is pulled and acked on the other, consumers on both
//! compete within a group, and acked messages stay acked for both.

use std::collections::HashSet;
use std::time::Duration;

use ferrobase_queue::jetstream::NatsServer;
use ferrobase_tests::{Server, ServerOptions};
use serde_json::{Value, json};

/// The queue API of one namespace on one node.
struct Queues {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Queues {
    fn new(server: &Server, ns: &str) -> Queues {
        Queues {
            http: reqwest::Client::new(),
            base: format!("{}/v1/queues/{ns}", server.url),
            token: server.token("admin", Some(ns), "tests").expect("token"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON answer");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body).await
    }

    async fn pull(&self, queue: &str, max: usize, wait_ms: u64) -> Vec<Value> {
        let body = json!({"max": max, "lease_ms": 60_000, "wait_ms": wait_ms});
        let answer = self.post(&format!("{queue}/pull"), body).await;
        answer["messages"].as_array().cloned().unwrap_or_default()
    }

    async fn ack(&self, queue: &str, messages: &[Value]) -> Value {
        let receipts: Vec<&Value> = messages.iter().map(|m| &m["receipt"]).collect();
        self.post(&format!("{queue}/ack"), json!({"receipts": receipts}))
            .await
    }
}

fn node(nats: &NatsServer) -> Server {
    Server::start_with(ServerOptions {
        args: vec![
            "--queue-engine".into(),
            "jetstream".into(),
            "--nats-url".into(),
            nats.url().into(),
        ],
        envs: Vec::new(),
    })
    .expect("ferrobase starts on the JetStream engine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_queues_through_jetstream() {
    let nats = NatsServer::start();
    let (a, b) = (node(&nats), node(&nats));
    let (on_a, on_b) = (Queues::new(&a, "shop"), Queues::new(&b, "shop"));

    on_a.call(reqwest::Method::PUT, "orders", json!({"max_deliver": 3}))
        .await;
    let bodies: Vec<Value> = (0..10).map(|i| json!({"order": i})).collect();
    let messages: Vec<Value> = bodies.iter().map(|b| json!({"body": b})).collect();
    let published = on_a
        .post("orders/messages", json!({"messages": messages}))
        .await;
    assert_eq!(published["ids"].as_array().map(Vec::len), Some(10));

    // Consumers on both nodes compete within the group: together they get each message once.
    let from_b = on_b.pull("orders", 4, 5_000).await;
    let from_a = on_a.pull("orders", 100, 5_000).await;
    assert_eq!(from_b.len(), 4, "node b takes the first four");
    assert_eq!(from_a.len(), 6, "node a gets the rest, none twice");
    let seen: Vec<Value> = from_b
        .iter()
        .chain(&from_a)
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(seen, bodies, "each message once, in publish order");
    let ids: HashSet<&str> = from_b
        .iter()
        .chain(&from_a)
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 10);

    // A receipt handed out by one node settles on the other.
    let acked = on_a.ack("orders", &from_b).await;
    assert_eq!(acked["acked"], 4);
    let acked = on_b.ack("orders", &from_a).await;
    assert_eq!(acked["acked"], 6);
    let again = on_b.ack("orders", &from_a).await;
    assert_eq!(
        again["acked"], 0,
        "a second ack of the same receipts is stale"
    );
    assert!(on_a.pull("orders", 100, 0).await.is_empty());
    assert!(on_b.pull("orders", 100, 0).await.is_empty());

    // A waiting pull on one node wakes up for a publish on the other.
    let waiting = tokio::spawn(async move {
        let got = on_b.pull("orders", 1, 20_000).await;
        (got, on_b)
    });
    on_a.post(
        "orders/messages",
        json!({"messages": [{"body": "late", "key": "k"}]}),
    )
    .await;
    let (got, on_b) = waiting.await.expect("waiting pull");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"], "late");
    assert_eq!(on_b.ack("orders", &got).await["acked"], 1);
}
