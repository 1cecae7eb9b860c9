//! Listings name only what the caller may read: storage objects, common prefixes and cursors
//! for `user` tokens, and no listing at all for tokens scoped to another service.

use axum::http::StatusCode;
use ferrobase_core::auth::Role;
use serde_json::{Value, json};

use crate::harness::{Services, TestApp, TokenSpec};

async fn app() -> TestApp {
    TestApp::with_services(Services::roomy()).await
}

async fn set_policy(app: &TestApp, ns: &str, policy: &Value) {
    let resp = app
        .put(&format!("/v1/policies/{ns}"))
        .token(&app.admin())
        .json(policy)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
}

async fn put_object(app: &TestApp, bucket: &str, key: &str) {
    let resp = app
        .put(&format!("/v1/storage/a/{bucket}/{key}"))
        .token(&app.admin())
        .body("secret")
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
}

async fn create_bucket(app: &TestApp, bucket: &str) {
    let resp = app
        .put(&format!("/v1/storage/a/{bucket}"))
        .token(&app.admin())
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
}

/// Follows `next` from `first` to the end, asserting no answer mentions any of `hidden`;
/// returns the keys and prefixes seen.
async fn page_through(
    app: &TestApp,
    token: &str,
    first: &str,
    hidden: &[&str],
) -> (Vec<String>, Vec<String>) {
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    let mut uri = first.to_owned();
    for _ in 0..50 {
        let resp = app.get(&uri).token(token).send().await;
        assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
        for word in hidden {
            assert!(
                !resp.text().contains(word),
                "{uri} leaks {word}: {}",
                resp.text()
            );
        }
        let json = resp.json();
        for item in json["items"].as_array().unwrap() {
            keys.push(item["key"].as_str().unwrap().to_owned());
        }
        for prefix in json["prefixes"].as_array().into_iter().flatten() {
            prefixes.push(prefix.as_str().unwrap().to_owned());
        }
        match json["next"].as_str() {
            Some(next) => {
                for word in hidden {
                    assert!(!next.contains(word));
                }
                uri = format!("{first}&after={next}");
            }
            None => return (keys, prefixes),
        }
    }
    panic!("paging from {first} does not end");
}

#[tokio::test]
async fn a_user_without_grants_learns_no_object_names_from_a_listing() {
    let app = app().await;
    create_bucket(&app, "hrdocs").await;
    put_object(&app, "hrdocs", "layoffs/plan-q1.pdf").await;
    put_object(&app, "hrdocs", "salaries/2026.xlsx").await;
    set_policy(
        &app,
        "a",
        &json!({"rules": [{"actions": ["read"], "resources": ["storage:public/**"]}]}),
    )
    .await;
    let user = app.user("a", "mallory");
    let hidden = ["layoffs", "salaries", "plan-q1"];

    let resp = app
        .get("/v1/storage/a/hrdocs?limit=1")
        .token(&user)
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    assert_eq!(resp.json()["items"], json!([]));
    assert_eq!(resp.json()["next"], Value::Null, "{resp:?}");

    let resp = app
        .get("/v1/storage/a/hrdocs?delimiter=/")
        .token(&user)
        .send()
        .await;
    assert_eq!(resp.json()["prefixes"], json!([]), "{resp:?}");

    for first in [
        "/v1/storage/a/hrdocs?limit=1",
        "/v1/storage/a/hrdocs?limit=1&delimiter=/",
    ] {
        let (keys, prefixes) = page_through(&app, &user, first, &hidden).await;
        assert!(keys.is_empty() && prefixes.is_empty());
    }

    // The admin still sees everything, prefixes and keys.
    let admin = app.admin();
    let (_, prefixes) = page_through(
        &app,
        &admin,
        "/v1/storage/a/hrdocs?limit=1&delimiter=/",
        &[],
    )
    .await;
    assert_eq!(prefixes, ["layoffs/", "salaries/"]);
}

#[tokio::test]
async fn a_users_storage_cursor_and_prefixes_name_only_her_own_objects() {
    let app = app().await;
    create_bucket(&app, "bkt").await;
    for key in [
        "users/aaron/notes.txt",
        "users/alice/a.txt",
        "users/alice/photos/b.png",
        "users/bob/diary-2026-medical.txt",
        "users/bob/z.txt",
        "users/carol/c.txt",
    ] {
        put_object(&app, "bkt", key).await;
    }
    set_policy(
        &app,
        "a",
        &json!({"rules": [{"actions": ["read"], "resources": ["storage:bkt/users/{sub}/**"]}]}),
    )
    .await;
    let alice = app.user("a", "alice");
    let hidden = ["aaron", "bob", "diary", "carol"];

    let (keys, _) = page_through(&app, &alice, "/v1/storage/a/bkt?limit=1", &hidden).await;
    assert_eq!(keys, ["users/alice/a.txt", "users/alice/photos/b.png"]);

    let (keys, prefixes) = page_through(
        &app,
        &alice,
        "/v1/storage/a/bkt?limit=1&prefix=users/&delimiter=/",
        &hidden,
    )
    .await;
    assert!(keys.is_empty());
    assert_eq!(prefixes, ["users/alice/"]);

    let (keys, prefixes) = page_through(
        &app,
        &alice,
        "/v1/storage/a/bkt?limit=1&prefix=users/alice/&delimiter=/",
        &hidden,
    )
    .await;
    assert_eq!(keys, ["users/alice/a.txt"]);
    assert_eq!(prefixes, ["users/alice/photos/"]);
}

#[tokio::test]
async fn a_forged_or_foreign_cursor_is_refused() {
    let app = app().await;
    create_bucket(&app, "bkt").await;
    for i in 0..3 {
        put_object(&app, "bkt", &format!("users/alice/{i}")).await;
    }
    set_policy(
        &app,
        "a",
        &json!({"rules": [{"actions": ["read"], "resources": ["storage:bkt/users/{sub}/**"]}]}),
    )
    .await;
    let alice = app.user("a", "alice");
    let resp = app
        .get("/v1/storage/a/bkt?limit=1")
        .token(&alice)
        .send()
        .await;
    let next = resp.json()["next"].as_str().unwrap().to_owned();
    assert!(next.starts_with('~'), "{next}");
    // Another listing (here: another prefix) does not take it.
    app.get(&format!(
        "/v1/storage/a/bkt?limit=1&prefix=users/&after={next}"
    ))
    .token(&alice)
    .send()
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
    app.get("/v1/storage/a/bkt?limit=1&after=~AAAA")
        .token(&alice)
        .send()
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument");
}

#[tokio::test]
async fn paging_past_more_hidden_keys_than_one_request_scans_ends_without_gaps() {
    let app = app().await;
    set_policy(
        &app,
        "a",
        &json!({"rules": [{"actions": ["read"], "resources": ["kv:users/{sub}/**"]}]}),
    )
    .await;
    for i in 0..2_500 {
        app.put_value("a", &format!("users/aaron/{i:04}"), "x")
            .await;
    }
    for i in 0..3 {
        app.put_value("a", &format!("users/alice/{i}"), "v").await;
    }
    for i in 0..2_500 {
        app.put_value("a", &format!("users/bob/{i:04}"), "x").await;
    }
    let alice = app.user("a", "alice");
    let mut uri = "/v1/kv/a?limit=2".to_owned();
    let mut seen = Vec::new();
    let mut requests = 0;
    loop {
        requests += 1;
        assert!(requests < 20, "paging does not end");
        let resp = app.get(&uri).token(&alice).send().await;
        assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
        assert!(!resp.text().contains("aaron") && !resp.text().contains("bob"));
        for item in resp.json()["items"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_owned());
        }
        match resp.json()["next"].as_str() {
            Some(next) => uri = format!("/v1/kv/a?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["users/alice/0", "users/alice/1", "users/alice/2"]);
    // 5003 keys at most 2000 a request: the scan is bounded, so it took several requests.
    assert!(requests >= 3, "{requests}");
}

#[tokio::test]
async fn a_token_scoped_to_another_service_lists_nothing() {
    let app = app().await;
    app.put_value("a", "orders/1", "x").await;
    create_bucket(&app, "hrdocs").await;
    put_object(&app, "hrdocs", "layoffs/plan-q1.pdf").await;

    let storage_reader =
        app.mint(TokenSpec::new(Role::Service, Some("a")).scopes(&["storage:read"]));
    app.get("/v1/kv/a")
        .token(&storage_reader)
        .send()
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied");
    let resp = app
        .get("/v1/storage/a/hrdocs?delimiter=/")
        .token(&storage_reader)
        .send()
        .await;
    assert_eq!(resp.json()["prefixes"], json!(["layoffs/"]));

    let kv_reader = app.mint(TokenSpec::new(Role::Service, Some("a")).scopes(&["kv:read"]));
    for uri in [
        "/v1/storage/a/hrdocs?limit=1",
        "/v1/storage/a/hrdocs?delimiter=/",
    ] {
        let resp = app.get(uri).token(&kv_reader).send().await;
        resp.assert_error(StatusCode::FORBIDDEN, "permission_denied");
        assert!(!resp.text().contains("layoffs"));
    }
    let resp = app.get("/v1/kv/a").token(&kv_reader).send().await;
    assert_eq!(resp.json()["items"][0]["key"], "orders/1");
}

#[tokio::test]
async fn keys_that_start_like_a_sealed_cursor_page_for_full_readers_too() {
    let app = app().await;
    create_bucket(&app, "tilde").await;
    for key in ["plain", "~a", "~b"] {
        put_object(&app, "tilde", key).await;
    }
    let (keys, _) = page_through(&app, &app.admin(), "/v1/storage/a/tilde?limit=1", &[]).await;
    assert_eq!(keys, ["plain", "~a", "~b"]);
}

#[tokio::test]
async fn buckets_list_by_name_in_pages_for_callers_who_read_the_whole_namespace() {
    let app = app().await;
    for bucket in ["ccc", "aaa", "bbb"] {
        create_bucket(&app, bucket).await;
    }
    let resp = app
        .get("/v1/storage/a?limit=2")
        .token(&app.admin())
        .send()
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{resp:?}");
    let page: ferrobase_core::wire::Page<ferrobase_core::wire::storage::BucketSummary> =
        serde_json::from_slice(&resp.body).expect("a page of buckets");
    let names: Vec<_> = page.items.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["aaa", "bbb"]);
    assert!(page.items[0].created_at.ends_with('Z'));
    let next = page.next.expect("more buckets follow");
    let resp = app
        .get(&format!("/v1/storage/a?after={next}"))
        .token(&app.admin())
        .send()
        .await;
    let rest: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(rest["items"][0]["name"], "ccc");
    assert_eq!(rest["next"], Value::Null);

    // A user whose policy grants objects inside one bucket may not enumerate the buckets.
    set_policy(
        &app,
        "a",
        &json!({"rules": [{"actions": ["read"], "resources": ["storage:aaa/{sub}/**"]}]}),
    )
    .await;
    let alice = app.mint(TokenSpec::new(Role::User, Some("a")).sub("alice"));
    let resp = app.get("/v1/storage/a").token(&alice).send().await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{resp:?}");
}
