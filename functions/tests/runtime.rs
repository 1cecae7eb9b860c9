//! The function runtime end to end inside one process: real QuickJS isolates on executor
//! threads, records in a real (in-memory) KV engine, and a small host at the `HostApi`
//! boundary that keeps values in a map and can hold calls open to test concurrency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrobase_core::event::Causation;
use ferrobase_core::{ManualClock, Namespace};
use ferrobase_functions::engine::FetchPolicy;
use ferrobase_functions::model::Cause;
use ferrobase_functions::pool::PoolConfig;
use ferrobase_functions::service::{Completed, Invocation};
use ferrobase_functions::{
    FunctionError, FunctionService, FunctionSpec, FunctionsConfig, HostApi, HostContext, HostError,
    HostOp, OutcomeKind, StartKind,
};
use ferrobase_kv::{KvLimits, KvRecordStore, MemoryEngine};
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct TestHost {
    values: Mutex<HashMap<(String, String), String>>,
    calls: Mutex<Vec<(HostContext, HostOp)>>,
    gate: Notify,
}

#[async_trait]
impl HostApi for TestHost {
    async fn call(&self, context: &HostContext, op: HostOp) -> Result<Value, HostError> {
        self.calls
            .lock()
            .unwrap()
            .push((context.clone(), op.clone()));
        let ns = context.namespace.to_string();
        match op {
            HostOp::KvGet { key } if key == "gate" => {
                self.gate.notified().await;
                Ok(Value::Null)
            }
            HostOp::KvGet { key } => Ok(match self.values.lock().unwrap().get(&(ns, key)) {
                Some(v) => json!({"value": v, "version": 1, "content_type": "application/json"}),
                None => Value::Null,
            }),
            HostOp::KvPut { key, value, .. } => {
                self.values.lock().unwrap().insert((ns, key.clone()), value);
                Ok(json!({"key": key, "version": 1}))
            }
            HostOp::Fetch { .. } => Ok(json!({"status": 200, "headers": {}, "body": "fetched"})),
            other => Err(HostError::new(
                "invalid_argument",
                format!("test host: {other:?}"),
            )),
        }
    }
}

struct Fixture {
    service: Arc<FunctionService>,
    host: Arc<TestHost>,
    ns: Namespace,
}

fn fixture_with(config: FunctionsConfig) -> Fixture {
    let kv = Arc::new(MemoryEngine::new(
        ManualClock::starting_now(),
        KvLimits::default(),
    ));
    let host = Arc::new(TestHost::default());
    let service =
        FunctionService::start(Arc::new(KvRecordStore::new(kv)), host.clone(), config).unwrap();
    Fixture {
        service,
        host,
        ns: Namespace::parse("shop").unwrap(),
    }
}

fn config() -> FunctionsConfig {
    FunctionsConfig {
        pool: PoolConfig {
            threads: 2,
            stems_per_thread: 1,
            ..PoolConfig::default()
        },
        fetch: FetchPolicy {
            allowed_hosts: vec!["api.example.com".into()],
        },
        ..FunctionsConfig::default()
    }
}

fn spec(code: &str) -> FunctionSpec {
    serde_json::from_value(json!({"code": code})).unwrap()
}

impl Fixture {
    async fn deploy(&self, name: &str, spec: FunctionSpec) -> u32 {
        self.service
            .deploy(&self.ns, name, spec)
            .await
            .expect("deploys")
            .version
    }

    async fn invoke(&self, target: &str, event: Value) -> Completed {
        self.service
            .invoke(Invocation {
                namespace: self.ns.clone(),
                target: target.to_owned(),
                event,
                cause: Cause::Request,
                causation: Causation::default(),
            })
            .await
            .expect("invocation runs")
    }
}

fn result(done: &Completed) -> Value {
    assert_eq!(
        done.record.outcome,
        OutcomeKind::Ok,
        "{:?}",
        done.record.error
    );
    serde_json::from_str(done.result_json.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es_module_default_export_gets_event_and_context() {
    let f = fixture_with(config());
    f.deploy(
        "hello",
        spec("export default async function (event, ctx) {\n  return { hi: event.name, fn: ctx.functionName, ns: ctx.namespace, id: ctx.activationId, env: ctx.env.GREETING, deadline: ctx.deadline > Date.now() };\n}"),
    )
    .await;
    let done = f.invoke("hello", json!({"name": "ada"})).await;
    let value = result(&done);
    assert_eq!(value["hi"], "ada");
    assert_eq!(value["fn"], "hello");
    assert_eq!(value["ns"], "shop");
    assert_eq!(value["id"], done.record.id);
    assert_eq!(value["deadline"], true);
    assert_eq!(done.record.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_main_sync_and_async() {
    let f = fixture_with(config());
    f.deploy(
        "sync",
        spec("function main(params) { return { doubled: params.n * 2 }; }"),
    )
    .await;
    f.deploy(
        "later",
        spec("function main(params) { return Promise.resolve({ n: params.n + 1 }); }"),
    )
    .await;
    assert_eq!(
        result(&f.invoke("sync", json!({"n": 21})).await)["doubled"],
        42
    );
    assert_eq!(result(&f.invoke("later", json!({"n": 1})).await)["n"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_are_refused_at_deploy_with_their_position() {
    let f = fixture_with(config());
    let error = f
        .service
        .deploy(
            &f.ns,
            "broken",
            spec("export default function (e) {\n  return {;\n}"),
        )
        .await
        .unwrap_err();
    match error {
        FunctionError::Compile(compile) => {
            assert_eq!(compile.line, Some(2), "{compile:?}");
            assert!(compile.column.is_some(), "{compile:?}");
            assert!(compile.message.contains("SyntaxError") || !compile.message.is_empty());
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    assert!(matches!(
        f.service.get(&f.ns, "broken").await,
        Err(FunctionError::NotFound(_))
    ));
    let no_entry = f
        .service
        .deploy(&f.ns, "empty", spec("const x = 1;"))
        .await
        .unwrap_err();
    assert!(
        matches!(no_entry, FunctionError::Compile(_)),
        "{no_entry:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrown_errors_are_recorded_with_message_and_stack() {
    let f = fixture_with(config());
    f.deploy("fails", spec("function inner() { throw new TypeError('bad input'); }\nexport default function () { return inner(); }")).await;
    let done = f.invoke("fails", json!({})).await;
    assert_eq!(done.record.outcome, OutcomeKind::Error);
    let error = done.record.error.unwrap();
    assert_eq!(error.message, "TypeError: bad input");
    assert!(
        error.stack.unwrap().contains("inner"),
        "the stack names the throwing function"
    );
    let rejected = {
        f.deploy(
            "rejects",
            spec("export default async () => { throw new Error('async boom'); }"),
        )
        .await;
        f.invoke("rejects", json!({})).await
    };
    assert_eq!(rejected.record.error.unwrap().message, "async boom");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loops_time_out_at_the_deadline_and_the_isolate_is_dropped() {
    let f = fixture_with(config());
    let mut looping = spec("export default function () { for (;;) {} }");
    looping.timeout_ms = 200;
    f.deploy("spin", looping).await;
    let started = Instant::now();
    let done = f.invoke("spin", json!({})).await;
    assert_eq!(done.record.outcome, OutcomeKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped near its 200 ms deadline"
    );
    // A timed-out isolate is never reused: the next run is not warm.
    let again = f.invoke("spin", json!({})).await;
    assert_ne!(again.record.start_kind, StartKind::Warm);

    // Waiting on an SDK call past the deadline times out too.
    let mut waiting =
        spec("import { kv } from 'ferrobase';\nexport default async () => kv.get('gate');");
    waiting.timeout_ms = 200;
    f.deploy("waits", waiting).await;
    assert_eq!(
        f.invoke("waits", json!({})).await.record.outcome,
        OutcomeKind::Timeout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bombs_end_as_oom_and_others_keep_running() {
    let f = fixture_with(config());
    let mut bomb = spec(
        "export default function () { const a = []; for (;;) { a.push('x'.repeat(1024) + a.length); } }",
    );
    bomb.memory_mb = 16;
    f.deploy("bomb", bomb).await;
    f.deploy("fine", spec("export default () => ({ ok: true })"))
        .await;
    let done = f.invoke("bomb", json!({})).await;
    assert_eq!(
        done.record.outcome,
        OutcomeKind::Oom,
        "{:?}",
        done.record.error
    );
    assert_eq!(result(&f.invoke("fine", json!({})).await)["ok"], true);
    // Deep recursion is bounded by the stack limit: an error, not a crash.
    f.deploy(
        "deep",
        spec("function f(n) { return f(n + 1) + 1; }\nexport default () => f(0);"),
    )
    .await;
    let deep = f.invoke("deep", json!({})).await;
    assert_eq!(deep.record.outcome, OutcomeKind::Error);
    assert!(deep.record.error.unwrap().message.contains("stack"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_isolates_are_reused_and_cold_starts_are_recorded() {
    let f = fixture_with(FunctionsConfig {
        pool: PoolConfig {
            threads: 1,
            stems_per_thread: 0,
            ..PoolConfig::default()
        },
        ..config()
    });
    f.deploy(
        "counter",
        spec("let calls = 0;\nexport default () => ++calls;"),
    )
    .await;
    let first = f.invoke("counter", json!({})).await;
    assert_eq!(first.record.start_kind, StartKind::Cold);
    let second = f.invoke("counter", json!({})).await;
    assert_eq!(second.record.start_kind, StartKind::Warm);
    // The same isolate served both (module state survived): that is what warm means.
    assert_eq!(result(&second), json!(2));
    assert_eq!(
        f.service
            .pool_stats()
            .warm_idle
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarmed_stem_cells_are_specialised_on_first_use() {
    let f = fixture_with(FunctionsConfig {
        pool: PoolConfig {
            threads: 1,
            stems_per_thread: 1,
            ..PoolConfig::default()
        },
        ..config()
    });
    f.deploy("a", spec("export default () => 'a'")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while f
        .service
        .pool_stats()
        .stems
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(Instant::now() < deadline, "a stem cell is pre-warmed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        f.invoke("a", json!({})).await.record.start_kind,
        StartKind::Prewarmed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_isolates_are_evicted_by_ttl_and_memory_budget() {
    let f = fixture_with(FunctionsConfig {
        pool: PoolConfig {
            threads: 1,
            stems_per_thread: 0,
            idle_ttl: Duration::from_millis(50),
            ..PoolConfig::default()
        },
        ..config()
    });
    f.deploy("brief", spec("export default () => 1")).await;
    f.invoke("brief", json!({})).await;
    let stats = f.service.pool_stats();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.warm_idle.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle isolate is evicted after its TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stats.evicted.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_ne!(
        f.invoke("brief", json!({})).await.record.start_kind,
        StartKind::Warm
    );

    let tight = fixture_with(FunctionsConfig {
        pool: PoolConfig {
            threads: 1,
            stems_per_thread: 0,
            memory_budget_bytes: 1,
            ..PoolConfig::default()
        },
        ..config()
    });
    tight
        .deploy(
            "big",
            spec("const data = 'x'.repeat(100000);\nexport default () => data.length"),
        )
        .await;
    tight.invoke("big", json!({})).await;
    let stats = tight.service.pool_stats();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.warm_idle.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        assert!(
            Instant::now() < deadline,
            "over the memory budget, the LRU isolate goes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_queues_then_refuses() {
    let f = fixture_with(FunctionsConfig {
        max_waiting: 1,
        ..config()
    });
    let mut gated = spec(
        "import { kv } from 'ferrobase';\nexport default async () => { await kv.get('gate'); return 'done'; };",
    );
    gated.concurrency = 1;
    f.deploy("gated", gated).await;
    let running = tokio::spawn({
        let service = f.service.clone();
        let ns = f.ns.clone();
        async move {
            service
                .invoke(Invocation {
                    namespace: ns,
                    target: "gated".into(),
                    event: json!({}),
                    cause: Cause::Request,
                    causation: Causation::default(),
                })
                .await
        }
    });
    // Wait until the first activation holds its slot (its SDK call reached the host).
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.host.calls.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let queued = f.service.start_invoke(Invocation {
        namespace: f.ns.clone(),
        target: "gated".into(),
        event: json!({}),
        cause: Cause::Request,
        causation: Causation::default(),
    });
    let queued_id = queued.await.expect("one may wait");
    let refused = f
        .service
        .invoke(Invocation {
            namespace: f.ns.clone(),
            target: "gated".into(),
            event: json!({}),
            cause: Cause::Request,
            causation: Causation::default(),
        })
        .await;
    assert!(
        matches!(refused, Err(FunctionError::Busy(_))),
        "{refused:?}"
    );
    f.host.gate.notify_waiters();
    let first = running.await.unwrap().unwrap();
    assert_eq!(result(&first), json!("done"));
    // The queued activation runs once the slot frees, and records its outcome.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        f.host.gate.notify_waiters();
        if let Ok(record) = f.service.activation(&f.ns, &queued_id).await {
            assert_eq!(record.outcome, OutcomeKind::Ok);
            break;
        }
        assert!(Instant::now() < deadline, "the queued activation completes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_must_be_json_and_logs_are_bounded_with_a_marker() {
    let f = fixture_with(config());
    f.deploy("fnresult", spec("export default () => (() => 1)"))
        .await;
    let done = f.invoke("fnresult", json!({})).await;
    assert_eq!(done.record.outcome, OutcomeKind::Error);
    assert!(
        done.record
            .error
            .unwrap()
            .message
            .contains("not JSON-serialisable")
    );
    f.deploy("big", spec("export default () => 10n")).await;
    assert_eq!(
        f.invoke("big", json!({})).await.record.outcome,
        OutcomeKind::Error
    );
    f.deploy("undef", spec("export default () => undefined"))
        .await;
    assert_eq!(result(&f.invoke("undef", json!({})).await), Value::Null);

    f.deploy("chatty", spec("export default () => { for (let i = 0; i < 5000; i++) console.log('line', i, {i}); return 'ok'; }")).await;
    let chatty = f.invoke("chatty", json!({})).await;
    assert_eq!(chatty.record.outcome, OutcomeKind::Ok);
    assert!(chatty.record.logs_truncated);
    assert_eq!(chatty.record.logs[0], "log: line 0 {\"i\":0}");
    let marker = chatty.record.logs.last().unwrap();
    assert!(
        marker.contains("log truncated") && marker.contains("4000 more lines"),
        "{marker}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_immutable_and_addressable() {
    let f = fixture_with(config());
    assert_eq!(f.deploy("v", spec("export default () => 'one'")).await, 1);
    assert_eq!(f.deploy("v", spec("export default () => 'two'")).await, 2);
    assert_eq!(result(&f.invoke("v", json!({})).await), json!("two"));
    assert_eq!(
        result(&f.invoke("v@1", json!({})).await),
        json!("one"),
        "rollback by version"
    );
    let versions = f.service.versions(&f.ns, "v").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    f.service.delete(&f.ns, "v").await.unwrap();
    assert!(matches!(
        f.service.get(&f.ns, "v").await,
        Err(FunctionError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_calls_reach_the_host_as_the_function_and_fetch_is_allow_listed() {
    let f = fixture_with(config());
    f.deploy(
        "sdk",
        spec("import { kv } from 'ferrobase';\nexport default async (e) => {\n  await kv.put('greeting', { text: e.text });\n  const back = await kv.get('greeting');\n  const ok = await fetch('https://api.example.com/x');\n  let denied;\n  try { await fetch('https://evil.example.net/'); } catch (err) { denied = err.code; }\n  return { back, fetched: await ok.text(), denied };\n};"),
    )
    .await;
    let done = f.invoke("sdk", json!({"text": "hi"})).await;
    let value = result(&done);
    assert_eq!(value["back"], json!({"text": "hi"}));
    assert_eq!(value["fetched"], "fetched");
    assert_eq!(value["denied"], "permission_denied");
    let calls = f.host.calls.lock().unwrap();
    assert!(
        calls
            .iter()
            .all(|(ctx, _)| ctx.namespace.as_str() == "shop" && ctx.function == "sdk")
    );
    assert!(
        calls
            .iter()
            .all(|(ctx, _)| ctx.causation.cause.as_deref() == Some(done.record.id.as_str()))
    );
    assert!(
        !calls
            .iter()
            .any(|(_, op)| matches!(op, HostOp::Fetch { url, .. } if url.contains("evil"))),
        "denied fetches never reach the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_records_are_durable_and_listed_newest_first() {
    let f = fixture_with(config());
    f.deploy(
        "rec",
        spec("export default (e) => { console.log('got', e.n); return e.n; }"),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(f.invoke("rec", json!({"n": n})).await.record.id);
    }
    let record = f.service.activation(&f.ns, &ids[1]).await.unwrap();
    assert_eq!(record.result, Some(json!(1)));
    assert_eq!(record.logs, vec!["log: got 1"]);
    assert!(record.billed_gb_seconds > 0.0);
    assert_eq!(record.memory_mb, 128);
    let listed = f
        .service
        .activations(&f.ns, Some("rec"), None, 10)
        .await
        .unwrap();
    let listed_ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        listed_ids,
        vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    let after = f
        .service
        .activations(&f.ns, None, Some(&ids[2]), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_never_see_each_others_globals_or_the_host() {
    let f = fixture_with(config());
    f.deploy("setter", spec("export default () => { globalThis.secret = 'from setter'; return typeof globalThis.secret; }")).await;
    f.deploy(
        "reader",
        spec("export default () => ({ secret: typeof globalThis.secret, process: typeof process, require: typeof require, host: typeof __ferrobase_host, std: typeof std, os: typeof os })"),
    )
    .await;
    assert_eq!(
        result(&f.invoke("setter", json!({})).await),
        json!("string")
    );
    let seen = result(&f.invoke("reader", json!({})).await);
    assert_eq!(
        seen,
        json!({"secret": "undefined", "process": "undefined", "require": "undefined", "host": "undefined", "std": "undefined", "os": "undefined"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_oldest_activations_beyond_the_count() {
    use ferrobase_functions::activations::{ActivationRetention, prune};
    let kv = Arc::new(MemoryEngine::new(
        ManualClock::starting_now(),
        KvLimits::default(),
    ));
    let records = Arc::new(KvRecordStore::new(kv));
    let service =
        FunctionService::start(records.clone(), Arc::new(TestHost::default()), config()).unwrap();
    let ns = Namespace::parse("shop").unwrap();
    service
        .deploy(&ns, "r", spec("export default (e) => e.n"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let done = service
            .invoke(Invocation {
                namespace: ns.clone(),
                target: "r".into(),
                event: json!({"n": n}),
                cause: Cause::Request,
                causation: Causation::default(),
            })
            .await
            .unwrap();
        ids.push(done.record.id);
    }
    // Wait until the recorder has made all five durable.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ferrobase_core::records::RecordStore::scan(&*records, &ns, "act/", None, 100)
        .await
        .unwrap()
        .len()
        < 5
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let retention = ActivationRetention {
        max_per_namespace: 2,
        ..ActivationRetention::default()
    };
    assert_eq!(prune(&*records, &ns, &retention).await.unwrap(), 3);
    let kept = service.activations(&ns, Some("r"), None, 10).await.unwrap();
    let kept_ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        kept_ids,
        vec![ids[4].as_str(), ids[3].as_str()],
        "the newest two remain"
    );
    assert!(matches!(
        service.activation(&ns, &ids[0]).await,
        Err(FunctionError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_pass_each_result_on_and_link_their_steps() {
    let f = fixture_with(config());
    f.deploy("double", spec("export default (e) => ({ n: e.n * 2 })"))
        .await;
    f.deploy("inc", spec("function main(p) { return { n: p.n + 1 }; }"))
        .await;
    f.deploy(
        "fail",
        spec("export default () => { throw new Error('step broke'); }"),
    )
    .await;
    let sequence = |steps: Value| -> FunctionSpec {
        serde_json::from_value(json!({"kind": "sequence", "steps": steps})).unwrap()
    };
    f.deploy("pipeline", sequence(json!(["double", "inc", "double@1"])))
        .await;
    let done = f.invoke("pipeline", json!({"n": 5})).await;
    assert_eq!(result(&done), json!({"n": 22}));
    assert_eq!(
        done.record.steps.len(),
        3,
        "the record links every step's activation"
    );
    for step in &done.record.steps {
        let step_record = f.service.activation(&f.ns, step).await.unwrap();
        assert_eq!(step_record.outcome, OutcomeKind::Ok);
    }
    assert_eq!(
        done.record.billed_gb_seconds, 0.0,
        "steps are billed, not the sequence"
    );

    // Sequences nest, and a failing step ends the sequence with its error.
    f.deploy("outer", sequence(json!(["pipeline", "fail", "inc"])))
        .await;
    let failed = f.invoke("outer", json!({"n": 1})).await;
    assert_eq!(failed.record.outcome, OutcomeKind::Error);
    assert_eq!(failed.record.error.unwrap().message, "step broke");
    assert_eq!(failed.record.steps.len(), 2, "the third step never ran");

    // Deploys refuse missing steps, cycles and code in sequences.
    let missing = f
        .service
        .deploy(&f.ns, "bad", sequence(json!(["nope"])))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
    let cycle = f
        .service
        .deploy(&f.ns, "pipeline", sequence(json!(["outer"])))
        .await
        .unwrap_err();
    assert!(cycle.to_string().contains("would run itself"), "{cycle}");
    let with_code: FunctionSpec =
        serde_json::from_value(json!({"kind": "sequence", "steps": ["inc"], "code": "x"})).unwrap();
    assert!(f.service.deploy(&f.ns, "bad", with_code).await.is_err());
}

/// Idempotency keys belong to writes in the order the function makes them, whatever order the
/// host answers in: a retry of the same event that runs its writes concurrently
/// (`Promise.all`) gives every write the key its earlier attempt used, and reads take none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_follow_call_order_on_every_attempt() {
    let f = fixture_with(config());
    f.deploy(
        "fanout",
        spec(
            "import { kv } from 'ferrobase';\n\
             export default async () => {\n\
               const gated = kv.get('gate');\n\
               const writes = Promise.all([kv.put('a', 1), kv.get('x'), kv.put('b', 2)]);\n\
               await writes;\n\
               await gated;\n\
               await kv.delete('c');\n\
               return 'ok';\n\
             };",
        ),
    )
    .await;

    let mut keys_per_attempt = Vec::new();
    for attempt in 1..=2 {
        f.host.calls.lock().unwrap().clear();
        let service = f.service.clone();
        let ns = f.ns.clone();
        let run = tokio::spawn(async move {
            service
                .invoke(Invocation {
                    namespace: ns,
                    target: "fanout".into(),
                    event: json!({}),
                    cause: Cause::Event {
                        id: "01EVENT".into(),
                        attempt,
                    },
                    causation: Causation::default(),
                })
                .await
        });
        // The gated read stays open while the writes after it complete.
        let deadline = Instant::now() + Duration::from_secs(10);
        while f.host.calls.lock().unwrap().len() < 4 {
            assert!(Instant::now() < deadline, "the calls never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        f.host.gate.notify_one();
        let done = run.await.unwrap().unwrap();
        // The test host refuses deletes, so the activation fails after its third write: the
        // position of that write must still be the third key.
        assert_eq!(done.record.outcome, OutcomeKind::Error);
        let keys: Vec<(String, Option<String>)> = f
            .host
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(context, op)| {
                let name = match op {
                    HostOp::KvGet { key } | HostOp::KvDelete { key, .. } => key.clone(),
                    HostOp::KvPut { key, .. } => key.clone(),
                    other => panic!("unexpected call {other:?}"),
                };
                (name, context.causation.write_key.clone())
            })
            .collect();
        keys_per_attempt.push(keys);
    }
    let expected = |name: &str| -> Option<String> {
        match name {
            "a" => Some("01EVENT/fanout/0".into()),
            "b" => Some("01EVENT/fanout/1".into()),
            "c" => Some("01EVENT/fanout/2".into()),
            _ => None,
        }
    };
    for keys in &keys_per_attempt {
        assert_eq!(keys.len(), 5, "{keys:?}");
        for (name, key) in keys {
            assert_eq!(key, &expected(name), "call {name} in {keys:?}");
        }
    }

    // Calls made on request (no event) carry no keys.
    f.host.calls.lock().unwrap().clear();
    f.host.gate.notify_one();
    f.invoke("fanout", json!({})).await;
    assert!(
        f.host
            .calls
            .lock()
            .unwrap()
            .iter()
            .all(|(context, _)| context.causation.write_key.is_none())
    );
}
