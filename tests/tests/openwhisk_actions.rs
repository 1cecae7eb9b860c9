//! OpenWhisk's action contract on the real binary, as apache/openwhisk documents it
//! (actions-nodejs.md, webactions.md): scripts in sloppy mode with `global`, the `__OW_*`
//! action context, `{}` for nothing, application errors, and web actions' params and
//! responses (status codes, repeated headers, base64 bodies, extensions).

use ferrobase_tests::Server;
use serde_json::{Value, json};

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

    async fn deploy(&self, name: &str, code: &str) {
        let response = self
            .http
            .put(format!("{}/v1/functions/a/{name}", self.server.url))
            .bearer_auth(&self.token)
            .json(&json!({"code": code, "web": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let summary: Value = response.json().await.unwrap();
        assert_eq!(summary["contract"], "openwhisk", "{summary}");
    }

    async fn invoke(&self, name: &str, params: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/functions/a/{name}/invoke", self.server.url))
            .bearer_auth(&self.token)
            .json(&params)
            .send()
            .await
            .unwrap()
    }

    fn web(&self, path: &str) -> String {
        format!("{}/web/a/{path}", self.server.url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_sloppy_with_global_and_the_action_context() {
    let f = Fixture::new();
    f.deploy(
        "context",
        "function main(params) {\n  counted = params.n + 1; // undeclared: a global in sloppy mode\n  return { counted: global.counted, same: global === globalThis, name: process.env.__OW_ACTION_NAME, id: process.env.__OW_ACTIVATION_ID, ns: process.env.__OW_NAMESPACE, future: Number(process.env.__OW_DEADLINE) > Date.now(), host: process.env.__OW_API_HOST };\n}",
    )
    .await;
    let response = f.invoke("context", json!({"n": 1})).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-ferrobase-activation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let value: Value = response.json().await.unwrap();
    assert_eq!(
        value,
        json!({"counted": 2, "same": true, "name": "/a/context", "id": id, "ns": "a", "future": true, "host": f.server.url})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_an_empty_object_and_errors_are_application_errors() {
    let f = Fixture::new();
    f.deploy("nothing", "function main(params) {}").await;
    let response = f.invoke("nothing", json!({})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));

    for (name, code, message) in [
        (
            "result-error",
            "function main() { return { error: 'the order is gone' }; }",
            "the order is gone",
        ),
        (
            "object-error",
            "function main() { return { error: { code: 7 } }; }",
            r#"{"code":7}"#,
        ),
        (
            "rejected",
            "function main() { return Promise.reject(new Error('rejected here')); }",
            "rejected here",
        ),
        (
            "thrown",
            "function main() { throw 'thrown here'; }",
            "thrown value: thrown here",
        ),
    ] {
        f.deploy(name, code).await;
        let response = f.invoke(name, json!({})).await;
        assert_eq!(response.status(), 502, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "function_error", "{name}: {body}");
        assert_eq!(body["error"]["message"], message, "{name}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_actions_get_merged_params_and_the_ow_fields() {
    let f = Fixture::new();
    f.deploy(
        "echo",
        "function main(p) { return { statusCode: 201, headers: { 'Set-Cookie': ['a=1', 'b=2'], 'content-type': 'application/json' }, body: { q: p.q, j: p.j, method: p.__ow_method, path: p.__ow_path, query: p.__ow_query, test: p.__ow_headers['x-test'], auth: p.__ow_headers.authorization ?? null, body: p.__ow_body } }; }",
    )
    .await;
    let response = f
        .http
        .post(f.web("echo/sub/path?q=1&access_token=secret"))
        .header("x-test", "yes")
        .bearer_auth(&f.token)
        .json(&json!({"j": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"q": "1", "j": 2, "method": "post", "path": "/sub/path", "query": "q=1", "test": "yes", "auth": null, "body": "{\"j\":2}"})
    );

    let form: Value = f
        .http
        .put(f.web("echo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("j=3&q=4")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (form["j"].clone(), form["method"].clone()),
        (json!("3"), json!("put"))
    );

    let binary: Value = f
        .http
        .post(f.web("echo"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 255, 1])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(binary["body"], "AP8B", "binary bodies arrive as base64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_responses_decode_base64_bodies_and_follow_extensions() {
    let f = Fixture::new();
    f.deploy(
        "pixel",
        "function main() { return { headers: { 'content-type': 'image/png' }, body: 'iVBORw0KGgo=' }; }",
    )
    .await;
    let response = f.http.get(f.web("pixel")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        b"\x89PNG\r\n\x1a\n"
    );

    f.deploy("bad-pixel", "function main() { return { headers: { 'content-type': 'image/png' }, body: 'not base64!' }; }").await;
    let response = f.http.get(f.web("bad-pixel")).send().await.unwrap();
    assert_eq!(response.status(), 502);

    f.deploy(
        "empty",
        "function main() { return { headers: { 'x-a': '1' } }; }",
    )
    .await;
    assert_eq!(
        f.http.get(f.web("empty")).send().await.unwrap().status(),
        204
    );

    f.deploy(
        "page",
        "function main() { return { html: '<b>hi</b>', text: 'hi', n: 1 }; }",
    )
    .await;
    let html = f.http.get(f.web("page.html")).send().await.unwrap();
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(html.text().await.unwrap(), "<b>hi</b>");
    let text = f.http.get(f.web("page.text")).send().await.unwrap();
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(text.text().await.unwrap(), "hi");
    let json_answer: Value = f
        .http
        .get(f.web("page.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        json_answer,
        json!({"html": "<b>hi</b>", "text": "hi", "n": 1})
    );
    assert_eq!(
        f.http.get(f.web("page.xml")).send().await.unwrap().status(),
        404
    );
    // A string body without a content type is HTML, as on OpenWhisk.
    f.deploy("string", "function main() { return { body: '<p>x</p>' }; }")
        .await;
    let response = f.http.get(f.web("string.http")).send().await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}
