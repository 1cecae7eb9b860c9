//! Functions reaching the queue and object storage through the SDK, on the real binary: what
//! a function publishes can be pulled, what it stores can be downloaded, and the storage event
//! names the activation as its cause.

use ferrobase_tests::Server;
use serde_json::{Value, json};

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_publish_to_queues_and_write_objects() {
    let server = Server::start().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let base = server.url.clone();
    use reqwest::Method;

    let (status, body) = call(
        &http,
        Method::PUT,
        &format!("{base}/v1/queues/shop/jobs"),
        &token,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &http,
        Method::PUT,
        &format!("{base}/v1/storage/shop/reports"),
        &token,
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");

    let code = "import { queue, storage } from 'ferrobase';\nexport default async (e) => {\n  const published = await queue.publish('jobs', { order: e.id });\n  const stored = await storage.put('reports', 'daily/' + e.id + '.json', { total: e.total });\n  const back = await storage.get('reports', 'daily/' + e.id + '.json');\n  const listed = await storage.list('reports', { prefix: 'daily/' });\n  const missing = await storage.get('reports', 'nope');\n  let noBucket;\n  try { await storage.put('nobucket', 'k', 'v'); } catch (err) { noBucket = err.code; }\n  return { ids: published.ids.length, etag: stored.etag, back: JSON.parse(back.body), type: back.contentType, keys: listed.objects.map(o => o.key), missing, noBucket };\n};";
    let (status, body) = call(
        &http,
        Method::PUT,
        &format!("{base}/v1/functions/shop/report"),
        &token,
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let response = http
        .post(format!("{base}/v1/functions/shop/report/invoke"))
        .bearer_auth(&token)
        .json(&json!({"id": 7, "total": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let activation = response.headers()["x-ferrobase-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["ids"], 1);
    assert_eq!(result["back"], json!({"total": 12}));
    assert_eq!(result["type"], "application/json");
    assert_eq!(result["keys"], json!(["daily/7.json"]));
    assert_eq!(result["missing"], Value::Null);
    assert_eq!(result["noBucket"], "not_found");

    let (status, pulled) = call(
        &http,
        Method::POST,
        &format!("{base}/v1/queues/shop/jobs/pull"),
        &token,
        Some(json!({"max": 10, "wait_ms": 0, "lease_ms": 30000, "group": "default"})),
    )
    .await;
    assert_eq!(status, 200, "{pulled}");
    assert_eq!(pulled["messages"][0]["body"], json!({"order": 7}));

    let object = http
        .get(format!("{base}/v1/storage/shop/reports/daily/7.json"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(object.status().as_u16(), 200);
    assert_eq!(object.json::<Value>().await.unwrap(), json!({"total": 12}));

    let (_, events) = call(
        &http,
        Method::GET,
        &format!("{base}/v1/events/shop?type=ferrobase.storage.object.created"),
        &token,
        None,
    )
    .await;
    let event = &events["events"][0];
    assert_eq!(event["ferrobasecause"], activation.as_str(), "{events}");
    assert_eq!(event["ferrobasedepth"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_csv_triggers_a_function_that_loads_its_rows() {
    use reqwest::Method;
    let server = Server::start().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let base = server.url.clone();
    let setup = [
        (Method::PUT, "/v1/storage/shop/uploads".to_owned(), None),
        (
            Method::PUT,
            "/v1/queues/shop/summaries".to_owned(),
            Some(json!({})),
        ),
        (
            Method::PUT,
            "/v1/functions/shop/ingest".to_owned(),
            Some(
                json!({"code": "import { kv, queue, storage } from 'ferrobase';\nexport default async (event) => {\n  const object = await storage.get(event.data.bucket, event.data.key);\n  const rows = object.body.trim().split('\\n').slice(1).map(line => line.split(','));\n  let total = 0;\n  for (const [id, amount] of rows) { await kv.put('orders/' + id, { amount: Number(amount) }); total += Number(amount); }\n  await queue.publish('summaries', { file: event.data.key, rows: rows.length, total });\n};"}),
            ),
        ),
        (
            Method::PUT,
            "/v1/triggers/shop/csv-uploads".to_owned(),
            Some(
                json!({"source": {"kind": "storage", "bucket": "uploads", "prefix": "in/", "suffix": ".csv", "ops": ["created"]}}),
            ),
        ),
        (
            Method::PUT,
            "/v1/rules/shop/ingest".to_owned(),
            Some(json!({"trigger": "csv-uploads", "function": "ingest"})),
        ),
    ];
    for (method, path, body) in setup {
        let (status, reply) = call(&http, method, &format!("{base}{path}"), &token, body).await;
        assert!(status == 200 || status == 204, "{path}: {status} {reply}");
    }
    for (key, body) in [
        ("in/orders.csv", "id,amount\n1,10\n2,32\n"),
        ("in/notes.txt", "not a csv"),
    ] {
        let response = http
            .put(format!("{base}/v1/storage/shop/uploads/{key}"))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let client = server.client("shop").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while client.kv_get("shop", "orders/2").await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload was loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let order: Value = serde_json::from_slice(
        &client
            .kv_get("shop", "orders/1")
            .await
            .unwrap()
            .unwrap()
            .bytes,
    )
    .unwrap();
    assert_eq!(order, json!({"amount": 10}));
    let (_, pulled) = call(
        &http,
        Method::POST,
        &format!("{base}/v1/queues/shop/summaries/pull"),
        &token,
        Some(json!({"max": 10, "wait_ms": 2000, "lease_ms": 30000, "group": "default"})),
    )
    .await;
    let messages = pulled["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "only the .csv under in/ fired: {pulled}");
    assert_eq!(
        messages[0]["body"],
        json!({"file": "in/orders.csv", "rows": 2, "total": 42})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_trigger_acks_what_succeeds_and_the_queue_dead_letters_what_keeps_failing() {
    use reqwest::Method;
    let server = Server::start().unwrap();
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let base = server.url.clone();
    let setup = [
        ("/v1/queues/shop/jobs", json!({"max_deliver": 2})),
        (
            "/v1/functions/shop/worker",
            json!({"code": "import { kv } from 'ferrobase';\nexport default async (event) => {\n  const job = event.data.body;\n  if (job.fail) throw new Error('cannot do job ' + job.n);\n  await kv.put('done/' + job.n, event.data.attempt);\n};"}),
        ),
        (
            "/v1/triggers/shop/jobs",
            json!({"source": {"kind": "queue", "queue": "jobs", "group": "workers"}}),
        ),
        (
            "/v1/rules/shop/work",
            json!({"trigger": "jobs", "function": "worker"}),
        ),
    ];
    for (path, body) in setup {
        let (status, reply) = call(
            &http,
            Method::PUT,
            &format!("{base}{path}"),
            &token,
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "{path}: {reply}");
    }
    let (status, reply) = call(
        &http,
        Method::POST,
        &format!("{base}/v1/queues/shop/jobs/messages"),
        &token,
        Some(json!({"messages": [{"body": {"n": 1}}, {"body": {"n": 2, "fail": true}}, {"body": {"n": 3}}]})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    let client = server.client("shop").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, dlq) = call(
            &http,
            Method::GET,
            &format!("{base}/v1/queues/shop/jobs/dlq?group=workers"),
            &token,
            None,
        )
        .await;
        let done = client.kv_get("shop", "done/1").await.unwrap().is_some()
            && client.kv_get("shop", "done/3").await.unwrap().is_some();
        if done && dlq["messages"].as_array().is_some_and(|m| !m.is_empty()) {
            let letter = &dlq["messages"][0];
            assert_eq!(letter["body"], json!({"n": 2, "fail": true}));
            assert_eq!(letter["attempts"], 2, "the queue's max_deliver applies");
            assert!(
                letter["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("cannot do job 2"),
                "{letter}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries did not settle: {dlq}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(client.kv_get("shop", "done/2").await.unwrap().is_none());
}

/// A server with an admin token of namespace `shop`, for the tests below.
struct Shop {
    server: Server,
    token: String,
    http: reqwest::Client,
}

impl Shop {
    fn start() -> Shop {
        let server = Server::start().unwrap();
        let token = server.token("admin", Some("shop"), "tests").unwrap();
        Shop {
            server,
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url);
        call(&self.http, method, &url, &self.token, body).await
    }

    /// `PUT`s each `(path, body)` (no body: none), asserting success.
    async fn put_all(&self, steps: &[(&str, Option<Value>)]) {
        for (path, body) in steps {
            let (status, reply) = self.call(reqwest::Method::PUT, path, body.clone()).await;
            assert!(status == 200 || status == 204, "{path}: {status} {reply}");
        }
    }

    /// The object's body and content type through the storage API.
    async fn download(&self, key: &str) -> (String, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}/v1/storage/shop/{key}", self.server.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{key}: {}",
            response.status()
        );
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (content_type, response.bytes().await.unwrap().to_vec())
    }

    /// Waits until KV `key` exists and returns its value.
    async fn wait_for_key(&self, key: &str) -> Vec<u8> {
        let client = self.server.client("shop").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(value) = client.kv_get("shop", key).await.unwrap() {
                return value.bytes.to_vec();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{key} was never written"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// A handler that writes to storage and the queue concurrently, then fails on its first
/// attempt: the retry makes the same calls, and each write is applied (and logged) once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_handler_applies_its_storage_and_queue_writes_once() {
    use reqwest::Method;
    let shop = Shop::start();
    let code = "import { kv, queue, storage } from 'ferrobase';\n\
        export default async (e, ctx) => {\n\
          const attempt = ctx.cause.attempt;\n\
          await Promise.all([\n\
            storage.put('out', 'result.txt', 'written by attempt ' + attempt),\n\
            queue.publish('jobs', { attempt }),\n\
            storage.delete('out', 'stale.txt'),\n\
          ]);\n\
          if (attempt === 1) throw new Error('crash after writing');\n\
          await kv.put('done', attempt);\n\
        };";
    shop.put_all(&[
        ("/v1/storage/shop/out", None),
        ("/v1/queues/shop/jobs", Some(json!({}))),
        ("/v1/functions/shop/writer", Some(json!({ "code": code }))),
        ("/v1/triggers/shop/go", Some(json!({"source": {"kind": "manual"}}))),
        (
            "/v1/rules/shop/writer",
            Some(json!({"trigger": "go", "function": "writer", "backoff": {"initial_ms": 10, "max_ms": 50}})),
        ),
    ])
    .await;
    let response = shop
        .http
        .put(format!("{}/v1/storage/shop/out/stale.txt", shop.server.url))
        .bearer_auth(&shop.token)
        .body("old")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let (status, reply) = shop
        .call(Method::POST, "/v1/triggers/shop/go/fire", Some(json!({})))
        .await;
    assert!(status == 200 || status == 202, "{status} {reply}");

    assert_eq!(
        shop.wait_for_key("done").await,
        b"2",
        "the second attempt finished"
    );

    // The object is the first attempt's; one created and one deleted event.
    assert_eq!(
        shop.download("out/result.txt").await.1,
        b"written by attempt 1"
    );
    let (_, log) = shop
        .call(Method::GET, "/v1/events/shop?limit=1000", None)
        .await;
    let count = |kind: &str, subject: &str| {
        log["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind && e["subject"] == subject)
            .count()
    };
    assert_eq!(
        count("ferrobase.storage.object.created", "out/result.txt"),
        1
    );
    assert_eq!(
        count("ferrobase.storage.object.deleted", "out/stale.txt"),
        1
    );

    // One message on the queue, from the first attempt.
    let (_, pulled) = shop
        .call(
            Method::POST,
            "/v1/queues/shop/jobs/pull",
            Some(json!({"max": 10, "wait_ms": 200, "lease_ms": 30000, "group": "check"})),
        )
        .await;
    let bodies: Vec<&Value> = pulled["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"])
        .collect();
    assert_eq!(bodies, vec![&json!({"attempt": 1})], "{pulled}");
}

/// Message ids count per queue, so the first message of two queues has the same id; one
/// function consuming both (and two groups of one queue) must still apply every message's
/// writes: the idempotency key names the queue and group as well as the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_function_consuming_several_queues_applies_every_message() {
    use reqwest::Method;
    let shop = Shop::start();
    shop.put_all(&[
        ("/v1/queues/shop/a", Some(json!({}))),
        ("/v1/queues/shop/b", Some(json!({}))),
        (
            "/v1/functions/shop/record",
            Some(json!({"code": "import { kv } from 'ferrobase';\nexport default async (e) => {\n  await kv.put('seen/' + e.data.queue + '/' + e.data.group, e.data.body);\n};"})),
        ),
    ])
    .await;
    for (queue, group) in [("a", "g1"), ("b", "g1"), ("b", "g2")] {
        let name = format!("{queue}-{group}");
        shop.put_all(&[
            (
                &format!("/v1/triggers/shop/{name}"),
                Some(json!({"source": {"kind": "queue", "queue": queue, "group": group}})),
            ),
            (
                &format!("/v1/rules/shop/{name}"),
                Some(json!({"trigger": name, "function": "record"})),
            ),
        ])
        .await;
    }
    for queue in ["a", "b"] {
        let (status, reply) = shop
            .call(
                Method::POST,
                &format!("/v1/queues/shop/{queue}/messages"),
                Some(json!({"messages": [{"body": queue}]})),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["ids"][0], "1", "ids count per queue: {reply}");
    }
    for (key, body) in [("seen/a/g1", "a"), ("seen/b/g1", "b"), ("seen/b/g2", "b")] {
        assert_eq!(shop.wait_for_key(key).await, body.as_bytes(), "{key}");
    }
}

/// Functions store and read bytes that are not text: every byte value round-trips, through
/// the SDK and through the storage API, and text reads still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_store_and_read_binary_objects() {
    use reqwest::Method;
    let shop = Shop::start();
    let code = "import { storage } from 'ferrobase';\n\
        export default async () => {\n\
          const bytes = new Uint8Array(256 + 7);\n\
          for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 255;\n\
          const stored = await storage.put('blobs', 'all-bytes.bin', bytes);\n\
          const view = new DataView(bytes.buffer, 1, 4);\n\
          await storage.put('blobs', 'view.bin', view, { contentType: 'application/x-test' });\n\
          const back = await storage.get('blobs', 'all-bytes.bin', { as: 'bytes' });\n\
          const same = back.body.length === bytes.length && back.body.every((b, i) => b === bytes[i]);\n\
          await storage.put('blobs', 'note.txt', 'héllo');\n\
          const text = await storage.get('blobs', 'note.txt');\n\
          let badOption;\n\
          try { await storage.get('blobs', 'note.txt', { as: 'blob' }); } catch (e) { badOption = e.message; }\n\
          const sizes = {};\n\
          for (const len of [0, 1, 2, 3, 4, 5, 100003]) {\n\
            const body = new Uint8Array(len);\n\
            for (let i = 0; i < len; i++) body[i] = (i * 31 + len) & 255;\n\
            await storage.put('blobs', 'len/' + len, body);\n\
            const read = (await storage.get('blobs', 'len/' + len, { as: 'bytes' })).body;\n\
            sizes[len] = read.length === len && read.every((b, i) => b === body[i]);\n\
          }\n\
          return { size: stored.size, same, type: back.contentType, text: text.body, badOption, sizes };\n\
        };";
    shop.put_all(&[
        ("/v1/storage/shop/blobs", None),
        ("/v1/functions/shop/bytes", Some(json!({ "code": code }))),
    ])
    .await;
    let (status, result) = shop
        .call(
            Method::POST,
            "/v1/functions/shop/bytes/invoke",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["size"], 263);
    assert_eq!(result["same"], true, "{result}");
    // Every padding case of base64, and a body longer than one encoding chunk.
    assert_eq!(
        result["sizes"],
        json!({"0": true, "1": true, "2": true, "3": true, "4": true, "5": true, "100003": true})
    );
    assert_eq!(result["type"], "application/octet-stream");
    assert_eq!(result["text"], "héllo");
    assert!(
        result["badOption"]
            .as_str()
            .unwrap()
            .contains("\"text\" or \"bytes\""),
        "{result}"
    );

    let expected: Vec<u8> = (0..263u32).map(|i| ((i * 7 + 3) & 255) as u8).collect();
    assert_eq!(shop.download("blobs/all-bytes.bin").await.1, expected);
    let (content_type, view) = shop.download("blobs/view.bin").await;
    assert_eq!(content_type, "application/x-test");
    assert_eq!(
        view,
        expected[1..5].to_vec(),
        "a view stores its own bytes only"
    );
}

/// A handler's publish is recorded once accepted: a retry that comes after the queue's dedup
/// window has passed (here 1 s, the retry ~2.5 s later) still publishes nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_retried_after_the_dedup_window_is_applied_once() {
    use reqwest::Method;
    let shop = Shop::start();
    let code = "import { kv, queue } from 'ferrobase';\n\
        export default async (e, ctx) => {\n\
          const attempt = ctx.cause.attempt;\n\
          const published = await queue.publish('late', { attempt });\n\
          if (attempt === 1) throw new Error('crash after publishing');\n\
          await kv.put('done', published.ids);\n\
        };";
    shop.put_all(&[
        ("/v1/queues/shop/late", Some(json!({"dedup_window_s": 1}))),
        ("/v1/functions/shop/publisher", Some(json!({ "code": code }))),
        ("/v1/triggers/shop/go", Some(json!({"source": {"kind": "manual"}}))),
        (
            "/v1/rules/shop/publisher",
            Some(json!({"trigger": "go", "function": "publisher", "backoff": {"initial_ms": 2500, "max_ms": 2500}})),
        ),
    ])
    .await;
    let (status, reply) = shop
        .call(Method::POST, "/v1/triggers/shop/go/fire", Some(json!({})))
        .await;
    assert!(status == 200 || status == 202, "{status} {reply}");

    // The retry got the first attempt's id back.
    let done: Value = serde_json::from_slice(&shop.wait_for_key("done").await).unwrap();
    assert_eq!(done, json!(["1"]));
    let (_, pulled) = shop
        .call(
            Method::POST,
            "/v1/queues/shop/late/pull",
            Some(json!({"max": 10, "wait_ms": 200, "group": "check"})),
        )
        .await;
    let bodies: Vec<&Value> = pulled["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"])
        .collect();
    assert_eq!(bodies, vec![&json!({"attempt": 1})], "{pulled}");
}
