//! Activation records: durable, listed newest first, bounded by retention.

use crate::harness::*;
use ferrobase_core::Clock as _;

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
    assert_eq!(
        prune(
            &*records,
            &ns,
            &retention,
            ferrobase_core::SystemClock.now_ms()
        )
        .await
        .unwrap(),
        3
    );
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
    // The age limit counts from the time `prune` is given: a day past the limit, none is left.
    let later =
        ferrobase_core::SystemClock.now_ms() + (retention.max_age.as_millis() as u64) + 86_400_000;
    assert_eq!(prune(&*records, &ns, &retention, later).await.unwrap(), 2);
    assert!(
        service
            .activations(&ns, Some("r"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
