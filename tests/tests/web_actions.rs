//! Web actions on the real binary, read off the socket: whatever headers a function returns,
//! the server frames the response itself, so a pipelined client reads exactly one response per
//! request; and statuses or bodies that cannot be sent faithfully are activation errors.

use std::time::Duration;

use ferrobase_tests::Server;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a response that should come within a second.
const DEADLINE: Duration = Duration::from_secs(10);

/// A body that, sent past a `content-length: 1`, reads as a second, forged response.
const SMUGGLED: &str = "xHTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n{\"smuggled\":true}";

struct Fixture {
    server: Server,
    http: reqwest::Client,
    token: String,
}

impl Fixture {
    fn new() -> Fixture {
        let server = Server::start().unwrap();
        let token = server.token("admin", Some("a"), "tests").unwrap();
        Fixture {
            server,
            http: reqwest::Client::new(),
            token,
        }
    }

    /// Deploys a web action returning `result` (a JS expression).
    async fn web_action(&self, name: &str, result: &str) {
        let code = format!("export default (req) => ({result});");
        let response = self
            .http
            .put(format!("{}/v1/functions/a/{name}", self.server.url))
            .bearer_auth(&self.token)
            .json(&json!({"code": code, "web": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// Sends `requests` back to back on one connection, then reads every response until the
    /// connection closes (or the deadline passes).
    async fn pipelined(&self, requests: &[String]) -> Vec<RawResponse> {
        let mut stream = TcpStream::connect(self.server.url.trim_start_matches("http://"))
            .await
            .unwrap();
        stream
            .write_all(requests.concat().as_bytes())
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        let read = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(DEADLINE, read).await;
        parse_responses(&received)
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n")
}

/// The last request of a pipeline: the server closes the connection after answering it, so
/// the client reads everything the server sent for the pipeline, and no more.
fn last(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The complete responses at the start of `bytes`, framed by `content-length` or chunked
/// encoding as a client would frame them.
fn parse_responses(mut bytes: &[u8]) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    loop {
        let Some(head_end) = find(bytes, b"\r\n\r\n") else {
            return responses;
        };
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &bytes[head_end + 4..];
        let find_header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let (body, consumed) = if let Some(length) = find_header("content-length") {
            let length: usize = length.parse().unwrap();
            if rest.len() < length {
                return responses;
            }
            (rest[..length].to_vec(), length)
        } else if find_header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            let mut at = 0;
            loop {
                let Some(line_end) = find(&rest[at..], b"\r\n") else {
                    return responses;
                };
                let size_text = String::from_utf8_lossy(&rest[at..at + line_end]).into_owned();
                let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
                at += line_end + 2;
                if rest.len() < at + size + 2 {
                    return responses;
                }
                body.extend_from_slice(&rest[at..at + size]);
                at += size + 2;
                if size == 0 {
                    break;
                }
            }
            (body, at)
        } else {
            (Vec::new(), 0)
        };
        responses.push(RawResponse {
            status,
            headers,
            body,
        });
        bytes = &rest[consumed..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_cannot_frame_their_own_responses() {
    let fixture = Fixture::new();
    let body = serde_json::to_string(SMUGGLED).unwrap();
    fixture
        .web_action(
            "split",
            &format!(
                "{{status: 200, headers: {{'content-length': '1', 'x-kept': 'yes'}}, body: {body}}}"
            ),
        )
        .await;
    fixture
        .web_action(
            "long",
            "{status: 200, headers: {'content-length': '99999'}, body: 'short'}",
        )
        .await;
    fixture
        .web_action(
            "chunked",
            "{status: 200, headers: {'transfer-encoding': 'chunked', connection: 'close', upgrade: 'h2c'}, body: 'plain'}",
        )
        .await;

    // A pipelined client reads the whole body as the first response and the health check as
    // the second: no forged response in between.
    let responses = fixture
        .pipelined(&[get("/web/a/split"), last("/healthz")])
        .await;
    assert_eq!(responses.len(), 2, "{responses:?}");
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].body, SMUGGLED.as_bytes());
    assert_eq!(responses[0].header("x-kept"), Some("yes"));
    assert_eq!(
        responses[0].header("content-length"),
        Some(SMUGGLED.len().to_string().as_str())
    );
    assert_eq!(responses[1].status, 200);
    assert!(
        !String::from_utf8_lossy(&responses[1].body).contains("smuggled"),
        "{responses:?}"
    );

    // A declared length longer than the body does not leave the client waiting, and a
    // declared chunked encoding is not applied to a plain body.
    let responses = fixture
        .pipelined(&[get("/web/a/long"), get("/web/a/chunked"), last("/healthz")])
        .await;
    assert_eq!(responses.len(), 3, "{responses:?}");
    assert_eq!(responses[0].body, b"short");
    assert_eq!(responses[1].body, b"plain");
    assert_eq!(responses[1].header("upgrade"), None);
    assert_eq!(responses[1].header("connection"), None);
    assert_eq!(responses[2].status, 200, "the connection stays usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsendable_results_are_activation_errors() {
    let fixture = Fixture::new();
    let cases = [
        (
            "switching",
            "{status: 101, headers: {upgrade: 'websocket'}}",
        ),
        ("huge", "{status: 99999}"),
        ("tiny", "{status: 99}"),
        ("nocontent", "{status: 204, body: 'not allowed here'}"),
        ("notmodified", "{status: 304, body: {a: 1}}"),
        (
            "crlf",
            "{headers: {'x-a': 'v\\r\\nset-cookie: stolen=1'}, body: 'x'}",
        ),
    ];
    for (name, result) in cases {
        fixture.web_action(name, result).await;
    }
    let requests: Vec<String> = cases
        .iter()
        .map(|(name, _)| get(&format!("/web/a/{name}")))
        .chain([last("/healthz")])
        .collect();
    let responses = fixture.pipelined(&requests).await;
    assert_eq!(responses.len(), requests.len(), "{responses:?}");
    for ((name, _), response) in cases.iter().zip(&responses) {
        assert_eq!(response.status, 502, "{name}: {response:?}");
        assert_eq!(response.header("set-cookie"), None, "{name}");
        let error: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(error["error"]["code"], "function_error", "{name}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("invalid web response"),
            "{name}: {message}"
        );

        // The activation is recorded as the error the caller saw.
        let id = error["error"]["activation_id"].as_str().unwrap();
        let record = activation(&fixture, id).await;
        assert_eq!(record["outcome"], "error", "{name}: {record}");
        assert_eq!(record["cause"]["kind"], "web", "{name}: {record}");
    }
    assert_eq!(responses.last().unwrap().status, 200);
}

/// The activation record `id`, once the activation writer has stored it.
async fn activation(fixture: &Fixture, id: &str) -> Value {
    let url = format!("{}/v1/activations/a/{id}", fixture.server.url);
    let started = std::time::Instant::now();
    loop {
        let response = fixture
            .http
            .get(&url)
            .bearer_auth(&fixture.token)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        assert!(started.elapsed() < DEADLINE, "activation {id} never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_actions_see_only_their_own_namespaces_callers_and_no_tokens() {
    let fixture = Fixture::new();
    fixture
        .web_action("whoami", "{auth: req.auth, query: req.query}")
        .await;
    let whoami = |token: Option<String>, query: &str| {
        let mut request = fixture
            .http
            .get(format!("{}/web/a/whoami{query}", fixture.server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let server = &fixture.server;
    let other_admin = server.token("admin", Some("b"), "intruder").unwrap();
    let own_user = server.token("user", Some("a"), "alice").unwrap();
    let global_admin = server.token("admin", None, "root").unwrap();

    let seen = whoami(Some(other_admin.clone()), "").await;
    assert_eq!(
        seen["auth"],
        Value::Null,
        "another namespace's admin: {seen}"
    );
    let seen = whoami(None, &format!("?access_token={other_admin}&x=1")).await;
    assert_eq!(seen["auth"], Value::Null, "{seen}");
    assert_eq!(
        seen["query"],
        json!({"x": "1"}),
        "the token is not passed on"
    );

    let seen = whoami(Some(own_user.clone()), "").await;
    assert_eq!(
        seen["auth"],
        json!({"sub": "alice", "role": "user", "ns": "a"})
    );
    let seen = whoami(None, &format!("?x=1&access_token={own_user}")).await;
    assert_eq!(seen["auth"]["sub"], "alice", "{seen}");
    assert_eq!(seen["query"], json!({"x": "1"}));

    let seen = whoami(Some(global_admin), "").await;
    assert_eq!(seen["auth"]["sub"], "root", "{seen}");
}
