//! Crash safety of the KV service through the real binary: writes acknowledged before a
//! `kill -9` survive with their events, and no event exists for a write that was not applied.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrobase_core::EventType;
use ferrobase_sdk::PutOptions;
use ferrobase_tests::Server;

const WRITERS: usize = 8;
/// Kill once at least this many writes were acknowledged (with more still in flight).
const ACKED_BEFORE_KILL: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_and_their_events_survive_kill_9() {
    let mut server = Server::start().expect("server starts");
    let client = server.client("crash").unwrap();
    let acked: Arc<Mutex<Vec<(String, String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut failures = 0;
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let key = format!("w{writer}/{n:06}");
                let value = format!("value of {key}");
                match client
                    .kv_put("crash", &key, value.clone(), &PutOptions::default())
                    .await
                {
                    Ok(stored) => acked.lock().unwrap().push((key, value, stored.version)),
                    // After the kill every request fails; a few failures mean it is down.
                    Err(_) => {
                        failures += 1;
                        if failures > 3 {
                            break;
                        }
                    }
                }
            }
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "writes are too slow to reach the kill point"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Writers are mid-stream: the kill lands between requests, in the middle of them, and
    // between commit and acknowledgement.
    server.kill_hard();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    server.restart().expect("server restarts on the same data");
    let client = server.client("crash").unwrap();

    // Every acknowledged write is there, with its value and version.
    for (key, value, version) in &acked {
        let stored = client.kv_get("crash", key).await.unwrap();
        let stored = stored.unwrap_or_else(|| panic!("acknowledged {key} was lost"));
        assert_eq!(stored.bytes, value.as_bytes(), "{key}");
        assert_eq!(stored.version, *version, "{key}");
    }

    // The whole log, in order and without gaps.
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = client.events("crash", after, 1000).await.unwrap();
        if page.events.is_empty() {
            break;
        }
        after = page.next_after;
        events.extend(page.events);
    }
    let seqs: Vec<u64> = events.iter().map(|e| e.ferrobaseseq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "log has gaps"
    );
    let logged: HashMap<String, u64> = events
        .iter()
        .map(|e| {
            assert_eq!(e.event_type, EventType::KvPut);
            (e.subject.clone(), e.data["version"].as_u64().unwrap())
        })
        .collect();

    // Every acknowledged write has its event.
    for (key, _, version) in &acked {
        assert_eq!(
            logged.get(key),
            Some(version),
            "event of acknowledged {key} missing"
        );
    }

    // Every key present has its event and every event its key: data and log agree exactly,
    // including writes that were applied but whose acknowledgement the kill cut off.
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .kv_list("crash", "", after.as_deref(), 1000)
            .await
            .unwrap();
        stored.extend(page.items.into_iter().map(|item| (item.key, item.version)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let logged: BTreeMap<String, u64> = logged.into_iter().collect();
    assert_eq!(
        stored, logged,
        "data and change log disagree after the crash"
    );
}
