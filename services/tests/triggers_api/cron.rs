//! Cron triggers: ticks on schedule, and ticks missed while the service was down.

use crate::app::*;

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

async fn cron_restart(catch_up: bool) -> (Vec<(i64, bool)>, i64, i64) {
    let (kv, records, functions, _dir) = standalone_services();
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
