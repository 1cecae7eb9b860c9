//! Crash safety of object storage through the real binary: every PUT acknowledged before a
//! `kill -9` is there afterwards, whole, with its ETag and its event; a PUT the kill cut off
//! is either wholly there or not at all; and objects and the change log agree.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrobase_tests::Server;
use reqwest::StatusCode;
use serde_json::Value;

const NS: &str = "crash";
const WRITERS: usize = 4;
/// Keys per writer: writers cycle over them, so most PUTs replace an object.
const KEYS_PER_WRITER: usize = 12;
/// Kill once at least this many PUTs were acknowledged (with more still in flight).
const ACKED_BEFORE_KILL: usize = 120;

/// A body that names its writer and attempt, in sizes that take each write path: one
/// hand-over to the blob writer, and the pipelined path for bodies over 1 MiB.
fn body(writer: usize, attempt: usize) -> Vec<u8> {
    let size = [1024, 64 * 1024, 1536 * 1024][attempt % 3];
    let stamp = format!("writer {writer} attempt {attempt};");
    stamp
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect()
}

/// One PUT as a writer made it.
#[derive(Debug, Clone)]
struct Attempt {
    writer: usize,
    attempt: usize,
    /// The ETag answered, when the PUT was acknowledged.
    acked_etag: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_objects_and_their_events_survive_kill_9() {
    let mut server = Server::start().expect("server starts");
    let admin = server.token("admin", Some(NS), "admin").unwrap();
    let http = reqwest::Client::new();
    let base = format!("{}/v1/storage/{NS}/objects", server.url);
    let created = http.put(&base).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::OK);

    // Per key, its attempts in order (a key belongs to one writer, which makes one request
    // at a time, so at most its last attempt is in flight at the kill).
    let attempts: Arc<Mutex<BTreeMap<String, Vec<Attempt>>>> = Arc::default();
    let acked_count = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        let (attempts, acked_count, stop) = (attempts.clone(), acked_count.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut failures = 0;
            for attempt in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let key = format!("w{writer}/k{:02}", attempt % KEYS_PER_WRITER);
                attempts
                    .lock()
                    .unwrap()
                    .entry(key.clone())
                    .or_default()
                    .push(Attempt {
                        writer,
                        attempt,
                        acked_etag: None,
                    });
                let answer = http
                    .put(format!("{base}/{key}"))
                    .bearer_auth(&admin)
                    .body(body(writer, attempt))
                    .send()
                    .await;
                match answer {
                    Ok(answer) if answer.status() == StatusCode::OK => {
                        let info: Value = answer.json().await.unwrap();
                        let etag = info["etag"].as_str().unwrap().to_owned();
                        let mut attempts = attempts.lock().unwrap();
                        let last = attempts.get_mut(&key).unwrap().last_mut().unwrap();
                        last.acked_etag = Some(etag);
                        *acked_count.lock().unwrap() += 1;
                    }
                    Ok(answer) => panic!("PUT {key} answered {}", answer.status()),
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

    let deadline = Instant::now() + Duration::from_secs(120);
    while *acked_count.lock().unwrap() < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "PUTs are too slow to reach the kill point"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_hard();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let attempts = attempts.lock().unwrap().clone();

    server.restart().expect("server restarts on the same data");
    let admin = server.token("admin", Some(NS), "admin").unwrap();
    let base = format!("{}/v1/storage/{NS}/objects", server.url);

    // Each key holds its last acknowledged body, or the one that was in flight after it.
    let mut stored_etags = BTreeMap::new();
    for (key, tries) in &attempts {
        let last_acked = tries.iter().rposition(|a| a.acked_etag.is_some());
        let allowed: Vec<&Attempt> = match last_acked {
            Some(index) => tries[index..].iter().collect(),
            None => tries.iter().collect(),
        };
        assert!(
            allowed.len() <= 2,
            "{key}: one attempt at most is in flight"
        );
        let answer = http
            .get(format!("{base}/{key}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        if answer.status() == StatusCode::NOT_FOUND {
            assert_eq!(last_acked, None, "acknowledged {key} was lost");
            continue;
        }
        assert_eq!(answer.status(), StatusCode::OK);
        let etag = answer.headers()["etag"]
            .to_str()
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let bytes = answer.bytes().await.unwrap();
        let found = allowed
            .iter()
            .find(|a| body(a.writer, a.attempt) == bytes)
            .unwrap_or_else(|| panic!("{key} holds a body no allowed PUT sent"));
        if let Some(acked) = &found.acked_etag {
            assert_eq!(&etag, acked, "{key}: ETag changed across the crash");
        }
        stored_etags.insert(format!("objects/{key}"), etag);
    }

    // Every acknowledged PUT has its event, and the log's last word on each object is the
    // object as stored: data and log agree, crash or not.
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = http
            .get(format!(
                "{}/v1/events/{NS}?after={after}&limit=1000",
                server.url
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = page["events"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = last["ferrobaseseq"].as_u64().unwrap();
        events.extend(page);
    }
    let mut last_logged = BTreeMap::new();
    let mut logged_etags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &events {
        assert_eq!(event["type"], "ferrobase.storage.object.created");
        let subject = event["subject"].as_str().unwrap().to_owned();
        let etag = event["data"]["etag"].as_str().unwrap().to_owned();
        logged_etags
            .entry(subject.clone())
            .or_default()
            .push(etag.clone());
        last_logged.insert(subject, etag);
    }
    for (key, tries) in &attempts {
        let subject = format!("objects/{key}");
        for acked in tries.iter().filter_map(|a| a.acked_etag.as_ref()) {
            assert!(
                logged_etags
                    .get(&subject)
                    .is_some_and(|etags| etags.contains(acked)),
                "the event of an acknowledged PUT of {key} is missing"
            );
        }
    }
    assert_eq!(
        last_logged, stored_etags,
        "objects and change log disagree after the crash"
    );

    // Listing shows exactly the stored objects: nothing half written is visible.
    let listing: Value = http
        .get(format!("{base}?limit=1000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<String> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| format!("objects/{}", object["key"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, stored_etags.keys().cloned().collect::<Vec<_>>());
}
