//! SIGTERM during activity: the server stops within its grace, every activation it accepted
//! (asynchronous invocations still running when the signal came, rule deliveries in progress)
//! finishes and has its record after the restart, and a rule stopped part way through a page
//! delivers the rest after the restart without repeating what it delivered.

use std::time::Duration;

use ferrobase_tests::Server;
use serde_json::{Value, json};

/// Waits `e.ms` milliseconds on a timer, then answers: long enough that SIGTERM lands while
/// it runs.
const SLOW: &str = "export default async (e) => {\n  await new Promise((resolve) => setTimeout(resolve, e.ms));\n  return { done: e.n };\n};";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_asynchronous_invocations_loses_no_activation_record() {
    let mut server = Server::start().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let base = server.url.clone();
    let deployed = http
        .put(format!("{base}/v1/functions/shop/slow"))
        .bearer_auth(&token)
        .json(&json!({ "code": SLOW }))
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status().as_u16(), 200);

    let mut accepted = Vec::new();
    for n in 0..12 {
        let invoked = http
            .post(format!(
                "{base}/v1/functions/shop/slow/invoke?blocking=false"
            ))
            .bearer_auth(&token)
            .json(&json!({ "ms": 700, "n": n }))
            .send()
            .await
            .unwrap();
        assert_eq!(invoked.status().as_u16(), 202);
        let body: Value = invoked.json().await.unwrap();
        accepted.push(body["activation_id"].as_str().unwrap().to_owned());
    }

    // The invocations are running (each waits 700 ms on its timer) when the signal comes.
    let status = server.terminate(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "the server exits cleanly: {status:?}");

    server.restart().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let base = server.url.clone();
    for id in &accepted {
        let record = http
            .get(format!("{base}/v1/activations/shop/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            record.status().as_u16(),
            200,
            "activation {id} was accepted before SIGTERM and must have its record"
        );
        let record: Value = record.json().await.unwrap();
        assert_eq!(record["outcome"], "ok", "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_rule_deliveries_finishes_them_and_delivers_the_rest_after_restart() {
    let mut server = Server::start().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let base = server.url.clone();
    // Each delivered order writes a receipt, so the test can count deliveries.
    let code = "import { kv } from \"ferrobase\";\nexport default async (e) => {\n  await new Promise((resolve) => setTimeout(resolve, 150));\n  await kv.put(\"receipts/\" + e.subject.slice(\"orders/\".length), { ok: true });\n};";
    for (path, body) in [
        ("/v1/functions/shop/receipt", json!({ "code": code })),
        (
            "/v1/triggers/shop/orders",
            json!({ "source": { "kind": "kv", "prefix": "orders/" } }),
        ),
        (
            "/v1/rules/shop/receipts",
            json!({ "trigger": "orders", "function": "receipt", "concurrency": 1 }),
        ),
    ] {
        let put = http
            .put(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            put.status().is_success(),
            "{path}: {}",
            put.text().await.unwrap()
        );
    }
    let orders = 12;
    for n in 0..orders {
        let put = http
            .put(format!("{base}/v1/kv/shop/orders/{n}"))
            .bearer_auth(&token)
            .json(&json!({ "n": n }))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success());
    }
    // Deliveries run one at a time, 150 ms each: the signal lands in the middle of them.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = server.terminate(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "the server exits cleanly: {status:?}");

    server.restart().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let base = server.url.clone();
    // Every order is delivered: those before the signal, the rest after the restart.
    let mut receipts = 0;
    for _ in 0..200 {
        let listed: Value = http
            .get(format!("{base}/v1/kv/shop?prefix=receipts/"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        receipts = listed["items"].as_array().map_or(0, Vec::len);
        if receipts == orders {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receipts, orders, "every order gets its receipt");
    // No delivery was cut off mid-activation and none repeated: one activation per order,
    // each ended ok (a stop part way through a page keeps what it delivered).
    let activations: Value = http
        .get(format!(
            "{base}/v1/activations/shop?function=receipt&limit=100"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = activations["activations"].as_array().unwrap();
    for record in records {
        assert_eq!(record["outcome"], "ok", "{record}");
    }
    assert_eq!(records.len(), orders, "{activations}");
}
