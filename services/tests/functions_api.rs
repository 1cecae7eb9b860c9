//! The functions API in process: deploy, invoke, web actions, activations, and what functions
//! do to the KV service through the SDK, on a real (in-memory) KV engine.

mod support;

use axum::http::{Method, StatusCode};
use ferrobase_core::auth::Role;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Services, TestApp, TokenSpec};

struct App {
    app: TestApp,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

impl App {
    async fn new() -> App {
        let services = Services::roomy();
        App {
            app: TestApp::with_services(services).await,
        }
    }

    fn token(&self, role: Role, ns: Option<&str>, sub: &str) -> String {
        self.app.mint(TokenSpec::new(role, ns).sub(sub))
    }

    fn admin(&self) -> String {
        self.app.admin()
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut call = self.app.request(method, uri);
        if let Some(token) = token {
            call = call.token(token);
        }
        let resp = match body {
            Some(value) => call.json(&value).await,
            None => call.send().await,
        };
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        Reply {
            status: resp.status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers: resp.headers,
            text,
        }
    }

    async fn deploy(&self, ns: &str, name: &str, spec: Value) -> Reply {
        let admin = self.admin();
        self.call(
            Method::PUT,
            &format!("/v1/functions/{ns}/{name}"),
            Some(&admin),
            Some(spec),
        )
        .await
    }

    async fn invoke(&self, ns: &str, name: &str, event: Value) -> Reply {
        let admin = self.admin();
        self.call(
            Method::POST,
            &format!("/v1/functions/{ns}/{name}/invoke"),
            Some(&admin),
            Some(event),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_get_versions_and_delete() {
    let app = App::new().await;
    let first = app
        .deploy(
            "shop",
            "hello",
            json!({"code": "export default () => 'v1'"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["version"], 1);
    assert_eq!(first.body["memory_mb"], 128);
    assert_eq!(first.body["timeout_ms"], 10000);
    assert_eq!(first.body["concurrency"], 16);
    app.deploy(
        "shop",
        "hello",
        json!({"code": "export default () => 'v2'", "memory_mb": 64}),
    )
    .await;
    let admin = app.admin();
    let got = app
        .call(Method::GET, "/v1/functions/shop/hello", Some(&admin), None)
        .await;
    assert_eq!(got.body["latest"], 2);
    assert_eq!(got.body["version"]["code"], "export default () => 'v2'");
    assert_eq!(got.body["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.invoke("shop", "hello@1", json!({})).await.body,
        json!("v1")
    );
    assert_eq!(
        app.invoke("shop", "hello", json!({})).await.body,
        json!("v2")
    );

    let deleted = app
        .call(
            Method::DELETE,
            "/v1/functions/shop/hello",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.invoke("shop", "hello", json!({})).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deploys_answer_400_with_the_position_and_deploy_nothing() {
    let app = App::new().await;
    let broken = app
        .deploy(
            "shop",
            "broken",
            json!({"code": "export default function () {\n  return 1 +;\n}"}),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.body["error"]["code"], "invalid_argument");
    assert_eq!(broken.body["error"]["line"], 2, "{}", broken.text);
    assert!(broken.body["error"]["column"].as_u64().is_some());
    for bad in [
        json!({"code": "export default () => 1", "memory_mb": 1}),
        json!({"code": "export default () => 1", "timeout_ms": 0}),
        json!({"code": "export default () => 1", "concurrency": 100000}),
        json!({"code": "export default () => 1", "unknown": true}),
        json!({"nocode": true}),
    ] {
        let reply = app.deploy("shop", "broken", bad.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let bad_name = app
        .deploy(
            "shop",
            "no%20spaces",
            json!({"code": "export default () => 1"}),
        )
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    let admin = app.admin();
    let missing = app
        .call(Method::GET, "/v1/functions/shop/broken", Some(&admin), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_answer_502_or_504_with_the_activation() {
    let app = App::new().await;
    app.deploy(
        "shop",
        "throws",
        json!({"code": "export default () => { throw new Error('nope'); }"}),
    )
    .await;
    app.deploy(
        "spins",
        "spin",
        json!({"code": "export default () => { for(;;){} }", "timeout_ms": 100}),
    )
    .await;
    let failed = app.invoke("shop", "throws", json!({})).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
    assert_eq!(failed.body["error"]["message"], "nope");
    let id = failed.body["error"]["activation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(failed.headers["x-ferrobase-activation-id"], id.as_str());
    let admin = app.admin();
    let record = app
        .call(
            Method::GET,
            &format!("/v1/activations/shop/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(record.body["outcome"], "error");
    assert_eq!(record.body["error"]["message"], "nope");

    let timed_out = app.invoke("spins", "spin", json!({})).await;
    assert_eq!(timed_out.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(timed_out.body["error"]["code"], "timeout");
    let not_json = app
        .call(
            Method::POST,
            "/v1/functions/shop/throws/invoke",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        not_json.status,
        StatusCode::BAD_GATEWAY,
        "an empty payload is an empty event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_invocations_answer_202_and_complete_later() {
    let app = App::new().await;
    app.deploy(
        "shop",
        "slowish",
        json!({"code": "export default async (e) => ({ twice: e.n * 2 })"}),
    )
    .await;
    let admin = app.admin();
    let started = app
        .call(
            Method::POST,
            "/v1/functions/shop/slowish/invoke?blocking=false",
            Some(&admin),
            Some(json!({"n": 4})),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let id = started.body["activation_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = app
            .call(
                Method::GET,
                &format!("/v1/activations/shop/{id}"),
                Some(&admin),
                None,
            )
            .await;
        if record.status == StatusCode::OK {
            assert_eq!(record.body["result"], json!({"twice": 8}));
            assert_eq!(record.body["cause"]["kind"], "request");
            break;
        }
        assert!(Instant::now() < deadline, "the activation completes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listed = app
        .call(
            Method::GET,
            "/v1/activations/shop?function=slowish",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(listed.body["activations"][0]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_writes_land_in_the_functions_namespace_with_their_cause() {
    let app = App::new().await;
    let code = "import { kv } from 'ferrobase';\nexport default async (e) => {\n  const put = await kv.put('orders/' + e.id, { total: e.total });\n  const entry = await kv.getEntry('orders/' + e.id);\n  let conflict;\n  try { await kv.put('orders/' + e.id, 'x', { ifVersion: entry.version + 100 }); } catch (err) { conflict = err.code; }\n  const list = await kv.list({ prefix: 'orders/' });\n  const existed = await kv.delete('missing');\n  return { version: put.version, value: entry.value, conflict, keys: list.items.map(i => i.key), existed };\n};";
    app.deploy("a", "writer", json!({"code": code})).await;
    let reply = app
        .invoke("a", "writer", json!({"id": 7, "total": 12}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["value"], json!({"total": 12}));
    assert_eq!(reply.body["conflict"], "precondition_failed");
    assert_eq!(reply.body["keys"], json!(["orders/7"]));
    assert_eq!(reply.body["existed"], false);
    let activation = reply.headers["x-ferrobase-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let admin = app.admin();
    let value = app
        .call(Method::GET, "/v1/kv/a/orders/7", Some(&admin), None)
        .await;
    assert_eq!(value.body, json!({"total": 12}));
    assert_eq!(value.headers["content-type"], "application/json");
    let other = app
        .call(Method::GET, "/v1/kv/b/orders/7", Some(&admin), None)
        .await;
    assert_eq!(
        other.status,
        StatusCode::NOT_FOUND,
        "other namespaces are untouched"
    );

    let events = app
        .call(
            Method::GET,
            "/v1/events/a?type=ferrobase.kv.put",
            Some(&admin),
            None,
        )
        .await;
    let event = &events.body["events"][0];
    assert_eq!(event["subject"], "orders/7");
    assert_eq!(event["ferrobasecause"], activation.as_str());
    assert_eq!(event["ferrobasedepth"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_actions_map_requests_and_responses() {
    let app = App::new().await;
    let code = "export default (req) => {\n  if (req.query.plain) return { echoed: req.path };\n  return { status: 201, headers: { 'x-seen': req.method + ' ' + req.path + ' ' + req.query.q }, body: { got: req.json } };\n};";
    app.deploy("shop", "hook", json!({"code": code, "web": true}))
        .await;
    app.deploy("shop", "private", json!({"code": "export default () => 1"}))
        .await;

    let shaped = app
        .call(
            Method::POST,
            "/web/shop/hook/a/b?q=one%20two",
            None,
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(shaped.status, StatusCode::CREATED, "{}", shaped.text);
    assert_eq!(shaped.headers["x-seen"], "POST /a/b one two");
    assert_eq!(shaped.body, json!({"got": {"x": 1}}));
    assert_eq!(shaped.headers["content-type"], "application/json");

    let plain = app
        .call(Method::GET, "/web/shop/hook?plain=1", None, None)
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.body, json!({"echoed": "/"}));

    let hidden = app.call(Method::GET, "/web/shop/private", None, None).await;
    assert_eq!(
        hidden.status,
        StatusCode::NOT_FOUND,
        "functions are not web actions unless deployed so"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoking_needs_permission_and_tokens_stay_in_their_namespace() {
    let app = App::new().await;
    app.deploy(
        "shop",
        "hello",
        json!({"code": "export default () => 'hi'"}),
    )
    .await;
    let alice = app.token(Role::User, Some("shop"), "alice");
    let denied = app
        .call(
            Method::POST,
            "/v1/functions/shop/hello/invoke",
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let admin = app.admin();
    let policy = json!({"rules": [{"actions": ["invoke"], "resources": ["function:hello"]}]});
    let set = app
        .call(Method::PUT, "/v1/policies/shop", Some(&admin), Some(policy))
        .await;
    assert_eq!(set.status, StatusCode::OK);
    let allowed = app
        .call(
            Method::POST,
            "/v1/functions/shop/hello/invoke",
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::OK);
    let deploy = app
        .call(
            Method::PUT,
            "/v1/functions/shop/hello",
            Some(&alice),
            Some(json!({"code": "x"})),
        )
        .await;
    assert_eq!(
        deploy.status,
        StatusCode::FORBIDDEN,
        "invoke does not grant deploy"
    );
    let other = app.token(Role::Service, Some("other"), "svc");
    let foreign = app
        .call(
            Method::POST,
            "/v1/functions/shop/hello/invoke",
            Some(&other),
            Some(json!({})),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let anonymous = app
        .call(
            Method::POST,
            "/v1/functions/shop/hello/invoke",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_activations_and_pool_state() {
    let app = App::new().await;
    app.deploy("shop", "m", json!({"code": "export default () => 1"}))
        .await;
    app.invoke("shop", "m", json!({})).await;
    app.invoke("shop", "m", json!({})).await;
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics
            .contains("ferrobase_function_invocations_total{namespace=\"shop\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrobase_function_starts_total{kind=\"warm\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ferrobase_function_gb_seconds_total{namespace=\"shop\"}"));
    assert!(
        metrics.contains("ferrobase_function_abandoned_threads_total 0")
            && metrics.contains("ferrobase_function_abandoned_threads_running 0"),
        "{metrics}"
    );
    assert!(metrics.contains("ferrobase_function_duration_seconds_count{namespace=\"shop\"} 2"));
    assert!(
        metrics.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_list_latest_versions_in_name_order_and_only_what_the_caller_may_read() {
    let app = App::new().await;
    // `a-b` sorts between `a` and `a`'s versions in the record store: the listing must show
    // each function once, by name, with its latest version.
    for (name, versions) in [("a", 3), ("a-b", 1), ("b", 2), ("secret", 1)] {
        for n in 1..=versions {
            let code = format!("export default () => {n}");
            let deployed = app.deploy("shop", name, json!({ "code": code })).await;
            assert_eq!(deployed.status, StatusCode::OK, "{}", deployed.text);
        }
    }
    let admin = app.admin();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let uri = match &after {
            Some(cursor) => format!("/v1/functions/shop?limit=2&after={cursor}"),
            None => "/v1/functions/shop?limit=2".to_owned(),
        };
        let page = app.call(Method::GET, &uri, Some(&admin), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let page: ferrobase_core::wire::Page<ferrobase_core::wire::functions::FunctionSummary> =
            serde_json::from_value(page.body).expect("a page of function summaries");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|f| (f.name, f.version)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected = [("a", 3), ("a-b", 1), ("b", 2), ("secret", 1)]
        .map(|(name, version)| (name.to_owned(), version));
    assert_eq!(seen, expected);

    let policy =
        json!({"rules": [{"actions": ["read"], "resources": ["function:a", "function:b"]}]});
    let set = app
        .call(Method::PUT, "/v1/policies/shop", Some(&admin), Some(policy))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let alice = app.token(Role::User, Some("shop"), "alice");
    let listed = app
        .call(Method::GET, "/v1/functions/shop", Some(&alice), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let names: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "{}", listed.text);
    assert!(!listed.text.contains("code"), "a listing carries no code");

    let bad = app
        .call(
            Method::GET,
            "/v1/functions/shop?limit=0",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["code"], "invalid_argument");
    let empty = app
        .call(Method::GET, "/v1/functions/empty", Some(&admin), None)
        .await;
    assert_eq!(empty.body, json!({"items": [], "next": null}));
}
