//! Limits: the deadline, the heap limit and the concurrency cap.

use crate::harness::*;

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
