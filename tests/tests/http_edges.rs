//! The real binary at the edges of HTTP: connections that send nothing, trickle their request
//! head or sit idle are closed; the per-IP connection cap; and requests rejected before a
//! handler runs (by hyper or by an extractor) answer in the JSON error format.

use std::time::Duration;

use ferrobase_tests::Server;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that should happen well within a second.
const DEADLINE: Duration = Duration::from_secs(10);

/// A server with `config` as its TOML file (kept with it).
fn start(config: &str) -> (Server, tempfile::TempDir) {
    Server::start_with_config(config).unwrap()
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (end of stream or a reset), within
/// [`DEADLINE`]; returns what was received, or `None` if it is still open at the deadline.
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.ok()?;
    Some(received)
}

/// Sends a `GET /healthz` and reads its whole response (its body is `ok`-sized).
async fn health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(DEADLINE, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return;
                }
            }
        }
    })
    .await
    .expect("a response");
    String::from_utf8(received).unwrap()
}

const SHORT_TIMEOUTS: &str = "[http]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"300ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let (server, _config) = start(SHORT_TIMEOUTS);
    let mut silent = connect(&server).await;
    let received = read_until_closed(&mut silent)
        .await
        .expect("closed by the server");
    assert!(received.is_empty(), "no response to no request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_line_by_line_is_cut_off() {
    let (server, _config) = start(SHORT_TIMEOUTS);
    let mut trickle = connect(&server).await;
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                read = trickle.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                // Each line arrives well within the timeout; the head as a whole does not.
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if trickle.write_all(b"x-trickle: 1\r\n").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the trickling connection is still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_but_event_streams_stay_open() {
    let (server, _config) = start(SHORT_TIMEOUTS);
    let token = server.token("admin", Some("edges"), "tests").unwrap();
    // No connection reuse: the server closes idle ones after 300 ms.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let stream = http
        .get(format!("{}/v1/events/edges/stream", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut stream = stream.bytes_stream();

    let mut idle = connect(&server).await;
    assert!(health(&mut idle).await.starts_with("HTTP/1.1 200"));
    let after = read_until_closed(&mut idle)
        .await
        .expect("the idle connection is closed");
    assert!(after.is_empty());

    // The stream has now been open longer than the idle timeout, and still delivers.
    let put = http
        .put(format!("{}/v1/kv/edges/after-idle", server.url))
        .bearer_auth(&token)
        .body("v")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let mut seen = String::new();
    tokio::time::timeout(DEADLINE, async {
        while !seen.contains("after-idle") {
            let chunk = stream.next().await.expect("stream open").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the event arrives on the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_cap_are_refused() {
    let (server, _config) = start("[http]\nmax_connections_per_ip = 2\n");
    let mut first = connect(&server).await;
    let mut second = connect(&server).await;
    assert!(health(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(health(&mut second).await.starts_with("HTTP/1.1 200"));

    let mut third = connect(&server).await;
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await;
    let received = read_until_closed(&mut third)
        .await
        .expect("the third connection is closed");
    assert!(received.is_empty(), "refused, not answered");

    // Closing one gives its place back.
    drop(first);
    let answered = tokio::time::timeout(DEADLINE, async {
        loop {
            let mut next = connect(&server).await;
            let _ = next
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
                .await;
            if let Some(received) = read_until_closed(&mut next).await
                && received.starts_with(b"HTTP/1.1 200")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(answered.is_ok(), "a connection is accepted again");
    drop(second);
}

/// The status and JSON error body of a raw request hyper rejects itself.
async fn raw_error(server: &Server, request: &[u8]) -> (u16, Value) {
    let mut stream = connect(server).await;
    stream.write_all(request).await.unwrap();
    let received = read_until_closed(&mut stream).await.expect("answered");
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.contains("content-type: application/json"), "{head}");
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_rejects_answer_in_the_json_error_format() {
    let server = Server::start().unwrap();
    let many_headers: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let (status, body) = raw_error(
        &server,
        format!("GET /healthz HTTP/1.1\r\nhost: t\r\n{many_headers}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431);
    assert_eq!(body["error"]["code"], "too_large");

    let long = "a".repeat(70_000);
    let (status, body) = raw_error(
        &server,
        format!("GET /{long} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 414);
    assert_eq!(body["error"]["code"], "too_large");

    let (status, body) =
        raw_error(&server, b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_argument");

    // The connection serves normally after all that.
    let mut fine = connect(&server).await;
    assert!(health(&mut fine).await.starts_with("HTTP/1.1 200"));
}

/// Asserts a JSON error with `status`, and that its message has `needle` and is bounded.
async fn expect_error(response: reqwest::Response, status: u16, needle: &str) {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    assert!(message.len() < 600, "unbounded echo: {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_rejections_answer_in_the_json_error_format() {
    let server = Server::start().unwrap();
    let token = server.token("admin", Some("edges"), "tests").unwrap();
    let http = reqwest::Client::new();
    let url = &server.url;

    let long_name = "bad.name".repeat(200);
    let response = http
        .get(format!("{url}/v1/triggers/edges/{long_name}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid trigger name").await;

    let presign = format!("{url}/v1/storage/edges/bucket/_presign");
    let response = http
        .post(&presign)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"method":"GET","key":"k"}"#)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "must be JSON").await;

    let response = http
        .post(&presign)
        .bearer_auth(&token)
        .json(&serde_json::json!({"method": "GET", "key": "k", "expires": -1}))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "expires").await;

    let response = http
        .get(format!("{url}/v1/storage/edges/bucket/%FF"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid path").await;

    let response = http
        .get(format!("{url}/v1/storage/edges/bucket?limit=-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "limit").await;

    let response = http
        .put(format!("{url}/v1/policies/edges"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    expect_error(response, 413, "policy document").await;
}
