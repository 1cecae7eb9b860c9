//! Rules resume from their durable cursors after a crash: every event appended before a
//! `kill -9` is delivered after the restart (at least once), with nothing skipped.

use std::time::{Duration, Instant};

use ferrobase_sdk::PutOptions;
use ferrobase_tests::Server;
use serde_json::json;

async fn put_json(client: &reqwest::Client, url: &str, token: &str, body: serde_json::Value) {
    let response = client
        .put(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_deliver_every_event_across_kill_9() {
    let mut server = Server::start().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let base = server.url.clone();
    put_json(
        &http,
        &format!("{base}/v1/functions/shop/recorder"),
        &token,
        json!({"code": "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('seen/' + e.subject, e.ferrobaseseq); };"}),
    )
    .await;
    put_json(
        &http,
        &format!("{base}/v1/triggers/shop/orders"),
        &token,
        json!({"source": {"kind": "kv", "prefix": "orders/", "ops": ["put"]}}),
    )
    .await;
    put_json(
        &http,
        &format!("{base}/v1/rules/shop/record"),
        &token,
        json!({"trigger": "orders", "function": "recorder"}),
    )
    .await;

    let client = server.client("shop").unwrap();
    const ORDERS: usize = 60;
    for i in 0..ORDERS {
        client
            .kv_put(
                "shop",
                &format!("orders/{i:03}"),
                "o",
                &PutOptions::default(),
            )
            .await
            .unwrap();
    }
    // Most deliveries are still pending when the process dies.
    server.kill_hard();
    server.restart().unwrap();

    let client = server.client("shop").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..ORDERS {
        let key = format!("seen/orders/{i:03}");
        loop {
            if client.kv_get("shop", &key).await.unwrap().is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{key} was never delivered after the restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
