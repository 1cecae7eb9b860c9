//! Policies: their admin-only API, and what they let `user` tokens do.

use axum::http::StatusCode;
use ferrobase_core::auth::Role;
use serde_json::{Value, json};

use crate::harness::{TestApp, TokenSpec};

/// Users may read and write their own subtree.
fn own_subtree() -> Value {
    json!({"rules": [{
        "effect": "allow",
        "roles": ["user"],
        "actions": ["read", "write"],
        "resources": ["kv:users/{sub}/**"],
    }]})
}

async fn set_policy(app: &TestApp, ns: &str, policy: &Value) {
    let resp = app
        .put(&format!("/v1/policies/{ns}"))
        .token(&app.admin())
        .json(policy)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
}

// ---- the policy API ----

#[tokio::test]
async fn only_admins_read_and_write_policies() {
    let app = TestApp::new().await;
    let admin = app.mint(TokenSpec::new(Role::Admin, Some("shop")));
    app.get("/v1/policies/shop")
        .token(&admin)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let resp = app
        .put("/v1/policies/shop")
        .token(&admin)
        .json(&own_subtree())
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(resp.json(), &own_subtree());
    let resp = app.get("/v1/policies/shop").token(&admin).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json(), &own_subtree());

    // Defaults are filled in and shown.
    let minimal = json!({"rules": [{"actions": ["read"], "resources": ["kv:public/**"]}]});
    let resp = app
        .put("/v1/policies/shop")
        .token(&admin)
        .json(&minimal)
        .await;
    assert_eq!(
        resp.json(),
        &json!({"rules": [{
            "effect": "allow", "roles": ["user"], "actions": ["read"],
            "resources": ["kv:public/**"],
        }]})
    );

    for token in [app.service("shop"), app.user("shop", "alice")] {
        app.get("/v1/policies/shop")
            .token(&token)
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "permission_denied");
        app.put("/v1/policies/shop")
            .token(&token)
            .json(&json!({"rules": [{"actions": ["write"], "resources": ["kv:**"]}]}))
            .await
            .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    }
    let resp = app.get("/v1/policies/shop").token(&admin).send().await;
    assert_eq!(
        resp.json()["rules"][0]["resources"],
        json!(["kv:public/**"])
    );
}

#[tokio::test]
async fn invalid_policies_are_refused_and_not_stored() {
    let app = TestApp::new().await;
    let admin = app.admin();
    let rule = |extra: Value| {
        let mut rule = json!({"actions": ["read"], "resources": ["kv:a/**"]});
        for (k, v) in extra.as_object().unwrap() {
            rule[k] = v.clone();
        }
        json!({ "rules": [rule] })
    };
    let invalid = [
        json!({}),
        json!({"rules": [], "extra": true}),
        rule(json!({"resources": ["nosuch:a/**"]})),
        rule(json!({"resources": ["kv:"]})),
        rule(json!({"resources": ["kv:a//b"]})),
        rule(json!({"resources": ["kv:a*/b"]})),
        rule(json!({"resources": ["kv:{user}/x"]})),
        rule(json!({"resources": []})),
        rule(json!({"actions": []})),
        rule(json!({"actions": ["destroy"]})),
        rule(json!({"roles": ["admin"]})),
        rule(json!({"roles": ["service"], "effect": "deny"})),
        rule(json!({"effect": "maybe"})),
        rule(json!({"colour": "red"})),
    ];
    for ns in ["fresh", "kept"] {
        if ns == "kept" {
            set_policy(&app, ns, &own_subtree()).await;
        }
        for policy in &invalid {
            let resp = app
                .put(&format!("/v1/policies/{ns}"))
                .token(&admin)
                .json(policy)
                .await;
            assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{policy}: {resp:?}");
            resp.assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
        }
        app.put(&format!("/v1/policies/{ns}"))
            .token(&admin)
            .header("content-type", "application/json")
            .body("{not json")
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    }
    app.get("/v1/policies/fresh")
        .token(&admin)
        .send()
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let resp = app.get("/v1/policies/kept").token(&admin).send().await;
    assert_eq!(resp.json(), &own_subtree(), "the previous policy stays");
    // Nothing leaked into the namespaces' own logs either.
    assert_eq!(app.events("fresh").await, Vec::<Value>::new());
}

// ---- what policies grant to users ----

#[tokio::test]
async fn a_user_reaches_only_her_own_subtree() {
    let app = TestApp::new().await;
    let alice = app.user("shop", "alice");
    app.put_value("shop", "users/bob/profile", "bob's").await;
    app.put_value("shop", "settings", "global").await;

    // Without a policy a user may do nothing.
    app.get("/v1/kv/shop/users/alice/profile")
        .token(&alice)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.put("/v1/kv/shop/users/alice/profile")
        .token(&alice)
        .body("mine")
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");

    set_policy(&app, "shop", &own_subtree()).await;
    let resp = app
        .put("/v1/kv/shop/users/alice/profile")
        .token(&alice)
        .body("mine")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let resp = app
        .get("/v1/kv/shop/users/alice/profile")
        .token(&alice)
        .send()
        .await;
    assert_eq!(resp.text(), "mine");
    let resp = app
        .put("/v1/kv/shop/users/alice/deep/nested/key")
        .token(&alice)
        .body("deep")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let resp = app
        .delete("/v1/kv/shop/users/alice/deep/nested/key")
        .token(&alice)
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);

    let forbidden = [
        "users/bob/profile",
        "users/bob/new",
        "settings",
        "users/alicex/profile",
        "users",
        "other/alice/profile",
    ];
    for key in forbidden {
        let uri = format!("/v1/kv/shop/{key}");
        app.get(&uri)
            .token(&alice)
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "permission_denied");
        app.put(&uri)
            .token(&alice)
            .body("hijack")
            .await
            .assert_error(StatusCode::FORBIDDEN, "permission_denied");
        app.delete(&uri)
            .token(&alice)
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    }
    // Transactions are checked key by key: one foreign key refuses all of it.
    for txn in [
        json!({"ops": [
            {"op": "put", "key": "users/alice/a", "value": "1"},
            {"op": "put", "key": "users/bob/profile", "value": "hijack"},
        ]}),
        json!({
            "checks": [{"key": "users/bob/profile", "exists": true}],
            "ops": [{"op": "put", "key": "users/alice/a", "value": "1"}],
        }),
    ] {
        app.post("/v1/kv/shop/_txn")
            .token(&alice)
            .json(&txn)
            .await
            .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    }
    let resp = app
        .post("/v1/kv/shop/_txn")
        .token(&alice)
        .json(&json!({"ops": [{"op": "put", "key": "users/alice/a", "value": "1"}]}))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");

    assert_eq!(
        app.value_of("shop", "users/bob/profile").await.as_deref(),
        Some(&b"bob's"[..])
    );
    assert_eq!(app.value_of("shop", "users/bob/new").await, None);
    assert_eq!(app.value_of("shop", "users/alicex/profile").await, None);
    let subjects: Vec<String> = app
        .events("shop")
        .await
        .iter()
        .map(|e| format!("{} {}", e["type"], e["subject"]))
        .collect();
    assert_eq!(
        subjects,
        [
            r#""ferrobase.kv.put" "users/bob/profile""#,
            r#""ferrobase.kv.put" "settings""#,
            r#""ferrobase.kv.put" "users/alice/profile""#,
            r#""ferrobase.kv.put" "users/alice/deep/nested/key""#,
            r#""ferrobase.kv.delete" "users/alice/deep/nested/key""#,
            r#""ferrobase.kv.put" "users/alice/a""#,
        ]
    );
}

#[tokio::test]
async fn a_user_lists_and_sees_events_of_her_keys_only() {
    let app = TestApp::new().await;
    set_policy(&app, "shop", &own_subtree()).await;
    for key in [
        "users/alice/a",
        "users/alice/b",
        "users/bob/a",
        "users/carol/a",
        "zz/global",
    ] {
        app.put_value("shop", key, "v").await;
    }
    let alice = app.user("shop", "alice");

    let resp = app.get("/v1/kv/shop").token(&alice).send().await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let keys: Vec<&str> = resp.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["users/alice/a", "users/alice/b"]);

    let resp = app.get("/v1/events/shop").token(&alice).send().await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let subjects: Vec<&str> = resp.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["users/alice/a", "users/alice/b"]);
    assert_eq!(
        resp.json()["next_after"],
        5,
        "the cursor passes hidden events"
    );

    // A user without any grant sees nothing at all.
    let mallory = app.user("shop", "mallory");
    let resp = app.get("/v1/kv/shop").token(&mallory).send().await;
    assert_eq!(resp.json()["items"], json!([]));
    let resp = app.get("/v1/events/shop").token(&mallory).send().await;
    assert_eq!(resp.json()["events"], json!([]));
}

#[tokio::test]

async fn a_users_list_cursor_names_no_hidden_key() {
    let app = TestApp::new().await;
    set_policy(&app, "shop", &own_subtree()).await;
    app.put_value("shop", "users/aaron/secret-name", "v").await;
    app.put_value("shop", "users/alice/a", "v").await;
    let alice = app.user("shop", "alice");

    let resp = app
        .get("/v1/kv/shop?prefix=users/&limit=1")
        .token(&alice)
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let body = resp.text();
    assert!(
        !body.contains("aaron"),
        "alice may not read users/aaron/..., so the page must not name it: {body}"
    );
}

#[tokio::test]
async fn deny_rules_win_over_allow_rules() {
    let app = TestApp::new().await;
    let policy = json!({"rules": [
        {"actions": ["read", "write"], "resources": ["kv:users/{sub}/**"]},
        {"effect": "deny", "actions": ["write"], "resources": ["kv:users/*/locked/**"]},
        {"effect": "deny", "actions": ["read", "write"], "resources": ["kv:**/secret"]},
    ]});
    set_policy(&app, "shop", &policy).await;
    app.put_value("shop", "users/alice/locked/plan", "gold")
        .await;
    app.put_value("shop", "users/alice/secret", "s").await;
    let alice = app.user("shop", "alice");

    let resp = app
        .get("/v1/kv/shop/users/alice/locked/plan")
        .token(&alice)
        .send()
        .await;
    assert_eq!(resp.text(), "gold", "reading is still allowed");
    app.put("/v1/kv/shop/users/alice/locked/plan")
        .token(&alice)
        .body("platinum")
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    app.get("/v1/kv/shop/users/alice/secret")
        .token(&alice)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    let resp = app
        .get("/v1/kv/shop?prefix=users/alice/")
        .token(&alice)
        .send()
        .await;
    let keys: Vec<&str> = resp.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["users/alice/locked/plan"]);
    assert_eq!(
        app.value_of("shop", "users/alice/locked/plan")
            .await
            .as_deref(),
        Some(&b"gold"[..])
    );
}

#[tokio::test]
async fn a_subject_is_matched_literally() {
    let app = TestApp::new().await;
    set_policy(&app, "shop", &own_subtree()).await;
    app.put_value("shop", "users/bob/profile", "bob's").await;
    // Subjects that look like patterns or paths match only themselves.
    for sub in ["*", "**", "bob/..", "bob/profile"] {
        let token = app.user("shop", sub);
        app.get("/v1/kv/shop/users/bob/profile")
            .token(&token)
            .send()
            .await
            .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    }
}

#[tokio::test]
async fn policy_changes_apply_to_the_next_request() {
    let app = TestApp::new().await;
    let alice = app.user("shop", "alice");
    let uri = "/v1/kv/shop/users/alice/x";
    app.put(uri)
        .token(&alice)
        .body("1")
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    set_policy(&app, "shop", &own_subtree()).await;
    let resp = app.put(uri).token(&alice).body("1").await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    set_policy(
        &app,
        "shop",
        &json!({"rules": [{"actions": ["read"], "resources": ["kv:users/{sub}/**"]}]}),
    )
    .await;
    app.put(uri)
        .token(&alice)
        .body("2")
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    let resp = app.get(uri).token(&alice).send().await;
    assert_eq!(resp.text(), "1");
}

#[tokio::test]
async fn a_users_scopes_narrow_her_policy() {
    let app = TestApp::new().await;
    set_policy(&app, "shop", &own_subtree()).await;
    app.put_value("shop", "users/alice/a", "v").await;
    let reader = app.mint(
        TokenSpec::new(Role::User, Some("shop"))
            .sub("alice")
            .scopes(&["kv:read"]),
    );
    let resp = app
        .get("/v1/kv/shop/users/alice/a")
        .token(&reader)
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    app.put("/v1/kv/shop/users/alice/a")
        .token(&reader)
        .body("w")
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    assert_eq!(
        app.value_of("shop", "users/alice/a").await.as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn a_user_pages_through_her_keys_past_hidden_ones_without_gaps() {
    let app = TestApp::new().await;
    set_policy(&app, "shop", &own_subtree()).await;
    // Hidden keys before, between and after alice's, more than one page of them.
    for i in 0..30 {
        app.put_value("shop", &format!("users/aaron/{i:02}"), "x")
            .await;
        app.put_value("shop", &format!("users/zed/{i:02}"), "x")
            .await;
    }
    for i in 0..7 {
        app.put_value("shop", &format!("users/alice/{i:02}"), "v")
            .await;
    }
    let alice = app.user("shop", "alice");
    let mut seen = Vec::new();
    let mut uri = "/v1/kv/shop?prefix=users/&limit=3".to_owned();
    for _ in 0..10 {
        let resp = app.get(&uri).token(&alice).send().await;
        assert_eq!(resp.status, StatusCode::OK);
        let body = resp.text().to_owned();
        assert!(!body.contains("aaron") && !body.contains("zed"), "{body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        for item in json["items"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_owned());
        }
        match json["next"].as_str() {
            Some(next) => uri = format!("/v1/kv/shop?prefix=users/&limit=3&after={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("users/alice/{i:02}")).collect();
    assert_eq!(seen, expected);
}
