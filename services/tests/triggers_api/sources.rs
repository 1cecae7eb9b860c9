//! Trigger sources and definitions: KV filters and fan-out, manual and completion triggers,
//! disabled rules and deleted functions, validation and who may manage them.

use crate::app::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_triggers_filter_by_prefix_and_op_and_fan_out_to_every_rule() {
    let app = App::new().await;
    app.deploy("recorder", RECORDER).await;
    app.deploy("second", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('also/' + e.subject, 'x'); };").await;
    app.put(
        "/v1/triggers/shop/orders",
        json!({"source": {"kind": "kv", "prefix": "orders/", "ops": ["put"]}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/record",
        json!({"trigger": "orders", "function": "recorder"}),
    )
    .await;
    app.put(
        "/v1/rules/shop/fanout",
        json!({"trigger": "orders", "function": "second"}),
    )
    .await;

    app.kv_put("other/1", "ignored").await;
    app.kv_put("orders/1", "o").await;
    assert_eq!(app.eventually("seen/orders/1").await, "ferrobase.kv.put");
    app.eventually("also/orders/1").await;
    assert!(
        app.kv_get("seen/other/1").await.is_none(),
        "other prefixes do not fire"
    );

    // Deletes do not match a put-only trigger.
    let (status, _) = app.call(Method::DELETE, "/v1/kv/shop/orders/1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.kv_put("orders/2", "o").await;
    app.eventually("seen/orders/2").await;
    assert_eq!(
        app.kv_get("seen/orders/1").await.as_deref(),
        Some("ferrobase.kv.put")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_and_completion_triggers() {
    let app = App::new().await;
    app.deploy("greet", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('greeted', e.data.name); return { greeted: e.data.name }; };").await;
    app.deploy("after", "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('after', e.data.outcome + ' ' + e.data.function); };").await;
    app.put(
        "/v1/triggers/shop/hello",
        json!({"source": {"kind": "manual"}}),
    )
    .await;
    app.put(
        "/v1/triggers/shop/greeted",
        json!({"source": {"kind": "function", "function": "greet", "on": ["ok"]}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/on-hello",
        json!({"trigger": "hello", "function": "greet"}),
    )
    .await;
    app.put(
        "/v1/rules/shop/chain",
        json!({"trigger": "greeted", "function": "after"}),
    )
    .await;

    let (status, fired) = app
        .call(
            Method::POST,
            "/v1/triggers/shop/hello/fire",
            Some(json!({"name": "ada"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fired}");
    assert_eq!(app.eventually("greeted").await, "ada");
    assert_eq!(app.eventually("after").await, "ok greet");

    let (status, _) = app
        .call(
            Method::POST,
            "/v1/triggers/shop/greeted/fire",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "only manual triggers can be fired"
    );
    let (status, _) = app
        .call(Method::POST, "/v1/triggers/shop/nope/fire", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_rules_deliver_nothing_and_deleted_functions_fail_cleanly() {
    let app = App::new().await;
    app.deploy("recorder", RECORDER).await;
    app.put(
        "/v1/triggers/shop/t",
        json!({"source": {"kind": "kv", "prefix": "x/"}}),
    )
    .await;
    app.put(
        "/v1/rules/shop/off",
        json!({"trigger": "t", "function": "recorder", "enabled": false}),
    )
    .await;
    app.kv_put("x/1", "v").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.kv_get("seen/x/1").await.is_none(),
        "a disabled rule delivers nothing"
    );

    // A rule whose function was deleted: attempts fail with a clear error, then dead letter.
    app.deploy("gone", RECORDER).await;
    app.put(
        "/v1/rules/shop/orphan",
        json!({"trigger": "t", "function": "gone", "max_attempts": 2, "backoff": {"initial_ms": 5, "max_ms": 5}}),
    )
    .await;
    let (status, _) = app
        .call(Method::DELETE, "/v1/functions/shop/gone", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, shown) = app.call(Method::GET, "/v1/rules/shop/orphan", None).await;
    assert!(
        shown["problem"]
            .as_str()
            .is_some_and(|p| p.contains("function gone not found")),
        "the rule shows why it cannot deliver: {shown}"
    );
    let (_, healthy) = app.call(Method::GET, "/v1/rules/shop/off", None).await;
    assert!(healthy.get("problem").is_none(), "{healthy}");
    app.kv_put("x/2", "v").await;
    let letters = app.eventually_dead_letters(1).await;
    assert!(
        letters[0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    let (status, _) = app.call(Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "nothing crashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_validated_and_managed_by_privileged_tokens_only() {
    let app = App::new().await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/triggers/shop/t",
            Some(json!({"source": {"kind": "nope"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/rules/shop/r",
            Some(json!({"trigger": "missing", "function": "f"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a rule needs an existing trigger"
    );
    app.put("/v1/triggers/shop/t", json!({"source": {"kind": "manual"}}))
        .await;
    // A rule naming a function that does not exist is a mistake caught when it is made,
    // unless the caller says the function comes later.
    let (status, refused) = app
        .call(
            Method::PUT,
            "/v1/rules/shop/typo",
            Some(json!({"trigger": "t", "function": "bilin"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("function bilin, which does not exist"),
        "{refused}"
    );
    let (status, _) = app.call(Method::GET, "/v1/rules/shop/typo", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    let (status, later) = app
        .call(
            Method::PUT,
            "/v1/rules/shop/later?allow_missing=true",
            Some(json!({"trigger": "t", "function": "billing"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{later}");
    assert!(
        later["problem"].as_str().unwrap().contains("billing"),
        "{later}"
    );
    let (status, _) = app
        .call_as(
            Role::User,
            Method::PUT,
            "/v1/rules/shop/r",
            Some(json!({"trigger": "t", "function": "f"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.call(Method::GET, "/v1/triggers/shop/t", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["source"]["kind"], "manual");
    let (status, _) = app.call(Method::DELETE, "/v1/triggers/shop/t", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, "/v1/triggers/shop/t", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_and_rules_list_by_name_in_pages_for_privileged_tokens() {
    let app = App::new().await;
    app.deploy("f", "export default () => 1").await;
    for name in ["t1", "t2", "t3"] {
        app.put(
            &format!("/v1/triggers/shop/{name}"),
            json!({"source": {"kind": "manual"}}),
        )
        .await;
        app.put(
            &format!("/v1/rules/shop/r-{name}"),
            json!({"trigger": name, "function": "f"}),
        )
        .await;
    }
    let (status, first) = app
        .call(Method::GET, "/v1/triggers/shop?limit=2", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let page: ferrobase_core::wire::Page<ferrobase_core::wire::triggers::TriggerDocument> =
        serde_json::from_value(first).expect("a page of triggers");
    let names: Vec<_> = page.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["t1", "t2"]);
    let next = page.next.expect("a full page has a cursor");
    let (_, rest) = app
        .call(
            Method::GET,
            &format!("/v1/triggers/shop?limit=2&after={next}"),
            None,
        )
        .await;
    assert_eq!(rest["items"][0]["name"], "t3");
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);

    let (status, rules) = app.call(Method::GET, "/v1/rules/shop", None).await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    let rules: ferrobase_core::wire::Page<ferrobase_core::wire::triggers::RuleDocument> =
        serde_json::from_value(rules).expect("a page of rules");
    let bound: Vec<_> = rules
        .items
        .iter()
        .map(|r| (r.name.as_str(), r.rule.trigger.as_str()))
        .collect();
    assert_eq!(bound, [("r-t1", "t1"), ("r-t2", "t2"), ("r-t3", "t3")]);

    let (status, _) = app
        .call_as(Role::User, Method::GET, "/v1/rules/shop", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "users do not list rules");
    let (status, _) = app
        .call(Method::GET, "/v1/triggers/shop?limit=5000", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
