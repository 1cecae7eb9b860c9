//! Function secrets on the real binary: readable inside the function, never returned by the
//! API (function document, invoke answer, activation record and its logs) nor in the change
//! log's events.

use ferrobase_tests::Server;
use serde_json::{Value, json};

const SECRET: &str = "sk_live_\"quoted\"_51Habc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_readable_inside_and_never_leave_through_the_api_or_the_events() {
    let server = Server::start().unwrap();
    let token = server.token("admin", Some("a"), "tests").unwrap();
    let http = reqwest::Client::new();
    let code = "export default (e, ctx) => { console.log('key is ' + ctx.env.STRIPE); if (e.fail) throw new Error('bad ' + process.env.STRIPE); return { key: ctx.env.STRIPE, length: ctx.env.STRIPE.length, region: ctx.env.REGION, [ctx.env.STRIPE]: 1 }; }";
    let response = http
        .put(format!("{}/v1/functions/a/pay", server.url))
        .bearer_auth(&token)
        .json(&json!({"code": code, "env": {"REGION": "eu"}, "secrets": {"STRIPE": SECRET}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answers = vec![response.text().await.unwrap()];

    let invoke = |fail: bool| {
        http.post(format!("{}/v1/functions/a/pay/invoke", server.url))
            .bearer_auth(&token)
            .json(&json!({"fail": fail}))
            .send()
    };
    let ok = invoke(false).await.unwrap();
    let id = ok.headers()["x-ferrobase-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(ok["length"], SECRET.len(), "the function reads the secret");
    assert_eq!(ok["region"], "eu");
    assert_eq!(ok["key"], "[redacted]");
    answers.push(ok.to_string());
    let failed = invoke(true).await.unwrap();
    assert_eq!(failed.status(), 502);
    answers.push(failed.text().await.unwrap());

    let get = |url: String| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let document = get(format!("{}/v1/functions/a/pay", server.url)).await;
    let shown: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(shown["version"]["secrets"], json!(["STRIPE"]));
    assert_eq!(shown["version"]["env"], json!({"REGION": "eu"}));
    answers.push(document);
    let record = get(format!("{}/v1/activations/a/{id}", server.url)).await;
    assert!(record.contains("key is [redacted]"), "{record}");
    answers.push(record);
    answers.push(get(format!("{}/v1/activations/a", server.url)).await);
    answers.push(get(format!("{}/v1/events/a", server.url)).await);
    for answer in &answers {
        assert!(!answer.contains("sk_live_"), "a secret left: {answer}");
    }
}
