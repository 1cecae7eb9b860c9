//! A function's `fetch` on the real binary against a real loopback HTTP server: the allow-list
//! is decided on the URL that is sent (tricks that parse differently never reach the loopback
//! server), private addresses are refused after DNS resolution unless
//! `functions.fetch_deny_private = false`, and every redirect hop is checked again.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use ferrobase_tests::Server;
use serde_json::{Value, json};

/// The loopback peer: answers every path, records what it was asked, redirects
/// `/redirect?to=URL` to `URL` and `/loop` to itself.
struct Peer {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

async fn answer(
    State(hits): State<Arc<Mutex<Vec<String>>>>,
    method: axum::http::Method,
    uri: Uri,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    hits.lock().unwrap().push(uri.path().to_owned());
    match (uri.path(), query.get("to")) {
        // The request's body back as bytes, with its method and one header, and two cookies.
        ("/echo", _) => {
            let mut response = body.into_response();
            let out = response.headers_mut();
            out.insert(
                header::CONTENT_TYPE,
                "application/octet-stream".parse().unwrap(),
            );
            out.insert("x-method", method.as_str().parse().unwrap());
            if let Some(sig) = headers.get("x-sig") {
                out.insert("x-sig", sig.clone());
            }
            out.append(header::SET_COOKIE, "a=1".parse().unwrap());
            out.append(header::SET_COOKIE, "b=2".parse().unwrap());
            response
        }
        ("/redirect", Some(to)) => {
            (StatusCode::FOUND, [(header::LOCATION, to.clone())], "").into_response()
        }
        ("/loop", _) => (StatusCode::FOUND, [(header::LOCATION, "/loop")], "").into_response(),
        _ => format!("peer saw {}", uri.path()).into_response(),
    }
}

async fn start_peer() -> Peer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Peer { port, hits }
}

impl Peer {
    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

/// A server with `config` as its TOML file (kept with it).
fn start(config: &str) -> (Server, tempfile::TempDir) {
    Server::start_with_config(config).unwrap()
}

/// The function under test: fetches each URL of the event and reports, per URL, the status
/// and body it got or the error's code and message.
const PROBE: &str = "export default async (e) => {\n  const out = [];\n  for (const url of e.urls) {\n    try {\n      const r = await fetch(url);\n      out.push({ status: r.status, body: await r.text() });\n    } catch (err) {\n      out.push({ code: err.code, message: String(err.message) });\n    }\n  }\n  return out;\n};";

/// Deploys the probe and runs it over `urls`.
async fn probe(server: &Server, urls: &[String]) -> Vec<Value> {
    let body = run(server, "probe", PROBE, json!({ "urls": urls })).await;
    body.as_array().unwrap().clone()
}

/// Deploys `code` as function `name` in namespace `shop`, invokes it with `event` and answers
/// its result (which must be a success).
async fn run(server: &Server, name: &str, code: &str, event: Value) -> Value {
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let base = &server.url;
    let deployed = http
        .put(format!("{base}/v1/functions/shop/{name}"))
        .bearer_auth(&token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        deployed.status().as_u16(),
        200,
        "{}",
        deployed.text().await.unwrap()
    );
    let invoked = http
        .post(format!("{base}/v1/functions/shop/{name}/invoke"))
        .bearer_auth(&token)
        .json(&event)
        .send()
        .await
        .unwrap();
    let status = invoked.status().as_u16();
    let body: Value = invoked.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn refused(outcome: &Value, why: &str) {
    assert_eq!(outcome["code"], "permission_denied", "{outcome}");
    let message = outcome["message"].as_str().unwrap();
    assert!(
        message.starts_with("fetch refused") && message.contains(why),
        "{message:?} should say {why:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_that_parse_to_a_loopback_host_never_reach_it() {
    let peer = start_peer().await;
    let port = peer.port;
    let (server, _config) = start(
        "[functions]\nfetch_allowed_hosts = [\"allowed.test\", \"localhost\", \"127.0.0.1\"]\n",
    );
    let urls = [
        // The authority ends at the backslash: the host is 127.0.0.1, not allowed.test (and
        // 127.0.0.1, though listed, is loopback).
        format!("http://127.0.0.1:{port}\\@allowed.test/a"),
        format!("http://127.0.0.1:{port}\\\\@allowed.test/b"),
        // Credentials are refused outright.
        format!("http://127.0.0.1:{port}@allowed.test/c"),
        // Allowed names and literals that are loopback addresses (deny_private is on).
        format!("http://localhost:{port}/d"),
        format!("http://127.0.0.1:{port}/e"),
        format!("http://2130706433:{port}/f"),
        format!("http://[::ffff:127.0.0.1]:{port}/g"),
    ];
    let outcomes = probe(&server, &urls).await;
    refused(&outcomes[0], "address is private: 127.0.0.1 is not");
    refused(&outcomes[1], "address is private: 127.0.0.1 is not");
    refused(&outcomes[2], "credentials");
    refused(&outcomes[3], "address is private: localhost (127.0.0.1)");
    refused(&outcomes[4], "address is private: 127.0.0.1 is not");
    refused(&outcomes[5], "address is private: 127.0.0.1 is not");
    refused(&outcomes[6], "host not allowed");
    assert_eq!(peer.hits(), Vec::<String>::new(), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_private_addresses_allowed_the_allow_list_still_holds_on_every_hop() {
    let peer = start_peer().await;
    let port = peer.port;
    let (server, _config) =
        start("[functions]\nfetch_allowed_hosts = [\"localhost\"]\nfetch_deny_private = false\n");
    let to_other_host = format!("http://127.0.0.1:{port}/secret");
    let to_same_host = format!("http://localhost:{port}/landed");
    let urls = [
        format!("http://localhost:{port}/ok"),
        format!("http://LOCALHOST:{port}/upper"),
        format!("http://localhost:{port}/redirect?to={to_other_host}"),
        format!("http://localhost:{port}/redirect?to={to_same_host}"),
        format!("http://127.0.0.1:{port}\\@localhost/backslash"),
        format!("http://localhost:{port}/loop"),
    ];
    let outcomes = probe(&server, &urls).await;
    assert_eq!(outcomes[0], json!({"status": 200, "body": "peer saw /ok"}));
    assert_eq!(
        outcomes[1],
        json!({"status": 200, "body": "peer saw /upper"})
    );
    refused(&outcomes[2], "host not allowed");
    assert_eq!(
        outcomes[3],
        json!({"status": 200, "body": "peer saw /landed"})
    );
    refused(&outcomes[4], "host not allowed");
    refused(&outcomes[5], "redirects");
    let hits = peer.hits();
    assert!(!hits.contains(&"/secret".to_owned()), "{hits:?}");
    assert!(!hits.contains(&"/backslash".to_owned()), "{hits:?}");
    assert!(!hits.iter().any(|h| h.contains("allowed")), "{hits:?}");

    // The server is still serving (a refused fetch is an answer, not a crash).
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_takes_a_request_and_answers_a_response_with_bytes_both_ways() {
    let peer = start_peer().await;
    let (server, _config) =
        start("[functions]\nfetch_allowed_hosts = [\"127.0.0.1\"]\nfetch_deny_private = false\n");
    let code = "export default async (e) => {\n  const bytes = new Uint8Array([0, 255, 1, 128, 10, 13]);\n  const request = new Request(e.url, { method: 'POST', headers: { 'x-sig': 'abc' }, body: bytes });\n  const r = await fetch(request);\n  const back = Array.from(new Uint8Array(await r.arrayBuffer()));\n  const text = await fetch(e.url, { method: 'PUT', body: 'h\\u00e9llo' });\n  return { isResponse: r instanceof Response, status: r.status, ok: r.ok, back, method: r.headers.get('x-method'), sig: r.headers.get('x-sig'), cookies: r.headers.getSetCookie(), type: r.headers.get('content-type'), text: await text.text(), textMethod: text.headers.get('x-method') };\n};";
    let body = run(
        &server,
        "bytes",
        code,
        json!({ "url": format!("http://127.0.0.1:{}/echo", peer.port) }),
    )
    .await;
    assert_eq!(
        body,
        json!({
            "isResponse": true, "status": 200, "ok": true, "back": [0, 255, 1, 128, 10, 13],
            "method": "POST", "sig": "abc", "cookies": ["a=1", "b=2"],
            "type": "application/octet-stream", "text": "h\u{e9}llo", "textMethod": "PUT"
        })
    );
}
