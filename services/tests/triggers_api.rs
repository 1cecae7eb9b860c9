//! Triggers and rules in process: events from the change log drive functions at least once,
//! with retries, dead letters, replay, fan-out, manual and completion triggers, and loop
//! protection, on a real (in-memory) KV engine and real isolates.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use ferrobase::host::ServiceHost;
use ferrobase_core::auth::Role;
use ferrobase_core::{ManualClock, Namespace};
use ferrobase_functions::pool::PoolConfig;
use ferrobase_functions::triggers::{TriggerConfig, TriggerService};
use ferrobase_functions::{FunctionService, FunctionsConfig};
use ferrobase_kv::{KvEngine, KvLimits, KvRecordStore, MemoryEngine};
use serde_json::{Value, json};
use support::{Services, TestApp, TokenSpec};

struct App {
    app: TestApp,
}

impl App {
    async fn new() -> App {
        let services = Services {
            triggers: true,
            ..Services::roomy()
        };
        App {
            app: TestApp::with_services(services).await,
        }
    }

    fn token(&self, role: Role) -> String {
        self.app.mint(TokenSpec::new(role, Some("shop")).sub("t"))
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(Role::Service, method, uri, body).await
    }

    async fn call_as(
        &self,
        role: Role,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let call = self.app.request(method, uri).token(&self.token(role));
        let resp = match body {
            Some(value) => call.json(&value).await,
            None => call.send().await,
        };
        (
            resp.status,
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
        )
    }

    async fn deploy(&self, name: &str, code: &str) {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/v1/functions/shop/{name}"),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn put(&self, uri: &str, body: Value) {
        let (status, reply) = self.call(Method::PUT, uri, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {reply}");
    }

    async fn kv_put(&self, key: &str, value: &str) {
        let resp = self
            .app
            .put(&format!("/v1/kv/shop/{key}"))
            .token(&self.token(Role::Service))
            .body(value.to_owned())
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    }

    async fn kv_get(&self, key: &str) -> Option<String> {
        let resp = self
            .app
            .get(&format!("/v1/kv/shop/{key}"))
            .token(&self.token(Role::Service))
            .send()
            .await;
        (resp.status == StatusCode::OK).then(|| String::from_utf8_lossy(&resp.body).into_owned())
    }

    /// Polls until `key` exists (deliveries are asynchronous).
    async fn eventually(&self, key: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = self.kv_get(key).await {
                return value;
            }
            assert!(Instant::now() < deadline, "{key} never appeared");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn dead_letters(&self) -> Vec<Value> {
        let (_, body) = self.call(Method::GET, "/v1/dlq/shop", None).await;
        body["dead_letters"].as_array().cloned().unwrap_or_default()
    }

    async fn eventually_dead_letters(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let letters = self.dead_letters().await;
            if letters.len() >= count {
                return letters;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} dead letters, have {}",
                letters.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Records each event it gets under `seen/{subject}` (a KV write of its own).
const RECORDER: &str = "import { kv } from 'ferrobase';\nexport default async (event) => { await kv.put('seen/' + event.subject, event.type); return 'ok'; };";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_triggers_filter_by_prefix_and_op_and_fan_out_to_every_rule() {
    let app = App::new().await;
    app.deploy("recorder", RECORDER).await;
    app.deploy("second", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('also/' + e.subject, 'x'); };").await;
    app.put(
        "/v1/triggers/shop/orders",
        json!({"source": {"kind": "kv", "prefix": "orders/", "ops": ["put"]}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/record",
        json!({"trigger": "orders", "function": "recorder"}),
    )
    .await;
    app.put(
        "/v1/rules/shop/fanout",
        json!({"trigger": "orders", "function": "second"}),
    )
    .await;

    app.kv_put("other/1", "ignored").await;
    app.kv_put("orders/1", "o").await;
    assert_eq!(app.eventually("seen/orders/1").await, "ferrobase.kv.put");
    app.eventually("also/orders/1").await;
    assert!(
        app.kv_get("seen/other/1").await.is_none(),
        "other prefixes do not fire"
    );

    // Deletes do not match a put-only trigger.
    let (status, _) = app.call(Method::DELETE, "/v1/kv/shop/orders/1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.kv_put("orders/2", "o").await;
    app.eventually("seen/orders/2").await;
    assert_eq!(
        app.kv_get("seen/orders/1").await.as_deref(),
        Some("ferrobase.kv.put")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_then_dead_lettered_and_replayed() {
    let app = App::new().await;
    app.deploy(
        "flaky",
        "export default () => { throw new Error('downstream is down'); };",
    )
    .await;
    app.put(
        "/v1/triggers/shop/jobs",
        json!({"source": {"kind": "kv", "prefix": "jobs/"}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/work",
        json!({"trigger": "jobs", "function": "flaky", "max_attempts": 3, "backoff": {"initial_ms": 10, "max_ms": 40}}),
    )
    .await;
    app.kv_put("jobs/1", "j").await;
    let letters = app.eventually_dead_letters(1).await;
    let letter = &letters[0];
    assert_eq!(letter["rule"], "work");
    assert_eq!(letter["event"]["subject"], "jobs/1");
    let attempts = letter["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "every attempt's error is kept");
    assert!(
        attempts
            .iter()
            .all(|a| a["error"].as_str().unwrap().contains("downstream is down"))
    );

    // A replay of a still-broken function keeps the letter and adds the attempt.
    let id = letter["id"].as_str().unwrap().to_owned();
    let (_, replayed) = app
        .call(Method::POST, &format!("/v1/dlq/shop/{id}/replay"), None)
        .await;
    assert_eq!(replayed["delivered"], false);
    assert_eq!(replayed["attempts"].as_array().unwrap().len(), 4);

    // Fixed, the replay delivers and the letter is gone.
    app.deploy("flaky", RECORDER).await;
    let (_, replayed) = app
        .call(Method::POST, &format!("/v1/dlq/shop/{id}/replay"), None)
        .await;
    assert_eq!(replayed["delivered"], true);
    assert_eq!(
        app.kv_get("seen/jobs/1").await.as_deref(),
        Some("ferrobase.kv.put")
    );
    assert!(app.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_on_the_first_attempt_only_is_retried_to_success() {
    let app = App::new().await;
    let code = "import { kv } from 'ferrobase';\nexport default async (e) => {\n  const key = 'attempts/' + e.subject;\n  const n = ((await kv.get(key)) ?? 0) + 1;\n  await kv.put(key, n);\n  if (n === 1) throw new Error('first attempt fails');\n  await kv.put('done/' + e.subject, n);\n};";
    app.deploy("once", code).await;
    app.put(
        "/v1/triggers/shop/t",
        json!({"source": {"kind": "kv", "prefix": "in/"}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/r",
        json!({"trigger": "t", "function": "once", "backoff": {"initial_ms": 10, "max_ms": 100}}),
    )
    .await;
    app.kv_put("in/a", "x").await;
    assert_eq!(app.eventually("done/in/a").await, "2");
    assert!(app.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_and_completion_triggers() {
    let app = App::new().await;
    app.deploy("greet", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('greeted', e.data.name); return { greeted: e.data.name }; };").await;
    app.deploy("after", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('after', e.data.outcome + ' ' + e.data.function); };").await;
    app.put(
        "/v1/triggers/shop/hello",
        json!({"source": {"kind": "manual"}}),
    )
    .await;
    app.put(
        "/v1/triggers/shop/greeted",
        json!({"source": {"kind": "function", "function": "greet", "on": ["ok"]}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/on-hello",
        json!({"trigger": "hello", "function": "greet"}),
    )
    .await;
    app.put(
        "/v1/rules/shop/chain",
        json!({"trigger": "greeted", "function": "after"}),
    )
    .await;

    let (status, fired) = app
        .call(
            Method::POST,
            "/v1/triggers/shop/hello/fire",
            Some(json!({"name": "ada"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fired}");
    assert_eq!(app.eventually("greeted").await, "ada");
    assert_eq!(app.eventually("after").await, "ok greet");

    let (status, _) = app
        .call(
            Method::POST,
            "/v1/triggers/shop/greeted/fire",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "only manual triggers can be fired"
    );
    let (status, _) = app
        .call(Method::POST, "/v1/triggers/shop/nope/fire", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_deeper_than_the_limit_are_cut_off() {
    let app = App::new().await;
    // Every write to loop/ triggers another write to loop/: an endless chain.
    let code = "import { kv } from 'ferrobase';\nexport default async (e) => { const n = Number(e.subject.split('/')[1]) + 1; await kv.put('loop/' + n, 'x'); };";
    app.deploy("looper", code).await;
    app.put(
        "/v1/triggers/shop/loop",
        json!({"source": {"kind": "kv", "prefix": "loop/", "ops": ["put"]}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/loop",
        json!({"trigger": "loop", "function": "looper"}),
    )
    .await;
    app.kv_put("loop/0", "start").await;
    let letters = app.eventually_dead_letters(1).await;
    let error = letters[0]["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("loop protection"), "{error}");
    // The client's write is depth 0; functions wrote depths 1..=16; the event at depth 16 is
    // not delivered, so loop/16 is the last key.
    assert!(app.kv_get("loop/16").await.is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.kv_get("loop/17").await.is_none(), "the chain stopped");
    let metrics = app.app.get("/metrics").send().await.text().to_owned();
    assert!(
        metrics.contains("ferrobase_trigger_loop_cut_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrobase_trigger_delivered_total 16"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_rules_deliver_nothing_and_deleted_functions_fail_cleanly() {
    let app = App::new().await;
    app.deploy("recorder", RECORDER).await;
    app.put(
        "/v1/triggers/shop/t",
        json!({"source": {"kind": "kv", "prefix": "x/"}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/off",
        json!({"trigger": "t", "function": "recorder", "enabled": false}),
    )
    .await;
    app.kv_put("x/1", "v").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.kv_get("seen/x/1").await.is_none(),
        "a disabled rule delivers nothing"
    );

    // A rule whose function was deleted: attempts fail with a clear error, then dead letter.
    app.deploy("gone", RECORDER).await;
    app.put(
        "/v1/rules/shop/orphan",
        json!({"trigger": "t", "function": "gone", "max_attempts": 2, "backoff": {"initial_ms": 5, "max_ms": 5}}),
    )
    .await;
    let (status, _) = app
        .call(Method::DELETE, "/v1/functions/shop/gone", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.kv_put("x/2", "v").await;
    let letters = app.eventually_dead_letters(1).await;
    assert!(
        letters[0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    let (status, _) = app.call(Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "nothing crashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_validated_and_managed_by_privileged_tokens_only() {
    let app = App::new().await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/triggers/shop/t",
            Some(json!({"source": {"kind": "nope"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/rules/shop/r",
            Some(json!({"trigger": "missing", "function": "f"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a rule needs an existing trigger"
    );
    app.put("/v1/triggers/shop/t", json!({"source": {"kind": "manual"}}))
        .await;
    let (status, _) = app
        .call_as(
            Role::User,
            Method::PUT,
            "/v1/rules/shop/r",
            Some(json!({"trigger": "t", "function": "f"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.call(Method::GET, "/v1/triggers/shop/t", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["source"]["kind"], "manual");
    let (status, _) = app.call(Method::DELETE, "/v1/triggers/shop/t", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, "/v1/triggers/shop/t", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_triggers_tick_on_schedule_and_drive_rules() {
    let app = App::new().await;
    app.deploy("on-tick", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('ticked/' + e.data.scheduled, e.subject); };").await;
    app.put(
        "/v1/triggers/shop/every-second",
        json!({"source": {"kind": "cron", "schedule": "* * * * * *", "tz": "Europe/Paris"}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/tick",
        json!({"trigger": "every-second", "function": "on-tick"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) = app
            .call(Method::GET, "/v1/kv/shop?prefix=ticked/", None)
            .await;
        if listed["items"]
            .as_array()
            .is_some_and(|items| items.len() >= 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "two ticks reach the function");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/triggers/shop/bad",
            Some(json!({"source": {"kind": "cron", "schedule": "not a schedule"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Tick events of `ns` as (scheduled ms, catch_up).
async fn ticks(kv: &Arc<dyn KvEngine>, ns: &Namespace) -> Vec<(i64, bool)> {
    let query = ferrobase_core::EventQuery {
        after: 0,
        limit: 10_000,
        type_filter: Some("ferrobase.cron.tick".into()),
    };
    let page = kv.read(ns, &query).await.unwrap();
    page.events
        .iter()
        .map(|e| {
            let at = chrono::DateTime::parse_from_rfc3339(e.data["scheduled"].as_str().unwrap())
                .unwrap();
            (at.timestamp_millis(), e.data["catch_up"].as_bool().unwrap())
        })
        .collect()
}

/// KV, records and functions without a trigger service, for tests that start and stop trigger
/// services themselves (restarts).
fn standalone_services() -> (Arc<dyn KvEngine>, Arc<KvRecordStore>, Arc<FunctionService>) {
    let kv: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new(
        ManualClock::starting_now(),
        KvLimits::default(),
    ));
    let records = Arc::new(KvRecordStore::new(kv.clone()));
    let functions = FunctionService::start(
        records.clone(),
        Arc::new(ServiceHost::new(kv.clone())),
        FunctionsConfig {
            pool: PoolConfig {
                threads: 1,
                stems_per_thread: 0,
                ..PoolConfig::default()
            },
            ..FunctionsConfig::default()
        },
    )
    .unwrap();
    (kv, records, functions)
}

async fn cron_restart(catch_up: bool) -> (Vec<(i64, bool)>, i64, i64) {
    let (kv, records, functions) = standalone_services();
    let ns = Namespace::parse("shop").unwrap();
    let first = TriggerService::start(
        records.clone(),
        kv.clone(),
        functions.clone(),
        None,
        TriggerConfig::default(),
    )
    .await
    .unwrap();
    let spec = serde_json::from_value(
        json!({"source": {"kind": "cron", "schedule": "* * * * * *", "catch_up": catch_up}}),
    )
    .unwrap();
    first.put_trigger(&ns, "beat", spec).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ticks(&kv, &ns).await.is_empty() {
        assert!(Instant::now() < deadline, "the first tick comes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop();
    let stopped = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let restarted = chrono::Utc::now().timestamp_millis();
    let second = TriggerService::start(
        records,
        kv.clone(),
        functions,
        None,
        TriggerConfig::default(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    second.stop();
    (ticks(&kv, &ns).await, stopped, restarted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_missed_while_down_fires_once_on_start() {
    let (ticks, stopped, restarted) = cron_restart(true).await;
    let catch_ups: Vec<_> = ticks.iter().filter(|(_, catch_up)| *catch_up).collect();
    assert_eq!(
        catch_ups.len(),
        1,
        "the missed seconds collapse into one tick: {ticks:?}"
    );
    assert!(
        catch_ups[0].0 > stopped,
        "it stands for the downtime: {ticks:?}"
    );
    assert!(
        !ticks
            .iter()
            .any(|(at, catch_up)| !catch_up && *at > stopped + 999 && *at <= restarted),
        "nothing else ticked while down: {ticks:?}"
    );
    let mut scheduled: Vec<i64> = ticks.iter().map(|(at, _)| *at).collect();
    let count = scheduled.len();
    scheduled.dedup();
    assert_eq!(scheduled.len(), count, "no scheduled time ticks twice");
    assert!(
        ticks
            .iter()
            .any(|(at, catch_up)| *at > restarted && !catch_up),
        "ticking goes on after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_are_skipped_when_catch_up_is_off() {
    let (ticks, stopped, restarted) = cron_restart(false).await;
    assert!(
        !ticks
            .iter()
            .any(|(at, _)| *at > stopped + 999 && *at <= restarted),
        "no tick for the downtime: {ticks:?}"
    );
    assert!(ticks.iter().all(|(_, catch_up)| !catch_up));
    assert!(
        ticks.iter().any(|(at, _)| *at > restarted),
        "ticking resumes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_partial_run_does_not_apply_writes_twice() {
    let app = App::new().await;
    // Writes, then fails on its first attempt only: the retry makes the same writes again.
    let code = "import { kv } from 'ferrobase';\nexport default async (e, ctx) => {\n  const put = await kv.put('orders/' + e.subject, { n: 1 });\n  await kv.delete('todo/a');\n  if (ctx.cause.attempt === 1) throw new Error('crash after writing');\n  await kv.put('result/' + e.subject, put.version);\n};";
    app.deploy("partial", code).await;
    app.kv_put("todo/a", "pending").await;
    app.put(
        "/v1/triggers/shop/in",
        json!({"source": {"kind": "kv", "prefix": "in/", "ops": ["put"]}}),
    )
    .await;
    app.put("/v1/rules/shop/r", json!({"trigger": "in", "function": "partial", "backoff": {"initial_ms": 10, "max_ms": 50}})).await;
    app.kv_put("in/a", "go").await;
    let version_seen = app.eventually("result/in/a").await;

    // The put and the delete happened once: one event each, and the retry saw the first put.
    let (_, events) = app
        .call(Method::GET, "/v1/events/shop?limit=1000", None)
        .await;
    let events = events["events"].as_array().unwrap().clone();
    let puts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "ferrobase.kv.put" && e["subject"] == "orders/in/a")
        .collect();
    assert_eq!(puts.len(), 1, "the put was applied once");
    assert_eq!(
        version_seen,
        puts[0]["data"]["version"].to_string(),
        "the retry got the first put's version"
    );
    let deletes = events
        .iter()
        .filter(|e| e["type"] == "ferrobase.kv.delete" && e["subject"] == "todo/a")
        .count();
    assert_eq!(deletes, 1, "the delete was applied once");
    // Writes from plain requests are not deduplicated.
    app.kv_put("orders/in/a", "again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_rules_keep_each_subjects_events_in_order_and_unordered_ones_deliver_all() {
    let app = App::new().await;
    // Read-modify-write of a per-subject log: concurrent deliveries of one subject would lose
    // entries or reorder them.
    let code = "import { kv } from 'ferrobase';\nexport default async (e) => {\n  const key = 'log/' + e.subject;\n  const seen = (await kv.get(key)) ?? [];\n  seen.push(e.ferrobaseseq);\n  await kv.put(key, seen);\n};";
    app.deploy("append", code).await;
    app.deploy("count", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('counted/' + e.ferrobaseseq, 1); };").await;
    app.put(
        "/v1/triggers/shop/o",
        json!({"source": {"kind": "kv", "prefix": "o/", "ops": ["put"]}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/ordered",
        json!({"trigger": "o", "function": "append", "concurrency": 4}),
    )
    .await;
    app.put(
        "/v1/rules/shop/unordered",
        json!({"trigger": "o", "function": "count", "ordered": false, "concurrency": 16}),
    )
    .await;
    for round in 0..6 {
        for subject in ["a", "b", "c"] {
            app.kv_put(&format!("o/{subject}"), &round.to_string())
                .await;
        }
    }
    for subject in ["a", "b", "c"] {
        let key = format!("log/o/{subject}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(text) = app.kv_get(&key).await {
                let seqs: Vec<u64> = serde_json::from_str(&text).unwrap();
                if seqs.len() == 6 {
                    let mut sorted = seqs.clone();
                    sorted.sort_unstable();
                    assert_eq!(seqs, sorted, "{subject}: delivered in log order");
                    break;
                }
                assert!(seqs.len() < 6, "{subject}: no duplicates: {seqs:?}");
            }
            assert!(Instant::now() < deadline, "{key} never got all six events");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) = app
            .call(Method::GET, "/v1/kv/shop?prefix=counted/", None)
            .await;
        if listed["items"]
            .as_array()
            .is_some_and(|items| items.len() == 18)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unordered rule delivers every event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/rules/shop/bad",
            Some(json!({"trigger": "o", "function": "count", "concurrency": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A delivery repeated after a crash (the rule's cursor is saved once per page, so a crash
/// can come after the dead letter was filed and before the cursor moved) adds its attempts to
/// the event's dead letter instead of filing a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_repeated_after_a_crash_keeps_one_dead_letter_per_event() {
    use ferrobase_core::records::{RecordCommit, RecordStore};
    let (kv, records, functions) = standalone_services();
    let ns = Namespace::parse("shop").unwrap();
    functions
        .deploy(
            &ns,
            "broken",
            serde_json::from_value(
                json!({"code": "export default () => { throw new Error('always'); }"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let start = || {
        TriggerService::start(
            records.clone(),
            kv.clone(),
            functions.clone(),
            None,
            TriggerConfig::default(),
        )
    };
    let first = start().await.unwrap();
    first
        .put_trigger(
            &ns,
            "go",
            serde_json::from_value(json!({"source": {"kind": "manual"}})).unwrap(),
        )
        .await
        .unwrap();
    first
        .put_rule(
            &ns,
            "r",
            serde_json::from_value(
                json!({"trigger": "go", "function": "broken", "max_attempts": 1}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    first.fire(&ns, "go", json!({})).await.unwrap();
    let attempts_filed = |service: Arc<TriggerService>| {
        let ns = ns.clone();
        async move {
            let letters = service.dead_letters(&ns, None, 100).await.unwrap();
            let attempts = letters.iter().map(|l| l.attempts.len()).sum::<usize>();
            (letters, attempts)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while attempts_filed(first.clone()).await.1 < 1 {
        assert!(
            Instant::now() < deadline,
            "the event was never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop();
    // The crash came before the cursor was saved: the rule starts over from the beginning.
    records
        .commit(
            &ns,
            RecordCommit {
                writes: vec![("rcur/r".to_owned(), Some(bytes::Bytes::from_static(b"0")))],
                ..RecordCommit::default()
            },
        )
        .await
        .unwrap();
    let second = start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let letters = loop {
        let (letters, attempts) = attempts_filed(second.clone()).await;
        if attempts >= 2 {
            break letters;
        }
        assert!(
            Instant::now() < deadline,
            "the event was never delivered again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    second.stop();
    assert_eq!(
        letters.len(),
        1,
        "one letter per event and rule: {letters:?}"
    );
    assert_eq!(letters[0].attempts.len(), 2);
    assert!(
        letters[0]
            .attempts
            .iter()
            .all(|a| a.error.contains("always"))
    );
}
