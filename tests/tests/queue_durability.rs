//! Crash safety of the queue service through the real binary: messages whose publish was
//! acknowledged survive `kill -9`, acked messages stay acked, and a message leased but not acked
//! before the crash is delivered again (once its lease ends) after the restart.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrobase_tests::Server;
use serde_json::{Value, json};

const PUBLISHERS: usize = 4;
const BATCH: usize = 5;
/// Kill once at least this many messages were acknowledged (with more still in flight).
const ACKED_BEFORE_KILL: usize = 400;

/// A minimal client for the queue API of one namespace.
#[derive(Clone)]
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

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
        Ok(body)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, body).await
    }

    async fn configure(&self, queue: &str) {
        self.call(reqwest::Method::PUT, queue, json!({"max_deliver": 10}))
            .await
            .expect("queue configures");
    }

    async fn pull(&self, queue: &str, max: usize, lease_ms: u64, wait_ms: u64) -> Vec<Value> {
        let body = json!({"max": max, "lease_ms": lease_ms, "wait_ms": wait_ms});
        let answer = self
            .post(&format!("{queue}/pull"), body)
            .await
            .expect("pull");
        answer["messages"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_kill_9() {
    let mut server = Server::start().expect("server starts");
    let queues = Queues::new(&server, "crash");
    queues.configure("orders").await;
    let acked: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let mut publishers = Vec::new();
    for publisher in 0..PUBLISHERS {
        let (queues, acked, stop) = (queues.clone(), acked.clone(), stop.clone());
        publishers.push(tokio::spawn(async move {
            let mut failures = 0;
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let bodies: Vec<Value> = (0..BATCH)
                    .map(|i| json!({"publisher": publisher, "n": n, "i": i}))
                    .collect();
                let messages: Vec<Value> = bodies.iter().map(|b| json!({"body": b})).collect();
                match queues
                    .post("orders/messages", json!({"messages": messages}))
                    .await
                {
                    Ok(answer) => {
                        let ids = answer["ids"].as_array().expect("ids").clone();
                        assert_eq!(ids.len(), BATCH);
                        let mut acked = acked.lock().unwrap();
                        for (id, body) in ids.into_iter().zip(bodies) {
                            acked.push((id.as_str().unwrap().to_owned(), body));
                        }
                    }
                    // After the kill every request fails; a few failures mean it is down.
                    Err(_) => {
                        failures += 1;
                        if failures > 3 {
                            break;
                        }
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "publishes are too slow to reach the kill point"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_hard();
    stop.store(true, Ordering::SeqCst);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    server.restart().expect("server restarts on the same data");
    let queues = Queues::new(&server, "crash");
    let mut delivered: HashMap<String, Value> = HashMap::new();
    loop {
        let batch = queues.pull("orders", 1000, 600_000, 0).await;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            let id = message["id"].as_str().unwrap().to_owned();
            assert!(
                delivered
                    .insert(id.clone(), message["body"].clone())
                    .is_none(),
                "{id} delivered twice"
            );
        }
    }
    for (id, body) in &acked {
        assert_eq!(
            delivered.get(id),
            Some(body),
            "acknowledged message {id} was lost or changed"
        );
    }
    // Batches are atomic: every stored message belongs to a whole batch of BATCH messages.
    let mut per_batch: HashMap<(u64, u64), usize> = HashMap::new();
    for body in delivered.values() {
        let key = (
            body["publisher"].as_u64().unwrap(),
            body["n"].as_u64().unwrap(),
        );
        *per_batch.entry(key).or_default() += 1;
    }
    assert!(
        per_batch.values().all(|&count| count == BATCH),
        "a batch was split by the crash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_messages_come_back_after_a_crash_and_acked_ones_do_not() {
    let mut server = Server::start().expect("server starts");
    let queues = Queues::new(&server, "crash");
    queues.configure("jobs").await;
    let messages: Vec<Value> = ["done", "in progress", "untouched"]
        .iter()
        .map(|body| json!({"body": body}))
        .collect();
    queues
        .post("jobs/messages", json!({"messages": messages}))
        .await
        .unwrap();
    let leased = queues.pull("jobs", 2, 1000, 0).await;
    assert_eq!(leased.len(), 2);
    assert_eq!(leased[0]["body"], "done");
    queues
        .post(
            "jobs/ack",
            json!({"receipts": [leased[0]["receipt"].clone()]}),
        )
        .await
        .unwrap();

    server.kill_hard();
    server.restart().expect("server restarts on the same data");
    let queues = Queues::new(&server, "crash");

    // The lease survives the restart; once it ends, the message comes back with its next
    // attempt. The acked message never comes back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<(String, u64)> = Vec::new();
    while seen.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "messages not redelivered: {seen:?}"
        );
        for message in queues.pull("jobs", 10, 60_000, 2000).await {
            let body = message["body"].as_str().unwrap().to_owned();
            seen.push((body, message["attempt"].as_u64().unwrap()));
        }
    }
    let seen: HashSet<(String, u64)> = seen.into_iter().collect();
    let expected: HashSet<(String, u64)> =
        [("in progress".to_owned(), 2), ("untouched".to_owned(), 1)]
            .into_iter()
            .collect();
    assert_eq!(seen, expected);
    assert!(queues.pull("jobs", 10, 60_000, 1500).await.is_empty());
}
