//! The isolate pool: warm reuse, pre-warmed stem isolates, eviction by idle TTL and memory.

use crate::harness::*;

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
