//! Delivery: retries, dead letters and replay, loop cut-off, idempotent retries, ordering
//! per subject, and dead letters across a crash.

use crate::app::*;

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
    let (kv, records, functions, _dir) = standalone_services();
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
            ferrobase_functions::triggers::MissingFunction::Refuse,
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
