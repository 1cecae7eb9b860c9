//! Every route × every scope: a token whose scopes do not cover a route gets 403, one whose
//! scopes do is let through (whatever the route then answers). The table must name every
//! route the routers in `services/src/routes/` declare; a route added without a row fails
//! [`the_table_names_every_route`].

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use ferrobase_core::auth::Role;
use serde_json::{Value, json};

use crate::harness::{Services, TestApp, TokenSpec};

/// One route: how the router declares it, a concrete request to it, and what covers it.
struct Row {
    method: &'static str,
    template: &'static str,
    uri: &'static str,
    /// Scopes a token needs, all of them.
    needs: &'static [&'static str],
    role: Role,
    body: Option<Value>,
}

const fn row(
    method: &'static str,
    template: &'static str,
    uri: &'static str,
    needs: &'static [&'static str],
) -> Row {
    Row {
        method,
        template,
        uri,
        needs,
        role: Role::Service,
        body: None,
    }
}

impl Row {
    fn admin(mut self) -> Self {
        self.role = Role::Admin;
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Routes that token scopes do not decide: probes and web actions (no token at all), and the
/// auth service's sign-up, sign-in and code routes (no token) and its session routes, which
/// take the signed-in user's own session token (tests/tests/auth_accounts.rs covers them).
const UNAUTHENTICATED: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("ANY", "/web/{ns}/{name}"),
    ("ANY", "/web/{ns}/{name}/{*path}"),
    ("POST", "/v1/auth/{ns}/signup"),
    ("POST", "/v1/auth/{ns}/token"),
    ("POST", "/v1/auth/{ns}/recover"),
    ("POST", "/v1/auth/{ns}/resend"),
    ("POST", "/v1/auth/{ns}/verify"),
    ("GET", "/v1/auth/{ns}/.well-known/jwks.json"),
    ("POST", "/v1/auth/{ns}/logout"),
    ("GET", "/v1/auth/{ns}/user"),
    ("PUT", "/v1/auth/{ns}/user"),
    ("GET", "/v1/auth/{ns}/sessions"),
    ("DELETE", "/v1/auth/{ns}/sessions/{id}"),
];

const Q: &str = "/v1/queues/{ns}/{queue}";

fn table() -> Vec<Row> {
    let txn = json!({"ops": [{"op": "delete", "key": "k"}]});
    vec![
        // KV
        row("GET", "/v1/kv/{ns}", "/v1/kv/a", &["kv:read"]),
        row("GET", "/v1/kv/{ns}/{*key}", "/v1/kv/a/k", &["kv:read"]),
        row("PUT", "/v1/kv/{ns}/{*key}", "/v1/kv/a/k", &["kv:write"]),
        row("DELETE", "/v1/kv/{ns}/{*key}", "/v1/kv/a/k", &["kv:write"]),
        row("POST", "/v1/kv/{ns}/{*key}", "/v1/kv/a/_txn", &["kv:write"]).body(txn),
        // events
        row("GET", "/v1/events/{ns}", "/v1/events/a", &["events:read"]),
        row(
            "GET",
            "/v1/events/{ns}/stream",
            "/v1/events/a/stream",
            &["events:read"],
        ),
        // the auth service's operator routes (admin tokens with auth scopes)
        row(
            "GET",
            "/v1/auth/{ns}/config",
            "/v1/auth/a/config",
            &["auth:read"],
        )
        .admin(),
        row(
            "PUT",
            "/v1/auth/{ns}/config",
            "/v1/auth/a/config",
            &["auth:write"],
        )
        .admin()
        .body(json!({"enabled": true})),
        row(
            "GET",
            "/v1/auth/{ns}/admin/users",
            "/v1/auth/a/admin/users",
            &["auth:read"],
        )
        .admin(),
        row(
            "GET",
            "/v1/auth/{ns}/admin/users/{id}",
            "/v1/auth/a/admin/users/u1",
            &["auth:read"],
        )
        .admin(),
        row(
            "PUT",
            "/v1/auth/{ns}/admin/users/{id}",
            "/v1/auth/a/admin/users/u1",
            &["auth:write"],
        )
        .admin()
        .body(json!({"disabled": true})),
        row(
            "DELETE",
            "/v1/auth/{ns}/admin/users/{id}",
            "/v1/auth/a/admin/users/u1",
            &["auth:write"],
        )
        .admin(),
        row(
            "POST",
            "/v1/auth/{ns}/admin/keys/rotate",
            "/v1/auth/a/admin/keys/rotate",
            &["auth:write"],
        )
        .admin(),
        // policies
        row(
            "GET",
            "/v1/policies/{ns}",
            "/v1/policies/a",
            &["policy:read"],
        )
        .admin(),
        row(
            "PUT",
            "/v1/policies/{ns}",
            "/v1/policies/a",
            &["policy:write"],
        )
        .admin()
        .body(json!({"rules": []})),
        // storage
        row(
            "GET",
            "/v1/storage/{ns}",
            "/v1/storage/a",
            &["storage:read"],
        ),
        row(
            "GET",
            "/v1/storage/{ns}/{bucket}",
            "/v1/storage/a/b",
            &["storage:read"],
        ),
        row(
            "PUT",
            "/v1/storage/{ns}/{bucket}",
            "/v1/storage/a/b",
            &["storage:write"],
        ),
        row(
            "DELETE",
            "/v1/storage/{ns}/{bucket}",
            "/v1/storage/a/b",
            &["storage:write"],
        ),
        row(
            "GET",
            "/v1/storage/{ns}/{bucket}/{*key}",
            "/v1/storage/a/b/k",
            &["storage:read"],
        ),
        row(
            "PUT",
            "/v1/storage/{ns}/{bucket}/{*key}",
            "/v1/storage/a/b/k",
            &["storage:write"],
        ),
        row(
            "DELETE",
            "/v1/storage/{ns}/{bucket}/{*key}",
            "/v1/storage/a/b/k",
            &["storage:write"],
        ),
        row(
            "POST",
            "/v1/storage/{ns}/{bucket}/{*key}",
            "/v1/storage/a/b/_presign",
            &["storage:read"],
        )
        .body(json!({"method": "GET", "key": "k"})),
        // functions and activations
        row(
            "GET",
            "/v1/functions/{ns}",
            "/v1/functions/a",
            &["function:read"],
        ),
        row(
            "GET",
            "/v1/functions/{ns}/{name}",
            "/v1/functions/a/f",
            &["function:read"],
        ),
        row(
            "PUT",
            "/v1/functions/{ns}/{name}",
            "/v1/functions/a/f",
            &["function:write"],
        )
        .body(json!({})),
        row(
            "DELETE",
            "/v1/functions/{ns}/{name}",
            "/v1/functions/a/f",
            &["function:write"],
        ),
        row(
            "POST",
            "/v1/functions/{ns}/{name}/invoke",
            "/v1/functions/a/f/invoke",
            &["function:invoke"],
        )
        .body(json!({})),
        row(
            "GET",
            "/v1/activations/{ns}",
            "/v1/activations/a",
            &["function:read"],
        ),
        row(
            "GET",
            "/v1/activations/{ns}/{id}",
            "/v1/activations/a/x",
            &["function:read"],
        ),
        // triggers, rules, dead letters
        row(
            "GET",
            "/v1/triggers/{ns}",
            "/v1/triggers/a",
            &["function:read"],
        ),
        row("GET", "/v1/rules/{ns}", "/v1/rules/a", &["function:read"]),
        row(
            "GET",
            "/v1/triggers/{ns}/{name}",
            "/v1/triggers/a/t",
            &["function:read"],
        ),
        row(
            "PUT",
            "/v1/triggers/{ns}/{name}",
            "/v1/triggers/a/t",
            &["function:write"],
        )
        .body(json!({})),
        row(
            "DELETE",
            "/v1/triggers/{ns}/{name}",
            "/v1/triggers/a/t",
            &["function:write"],
        ),
        row(
            "POST",
            "/v1/triggers/{ns}/{name}/fire",
            "/v1/triggers/a/t/fire",
            &["function:invoke"],
        )
        .body(json!({})),
        row(
            "GET",
            "/v1/rules/{ns}/{name}",
            "/v1/rules/a/r",
            &["function:read"],
        ),
        row(
            "PUT",
            "/v1/rules/{ns}/{name}",
            "/v1/rules/a/r",
            &["function:write"],
        )
        .body(json!({})),
        row(
            "DELETE",
            "/v1/rules/{ns}/{name}",
            "/v1/rules/a/r",
            &["function:write"],
        ),
        row("GET", "/v1/dlq/{ns}", "/v1/dlq/a", &["function:read"]),
        row(
            "DELETE",
            "/v1/dlq/{ns}/{id}",
            "/v1/dlq/a/x",
            &["function:write"],
        ),
        row(
            "POST",
            "/v1/dlq/{ns}/{id}/replay",
            "/v1/dlq/a/x/replay",
            &["function:write"],
        ),
        // queues
        row("GET", "/v1/queues/{ns}", "/v1/queues/a", &["queue:read"]),
        row("GET", Q, "/v1/queues/a/q", &["queue:read"]),
        row("PUT", Q, "/v1/queues/a/q", &["queue:write"]).body(json!({})),
        row(
            "POST",
            "/v1/queues/{ns}/{queue}/messages",
            "/v1/queues/a/q/messages",
            &["queue:write"],
        )
        .body(json!({"messages": []})),
        row(
            "POST",
            "/v1/queues/{ns}/{queue}/pull",
            "/v1/queues/a/q/pull",
            &["queue:read"],
        )
        .body(json!({})),
        row(
            "POST",
            "/v1/queues/{ns}/{queue}/ack",
            "/v1/queues/a/q/ack",
            &["queue:write"],
        )
        .body(json!({"receipts": []})),
        row(
            "POST",
            "/v1/queues/{ns}/{queue}/nack",
            "/v1/queues/a/q/nack",
            &["queue:write"],
        )
        .body(json!({"receipts": []})),
        row(
            "GET",
            "/v1/queues/{ns}/{queue}/dlq",
            "/v1/queues/a/q/dlq",
            &["queue:read"],
        ),
        row(
            "POST",
            "/v1/queues/{ns}/{queue}/dlq/replay",
            "/v1/queues/a/q/dlq/replay",
            &["queue:write"],
        )
        .body(json!({})),
        row(
            "POST",
            "/v1/queues/{ns}/{queue}/dlq/purge",
            "/v1/queues/a/q/dlq/purge",
            &["queue:write"],
        )
        .body(json!({})),
        row(
            "GET",
            "/v1/queues/{ns}/{queue}/subscribe",
            "/v1/queues/a/q/subscribe",
            &["queue:read", "queue:write"],
        ),
    ]
}

/// Every `service:action` scope there is.
fn all_scopes() -> Vec<String> {
    let services = ["kv", "storage", "queue", "function", "events", "policy"];
    let actions = ["read", "write", "invoke"];
    services
        .iter()
        .flat_map(|s| actions.iter().map(move |a| format!("{s}:{a}")))
        .collect()
}

async fn status(app: &TestApp, row: &Row, scopes: &[&str]) -> StatusCode {
    let token = app.mint(TokenSpec::new(row.role, Some("a")).scopes(scopes));
    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
    let call = app.request(method, row.uri).token(&token);
    let request = match &row.body {
        Some(body) => call
            .header("content-type", "application/json")
            .build(Body::from(body.to_string())),
        None => call.build(Body::empty()),
    };
    // Streams (events, subscriptions) answer at once; their bodies are never read.
    app.send_raw(request).await.status()
}

#[tokio::test]
async fn every_route_checks_the_tokens_scopes() {
    let app = TestApp::with_services(Services::roomy()).await;
    let scopes = all_scopes();
    for row in table() {
        let name = format!("{} {}", row.method, row.uri);
        for scope in &scopes {
            let single_covers = row.needs == [scope.as_str()];
            let got = status(&app, &row, &[scope]).await;
            if single_covers {
                assert_ne!(got, StatusCode::FORBIDDEN, "{name} with {scope}");
            } else {
                assert_eq!(got, StatusCode::FORBIDDEN, "{name} with {scope}");
            }
        }
        let got = status(&app, &row, row.needs).await;
        assert_ne!(got, StatusCode::FORBIDDEN, "{name} with {:?}", row.needs);
        let got = status(&app, &row, &["*"]).await;
        assert_ne!(got, StatusCode::FORBIDDEN, "{name} with *");
        let service = row.needs[0].split(':').next().unwrap();
        let got = status(&app, &row, &[&format!("{service}:*")]).await;
        assert_ne!(got, StatusCode::FORBIDDEN, "{name} with {service}:*");
    }
}

#[tokio::test]
async fn a_kv_read_token_cannot_manage_triggers_rules_or_dead_letters() {
    let app = TestApp::with_services(Services::roomy()).await;
    let reader = app.mint(TokenSpec::new(Role::Service, Some("a")).scopes(&["kv:read"]));
    let rule = json!({"trigger": {"kind": "cron", "schedule": "* * * * *"}, "function": "f"});
    app.put("/v1/triggers/a/t")
        .token(&reader)
        .json(&json!({"source": {"kind": "manual"}}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.put("/v1/rules/a/r")
        .token(&reader)
        .json(&rule)
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.get("/v1/dlq/a")
        .token(&reader)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.post("/v1/dlq/a/x/replay")
        .token(&reader)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    // Nothing was stored.
    let admin = app.admin();
    let resp = app.get("/v1/rules/a/r").token(&admin).send().await;
    resp.assert_error(StatusCode::NOT_FOUND, "not_found");
    let resp = app.get("/v1/triggers/a/t").token(&admin).send().await;
    resp.assert_error(StatusCode::NOT_FOUND, "not_found");
}

/// `(METHOD, path)` of every `.route(...)` in the routers' sources.
fn declared_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let base = text
            .split("let base = \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned);
        for call in text.split(".route(").skip(1) {
            // The call's arguments: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(at, _)| at)
                .unwrap();
            let args = &call[..end];
            let path = if args.trim_start().starts_with("base") {
                base.clone().unwrap()
            } else {
                let literal = args.split('"').nth(1).unwrap();
                match &base {
                    Some(base) => literal.replace("{base}", base),
                    None => literal.to_owned(),
                }
            };
            let handlers = &args[args.find(',').unwrap()..];
            for method in ["get", "put", "post", "delete", "any"] {
                let needle = format!("{method}(");
                let found = handlers.match_indices(&needle).any(|(at, _)| {
                    at == 0
                        || !handlers[..at]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if found {
                    routes.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes
}

#[test]
fn the_table_names_every_route() {
    let declared = declared_routes();
    assert!(
        declared.len() > 30,
        "the route scan found too little: {declared:?}"
    );
    let mut listed: BTreeSet<(String, String)> = table()
        .iter()
        .map(|row| (row.method.to_owned(), row.template.to_owned()))
        .collect();
    listed.extend(
        UNAUTHENTICATED
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string())),
    );
    let missing: Vec<_> = declared.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&declared).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "routes without a scope row: {missing:?}; rows for no route: {stale:?}"
    );
}
