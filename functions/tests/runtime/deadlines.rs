//! Deadlines that hold whatever the JavaScript does: native builtins that run for seconds
//! without polling QuickJS's interrupt handler end as `timeout` at the deadline, the executor
//! thread they hold is abandoned and replaced, and other functions keep running meanwhile.
//!
//! The builtins here run far longer than any deadline or poll in these tests (seconds to tens
//! of seconds), so "still running" assertions hold however fast the machine is; on a runtime
//! without the supervisor each of them answers `ok` once the builtin returns.

use crate::harness::*;

/// A huge array-like: `reverse` walks all of it in one native call, for ten seconds and more
/// (a minute in a debug build), far longer than any poll in these tests.
const REVERSE_LONG: &str = "Array.prototype.reverse.call({length: 2e8});";

fn pool(threads: usize, max_abandoned_threads: usize) -> FunctionsConfig {
    FunctionsConfig {
        pool: PoolConfig {
            threads,
            stems_per_thread: 0,
            max_abandoned_threads,
            ..PoolConfig::default()
        },
        ..config()
    }
}

fn stuck(body: &str, timeout_ms: u64) -> FunctionSpec {
    let mut spec = spec(&format!(
        "import {{ kv }} from 'ferrobase';\nexport default async () => {{ await kv.get('started'); {body} return 'done'; }}"
    ));
    spec.timeout_ms = timeout_ms;
    spec
}

fn invocation(ns: &Namespace, target: &str) -> Invocation {
    Invocation {
        namespace: ns.clone(),
        target: target.to_owned(),
        event: json!({}),
        cause: Cause::Request,
        causation: Causation::default(),
    }
}

fn spawn_invoke(f: &Fixture, target: &str) -> tokio::task::JoinHandle<Completed> {
    let service = f.service.clone();
    let invocation = invocation(&f.ns, target);
    tokio::spawn(async move { service.invoke(invocation).await.expect("invocation runs") })
}

/// Waits until `count` SDK calls reached the host (the activations are running).
async fn wait_for_calls(f: &Fixture, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.host.calls.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "{count} activations start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `count` abandoned threads are running: the supervisor abandons a stuck thread
/// on its next look after the deadline's grace, which may be just after the answer.
async fn wait_for_abandoned(f: &Fixture, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while abandoned_running(f) != count {
        assert!(
            Instant::now() < deadline,
            "{count} abandoned threads are running, not {}",
            abandoned_running(f)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn abandoned_running(f: &Fixture) -> usize {
    f.service
        .pool_stats()
        .abandoned_running
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `body` in a function with a 1 s deadline (ample to reach the builtin from a cold start on a loaded machine): it ends as `timeout`, its record says
/// so, and the pool (one thread, now replaced) still runs the next function.
async fn times_out(body: &str) {
    let f = fixture_with(pool(1, 4));
    f.deploy("stuck", stuck(body, 1000)).await;
    let done = f.invoke("stuck", json!({})).await;
    assert_eq!(
        done.record.outcome,
        OutcomeKind::Timeout,
        "{:?}",
        done.record
    );
    assert!(done.result_json.is_none());
    assert!(
        done.record
            .error
            .as_ref()
            .is_some_and(|e| e.message.contains("deadline")),
        "{:?}",
        done.record.error
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        if let Ok(record) = f.service.activation(&f.ns, &done.record.id).await {
            break record;
        }
        assert!(Instant::now() < deadline, "the activation is recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(record.outcome, OutcomeKind::Timeout);
    f.deploy("fine", spec("export default () => 'fine'")).await;
    assert_eq!(result(&f.invoke("fine", json!({})).await), json!("fine"));
    wait_for_abandoned(&f, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_of_a_huge_array_like_times_out() {
    times_out("Array.prototype.reverse.call({length: 1e8});").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_of_a_huge_sparse_array_times_out() {
    times_out("new Array(1e8).join('');").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_within_a_huge_array_like_times_out() {
    times_out("Array.prototype.copyWithin.call({length: 8e7}, 0, 1);").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_of_a_huge_array_like_times_out() {
    times_out("Array.prototype.splice.call({length: 8e7}, 0, 1);").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quadratic_index_of_times_out() {
    // A needle that almost matches at every position: one native call, n × m comparisons.
    times_out("const s = 'a'.repeat(2e5); s.indexOf('a'.repeat(1e4) + 'b');").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_threads_do_not_hold_up_another_namespace() {
    let f = fixture_with(pool(2, 4));
    f.deploy("stuck", stuck(REVERSE_LONG, 1000)).await;
    let other = Namespace::parse("other").unwrap();
    f.service
        .deploy(&other, "trivial", spec("export default () => 'trivial'"))
        .await
        .expect("deploys");
    // Both threads get a stuck activation; the trivial one is queued behind one of them.
    let first = spawn_invoke(&f, "stuck");
    let second = spawn_invoke(&f, "stuck");
    wait_for_calls(&f, 2).await;
    let trivial = tokio::time::timeout(
        Duration::from_secs(10),
        f.service.invoke(invocation(&other, "trivial")),
    )
    .await
    .expect("the trivial function is not held up by the stuck ones")
    .expect("invocation runs");
    assert_eq!(result(&trivial), json!("trivial"));
    for stuck in [first, second] {
        let done = stuck.await.unwrap();
        assert_eq!(
            done.record.outcome,
            OutcomeKind::Timeout,
            "{:?}",
            done.record
        );
    }
    // Both builtins were (and are) still running while all of the above completed.
    wait_for_abandoned(&f, 2).await;
    assert_eq!(
        f.service
            .pool_stats()
            .abandoned
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_calls_on_a_stuck_thread_end_at_their_own_deadline() {
    let f = fixture_with(pool(1, 4));
    let mut waits =
        spec("import { kv } from 'ferrobase';\nexport default async () => kv.get('gate');");
    waits.timeout_ms = 2000;
    f.deploy("waits", waits).await;
    f.deploy("stuck", stuck(REVERSE_LONG, 1000)).await;
    // The waiting activation holds an isolate on the only thread, then the thread gets stuck.
    let waiting = spawn_invoke(&f, "waits");
    wait_for_calls(&f, 1).await;
    let stuck = spawn_invoke(&f, "stuck");
    let stuck = stuck.await.unwrap();
    assert_eq!(
        stuck.record.outcome,
        OutcomeKind::Timeout,
        "{:?}",
        stuck.record
    );
    let waiting = waiting.await.unwrap();
    assert_eq!(
        waiting.record.outcome,
        OutcomeKind::Timeout,
        "{:?}",
        waiting.record
    );
    wait_for_abandoned(&f, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_threads_are_bounded_then_new_work_is_refused() {
    let f = fixture_with(pool(1, 1));
    f.deploy("stuck", stuck(REVERSE_LONG, 1000)).await;
    f.deploy("fine", spec("export default () => 'fine'")).await;
    // The first stuck thread is replaced; the replacement gets stuck too and is not.
    for _ in 0..2 {
        let done = f.invoke("stuck", json!({})).await;
        assert_eq!(
            done.record.outcome,
            OutcomeKind::Timeout,
            "{:?}",
            done.record
        );
    }
    wait_for_abandoned(&f, 2).await;
    let refused = f.service.invoke(invocation(&f.ns, "fine")).await;
    match refused {
        Err(FunctionError::Unavailable(message)) => {
            assert!(message.contains("abandoned"), "{message}");
        }
        other => panic!("expected the pool to refuse, got {other:?}"),
    }
    let refused = f.service.start_invoke(invocation(&f.ns, "fine")).await;
    assert!(
        matches!(refused, Err(FunctionError::Unavailable(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_thread_that_returns_exits_and_frees_its_place() {
    let f = fixture_with(pool(1, 0));
    // Runs a few seconds in a debug build: long enough to be abandoned, short enough to wait
    // for.
    f.deploy(
        "stuck",
        stuck("Array.prototype.reverse.call({length: 5e7});", 1000),
    )
    .await;
    f.deploy("fine", spec("export default () => 'fine'")).await;
    let done = f.invoke("stuck", json!({})).await;
    assert_eq!(
        done.record.outcome,
        OutcomeKind::Timeout,
        "{:?}",
        done.record
    );
    wait_for_abandoned(&f, 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while abandoned_running(&f) > 0 {
        assert!(Instant::now() < deadline, "the abandoned thread exits");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its slot is refilled: work runs again.
    let fine = loop {
        match f.service.invoke(invocation(&f.ns, "fine")).await {
            Ok(done) => break done,
            Err(FunctionError::Unavailable(_)) => {
                assert!(Instant::now() < deadline, "a fresh thread takes the slot");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    assert_eq!(result(&fine), json!("fine"));
    let stats = f.service.pool_stats();
    assert_eq!(
        stats.abandoned.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_level_code_stuck_at_deploy_is_refused() {
    let f = fixture_with(pool(1, 4));
    let mut stuck = spec(&format!("{REVERSE_LONG}\nexport default () => 'loaded';"));
    stuck.timeout_ms = 300;
    let refused = f.service.deploy(&f.ns, "toplevel", stuck).await;
    match refused {
        Err(FunctionError::Compile(error)) => {
            assert!(error.message.contains("deploy check"), "{error:?}");
        }
        other => panic!("expected the deploy to be refused, got {other:?}"),
    }
    assert!(matches!(
        f.service.get(&f.ns, "toplevel").await,
        Err(FunctionError::NotFound(_))
    ));
    // The check's thread was replaced; deploys and activations go on.
    f.deploy("fine", spec("export default () => 'fine'")).await;
    assert_eq!(result(&f.invoke("fine", json!({})).await), json!("fine"));
    // The top-level code is still running on the abandoned thread.
    wait_for_abandoned(&f, 1).await;
}
