//! The storage HTTP API for browsers against the real binary: objects with events, policies
//! for user tokens, presigned URLs, an upload cut off midway, and a 1 GiB body streamed both
//! ways within the memory bound.

use std::io::Write;
use std::time::Duration;

use ferrobase_tests::Server;
use ferrobase_tests::s3::s3_options;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const NS: &str = "web";

struct Api {
    server: Server,
    http: reqwest::Client,
    admin: String,
}

impl Api {
    fn start() -> Api {
        let server = Server::start_with(s3_options()).unwrap();
        let admin = server.token("admin", Some(NS), "admin").unwrap();
        Api {
            server,
            http: reqwest::Client::new(),
            admin,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/storage/{NS}/{path}", self.server.url)
    }

    async fn events(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!(
                "{}/v1/events/{NS}?after=0&limit=1000&type=ferrobase.storage.",
                self.server.url
            ))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        page["events"].as_array().unwrap().clone()
    }

    async fn create_bucket(&self, bucket: &str) {
        let response = self
            .http
            .put(self.url(bucket))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["subject"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_over_http_with_events() {
    let api = Api::start();
    api.create_bucket("site").await;
    let http = &api.http;
    let put = http
        .put(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .header("content-type", "image/svg+xml")
        .header("x-amz-meta-author", "ada")
        .body("<svg>0123456789</svg>")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let etag = put.headers()["etag"].to_str().unwrap().to_owned();
    let info: Value = put.json().await.unwrap();
    assert_eq!(info["size"], 21);
    assert_eq!(format!("\"{}\"", info["etag"].as_str().unwrap()), etag);

    let get = http
        .get(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()["content-type"], "image/svg+xml");
    assert_eq!(get.headers()["x-amz-meta-author"], "ada");
    assert_eq!(get.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(get.text().await.unwrap(), "<svg>0123456789</svg>");

    let head = http
        .head(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "21");

    let range = http
        .get(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .header("range", "bytes=5-9")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.headers()["content-range"], "bytes 5-9/21");
    assert_eq!(range.text().await.unwrap(), "01234");
    let bad_range = http
        .get(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_range.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let unchanged = http
        .get(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    let create_only = http
        .put(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .header("if-none-match", "*")
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(create_only.status(), StatusCode::PRECONDITION_FAILED);
    let error: Value = create_only.json().await.unwrap();
    assert_eq!(error["error"]["code"], "precondition_failed");

    for key in ["img/a.png", "img/sub/b.png", "index.html"] {
        let response = http
            .put(api.url(&format!("site/{key}")))
            .bearer_auth(&api.admin)
            .body(key.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let listing: Value = http
        .get(api.url("site?prefix=img/&delimiter=/"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["img/a.png", "img/logo.svg"]);
    assert_eq!(listing["prefixes"], json!(["img/sub/"]));

    let delete = http
        .delete(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let gone = http
        .get(api.url("site/img/logo.svg"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let error: Value = gone.json().await.unwrap();
    assert_eq!(error["error"]["code"], "not_found");
    let not_empty = http
        .delete(api.url("site"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(not_empty.status(), StatusCode::CONFLICT);

    let events = api.events().await;
    assert_eq!(
        kinds(&events),
        [
            "ferrobase.storage.object.created site/img/logo.svg",
            "ferrobase.storage.object.created site/img/a.png",
            "ferrobase.storage.object.created site/img/sub/b.png",
            "ferrobase.storage.object.created site/index.html",
            "ferrobase.storage.object.deleted site/img/logo.svg",
        ]
    );
    assert_eq!(events[0]["source"], format!("/ns/{NS}/storage"));
    assert_eq!(events[0]["data"]["content_type"], "image/svg+xml");
    assert_eq!(events[0]["data"]["size"], 21);
}

/// `Content-MD5` and `x-amz-checksum-*` are checked as in S3; a body that fails leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_and_checksums_are_checked() {
    let api = Api::start();
    api.create_bucket("sums").await;
    let put = |key: &str, headers: &[(&str, &str)]| {
        let mut request = api
            .http
            .put(api.url(&format!("sums/{key}")))
            .bearer_auth(&api.admin)
            .body("hello world");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    // CRC32 of "hello world" is 0x0d4a1185; its MD5 is 5eb63bbbe01eeed093cb22bb8f5acdc3.
    let checked = put("crc", &[("x-amz-checksum-crc32", "DUoRhQ==")])
        .await
        .unwrap();
    assert_eq!(checked.status(), StatusCode::OK);
    let info: Value = checked.json().await.unwrap();
    assert_eq!(
        info["checksum"],
        serde_json::json!({"algorithm": "CRC32", "value": "DUoRhQ=="})
    );
    // Whole reads carry it, ranges do not.
    for (range, expected) in [(None, Some("DUoRhQ==")), (Some("bytes=0-4"), None)] {
        let mut request = api.http.get(api.url("sums/crc")).bearer_auth(&api.admin);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let answer = request.send().await.unwrap();
        let header = answer
            .headers()
            .get("x-amz-checksum-crc32")
            .map(|value| value.to_str().unwrap().to_owned());
        assert_eq!(header.as_deref(), expected, "{range:?}");
    }
    let head = api
        .http
        .head(api.url("sums/crc"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["x-amz-checksum-crc32"], "DUoRhQ==");
    let md5 = put("md5", &[("content-md5", "XrY7u+Ae7tCTyyK7j1rNww==")])
        .await
        .unwrap();
    assert_eq!(md5.status(), StatusCode::OK);
    let failing: [&[(&str, &str)]; 4] = [
        &[("x-amz-checksum-crc32", "AAAAAA==")],
        &[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
        &[("content-md5", "not base64")],
        &[
            ("x-amz-checksum-crc32", "DUoRhQ=="),
            ("x-amz-checksum-sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        ],
    ];
    for headers in failing {
        let answer = put("bad", headers).await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_argument", "{headers:?}");
    }
    let head = api
        .http
        .head(api.url("sums/bad"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        kinds(&api.events().await).len(),
        2,
        "only the good puts count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_midway_leaves_nothing() {
    let api = Api::start();
    api.create_bucket("drop").await;
    let address = api.server.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let declared = 10 * 1024 * 1024;
    write!(
        stream,
        "PUT /v1/storage/{NS}/drop/partial.bin HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {}\r\nContent-Length: {declared}\r\n\r\n",
        api.admin
    )
    .unwrap();
    stream.write_all(&vec![7u8; 1024 * 1024]).unwrap();
    drop(stream);

    // Whenever the server notices the cut, the object must never have become visible.
    for _ in 0..10 {
        let head = api
            .http
            .head(api.url("drop/partial.bin"))
            .bearer_auth(&api.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        api.events().await.is_empty(),
        "a cut-off upload emits nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_follow_the_policy_and_presigned_urls_work() {
    let api = Api::start();
    api.create_bucket("avatars").await;
    let policy = json!({"rules": [
        {"roles": ["user"], "actions": ["read", "write"], "resources": ["storage:avatars/{sub}/**"]}
    ]});
    let set = api
        .http
        .put(format!("{}/v1/policies/{NS}", api.server.url))
        .bearer_auth(&api.admin)
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.status());
    let alice = api.server.token("user", Some(NS), "alice").unwrap();
    let mine = api
        .http
        .put(api.url("avatars/alice/me.png"))
        .bearer_auth(&alice)
        .body("alice's face")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
    let theirs = api
        .http
        .put(api.url("avatars/bob/me.png"))
        .bearer_auth(&alice)
        .body("not bob")
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
    let error: Value = theirs.json().await.unwrap();
    assert_eq!(error["error"]["code"], "permission_denied");
    let anonymous = api
        .http
        .get(api.url("avatars/alice/me.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A presigned upload straight to the S3 endpoint, then a presigned download.
    let presign = |method: &str, key: &str| {
        api.http
            .post(api.url("avatars/_presign"))
            .bearer_auth(&alice)
            .json(&json!({"method": method, "key": key, "expires": 300}))
            .send()
    };
    let upload: Value = presign("PUT", "alice/new.png")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = upload["url"].as_str().unwrap();
    assert!(url.starts_with(&api.server.s3_url().unwrap()), "{url}");
    let put = api.http.put(url).body("uploaded").send().await.unwrap();
    assert_eq!(
        put.status(),
        StatusCode::OK,
        "{}",
        put.text().await.unwrap()
    );
    let download: Value = presign("GET", "alice/new.png")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = api
        .http
        .get(download["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "uploaded");
    let forbidden = presign("GET", "bob/me.png").await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let subjects = kinds(&api.events().await);
    assert_eq!(
        subjects,
        [
            "ferrobase.storage.object.created avatars/alice/me.png",
            "ferrobase.storage.object.created avatars/alice/new.png",
        ]
    );
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streams_both_ways_within_64_mib() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    const CHUNK: usize = 1024 * 1024;
    let api = Api::start();
    api.create_bucket("huge").await;
    // Warm up the paths once so that one-off allocations do not count.
    let warm = api
        .http
        .put(api.url("huge/warm"))
        .bearer_auth(&api.admin)
        .body(vec![1u8; 16 * CHUNK])
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), StatusCode::OK);
    let before = peak_rss(api.server.pid());

    let chunk = bytes::Bytes::from(vec![42u8; CHUNK]);
    let body = futures::stream::iter(0..SIZE / CHUNK as u64)
        .map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let put = api
        .http
        .put(api.url("huge/blob"))
        .bearer_auth(&api.admin)
        .header("content-length", SIZE)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let info: Value = put.json().await.unwrap();
    assert_eq!(info["size"], SIZE);

    let get = api
        .http
        .get(api.url("huge/blob"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    let mut stream = get.bytes_stream();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.iter().all(|b| *b == 42));
        read += chunk.len() as u64;
    }
    assert_eq!(read, SIZE);
    let grown = peak_rss(api.server.pid()).saturating_sub(before);
    println!("peak RSS grew by {} MiB", grown / (1024 * 1024));
    assert!(
        grown <= 64 * 1024 * 1024,
        "peak RSS grew by {} MiB",
        grown / (1024 * 1024)
    );
}
