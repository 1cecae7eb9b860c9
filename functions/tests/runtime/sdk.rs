//! The SDK at the host boundary: calls reach the host as the function, fetch is
//! allow-listed, and writes carry idempotency keys in call order.

use crate::harness::*;

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
        !calls.iter().any(
            |(_, op)| matches!(op, HostOp::Fetch { url, .. } if url.as_str().contains("evil"))
        ),
        "denied fetches never reach the host"
    );
}

/// The engine refuses on the URL the host would send: tricks that an ad-hoc parser reads as
/// the allowed host, credentials, other schemes and private IP literals never reach the host,
/// and the function is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_fetches_say_why_and_never_reach_the_host() {
    let f = fixture_with(config());
    f.deploy(
        "probe",
        spec("export default async (e) => {\n  const out = [];\n  for (const url of e.urls) {\n    try { await fetch(url); out.push('sent'); } catch (err) { out.push(err.code + ': ' + err.message); }\n  }\n  return out;\n};"),
    )
    .await;
    let urls = [
        "http://127.0.0.1:8080\\@api.example.com/",
        "http://user:pw@api.example.com/",
        "ftp://api.example.com/",
        "not a url",
        "https://API.example.com./ok",
    ];
    let done = f.invoke("probe", json!({ "urls": urls })).await;
    let value = result(&done);
    let said: Vec<&str> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        said[0].starts_with("permission_denied: fetch refused: host not allowed: 127.0.0.1"),
        "{}",
        said[0]
    );
    assert!(
        said[1].starts_with("permission_denied: fetch refused: credentials"),
        "{}",
        said[1]
    );
    assert!(
        said[2].starts_with("permission_denied: fetch refused: scheme \"ftp\""),
        "{}",
        said[2]
    );
    assert!(
        said[3].starts_with("invalid_argument: ") && said[3].contains("invalid URL"),
        "{}",
        said[3]
    );
    assert_eq!(said[4], "sent");
    let calls = f.host.calls.lock().unwrap();
    let fetched: Vec<&str> = calls
        .iter()
        .filter_map(|(_, op)| match op {
            HostOp::Fetch { url, .. } => Some(url.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(fetched, ["https://api.example.com./ok"]);
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
