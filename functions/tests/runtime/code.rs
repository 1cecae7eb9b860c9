//! Code and results: ES modules and OpenWhisk actions, deploy-time errors, thrown errors,
//! JSON results and bounded logs, immutable versions, isolation between functions, sequences.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es_module_default_export_gets_event_and_context() {
    let f = fixture_with(config());
    f.deploy(
        "hello",
        spec("export default async function (event, ctx) {\n  return { hi: event.name, fn: ctx.functionName, ns: ctx.namespace, id: ctx.activationId, env: ctx.env.GREETING, deadline: ctx.deadline > Date.now() };\n}"),
    )
    .await;
    let done = f.invoke("hello", json!({"name": "ada"})).await;
    let value = result(&done);
    assert_eq!(value["hi"], "ada");
    assert_eq!(value["fn"], "hello");
    assert_eq!(value["ns"], "shop");
    assert_eq!(value["id"], done.record.id);
    assert_eq!(value["deadline"], true);
    assert_eq!(done.record.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_main_sync_and_async() {
    let f = fixture_with(config());
    f.deploy(
        "sync",
        spec("function main(params) { return { doubled: params.n * 2 }; }"),
    )
    .await;
    f.deploy(
        "later",
        spec("function main(params) { return Promise.resolve({ n: params.n + 1 }); }"),
    )
    .await;
    assert_eq!(
        result(&f.invoke("sync", json!({"n": 21})).await)["doubled"],
        42
    );
    assert_eq!(result(&f.invoke("later", json!({"n": 1})).await)["n"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_are_refused_at_deploy_with_their_position() {
    let f = fixture_with(config());
    let error = f
        .service
        .deploy(
            &f.ns,
            "broken",
            spec("export default function (e) {\n  return {;\n}"),
        )
        .await
        .unwrap_err();
    match error {
        FunctionError::Compile(compile) => {
            assert_eq!(compile.line, Some(2), "{compile:?}");
            assert!(compile.column.is_some(), "{compile:?}");
            assert!(compile.message.contains("SyntaxError") || !compile.message.is_empty());
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    assert!(matches!(
        f.service.get(&f.ns, "broken").await,
        Err(FunctionError::NotFound(_))
    ));
    let no_entry = f
        .service
        .deploy(&f.ns, "empty", spec("const x = 1;"))
        .await
        .unwrap_err();
    assert!(
        matches!(no_entry, FunctionError::Compile(_)),
        "{no_entry:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrown_errors_are_recorded_with_message_and_stack() {
    let f = fixture_with(config());
    f.deploy("fails", spec("function inner() { throw new TypeError('bad input'); }\nexport default function () { return inner(); }")).await;
    let done = f.invoke("fails", json!({})).await;
    assert_eq!(done.record.outcome, OutcomeKind::Error);
    let error = done.record.error.unwrap();
    assert_eq!(error.message, "TypeError: bad input");
    assert!(
        error.stack.unwrap().contains("inner"),
        "the stack names the throwing function"
    );
    let rejected = {
        f.deploy(
            "rejects",
            spec("export default async () => { throw new Error('async boom'); }"),
        )
        .await;
        f.invoke("rejects", json!({})).await
    };
    assert_eq!(rejected.record.error.unwrap().message, "async boom");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_must_be_json_and_logs_are_bounded_with_a_marker() {
    let f = fixture_with(config());
    f.deploy("fnresult", spec("export default () => (() => 1)"))
        .await;
    let done = f.invoke("fnresult", json!({})).await;
    assert_eq!(done.record.outcome, OutcomeKind::Error);
    assert!(
        done.record
            .error
            .unwrap()
            .message
            .contains("not JSON-serialisable")
    );
    f.deploy("big", spec("export default () => 10n")).await;
    assert_eq!(
        f.invoke("big", json!({})).await.record.outcome,
        OutcomeKind::Error
    );
    f.deploy("undef", spec("export default () => undefined"))
        .await;
    assert_eq!(result(&f.invoke("undef", json!({})).await), Value::Null);

    f.deploy("chatty", spec("export default () => { for (let i = 0; i < 5000; i++) console.log('line', i, {i}); return 'ok'; }")).await;
    let chatty = f.invoke("chatty", json!({})).await;
    assert_eq!(chatty.record.outcome, OutcomeKind::Ok);
    assert!(chatty.record.logs_truncated);
    assert_eq!(chatty.record.logs[0], "log: line 0 {\"i\":0}");
    let marker = chatty.record.logs.last().unwrap();
    assert!(
        marker.contains("log truncated") && marker.contains("4000 more lines"),
        "{marker}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_immutable_and_addressable() {
    let f = fixture_with(config());
    assert_eq!(f.deploy("v", spec("export default () => 'one'")).await, 1);
    assert_eq!(f.deploy("v", spec("export default () => 'two'")).await, 2);
    assert_eq!(result(&f.invoke("v", json!({})).await), json!("two"));
    assert_eq!(
        result(&f.invoke("v@1", json!({})).await),
        json!("one"),
        "rollback by version"
    );
    let versions = f.service.versions(&f.ns, "v").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    f.service.delete(&f.ns, "v").await.unwrap();
    assert!(matches!(
        f.service.get(&f.ns, "v").await,
        Err(FunctionError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_never_see_each_others_globals_or_the_host() {
    let f = fixture_with(config());
    f.deploy("setter", spec("export default () => { globalThis.secret = 'from setter'; return typeof globalThis.secret; }")).await;
    f.deploy(
        "reader",
        spec("export default () => ({ secret: typeof globalThis.secret, process: typeof process, env: JSON.stringify(process.env), node: typeof process.versions.node, require: typeof require, host: typeof __ferrobase_host, std: typeof std, os: typeof os })"),
    )
    .await;
    assert_eq!(
        result(&f.invoke("setter", json!({})).await),
        json!("string")
    );
    let seen = result(&f.invoke("reader", json!({})).await);
    assert_eq!(
        seen,
        // `process` is the web glue's minimal one: the function's own env (none here), never
        // the server's, and no claim to be Node.
        json!({"secret": "undefined", "process": "object", "env": "{}", "node": "undefined", "require": "undefined", "host": "undefined", "std": "undefined", "os": "undefined"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_pass_each_result_on_and_link_their_steps() {
    let f = fixture_with(config());
    f.deploy("double", spec("export default (e) => ({ n: e.n * 2 })"))
        .await;
    f.deploy("inc", spec("function main(p) { return { n: p.n + 1 }; }"))
        .await;
    f.deploy(
        "fail",
        spec("export default () => { throw new Error('step broke'); }"),
    )
    .await;
    let sequence = |steps: Value| -> FunctionSpec {
        serde_json::from_value(json!({"kind": "sequence", "steps": steps})).unwrap()
    };
    f.deploy("pipeline", sequence(json!(["double", "inc", "double@1"])))
        .await;
    let done = f.invoke("pipeline", json!({"n": 5})).await;
    assert_eq!(result(&done), json!({"n": 22}));
    assert_eq!(
        done.record.steps.len(),
        3,
        "the record links every step's activation"
    );
    for step in &done.record.steps {
        let step_record = f.service.activation(&f.ns, step).await.unwrap();
        assert_eq!(step_record.outcome, OutcomeKind::Ok);
    }
    assert_eq!(
        done.record.billed_gb_seconds, 0.0,
        "steps are billed, not the sequence"
    );

    // Sequences nest, and a failing step ends the sequence with its error.
    f.deploy("outer", sequence(json!(["pipeline", "fail", "inc"])))
        .await;
    let failed = f.invoke("outer", json!({"n": 1})).await;
    assert_eq!(failed.record.outcome, OutcomeKind::Error);
    assert_eq!(failed.record.error.unwrap().message, "step broke");
    assert_eq!(failed.record.steps.len(), 2, "the third step never ran");

    // Deploys refuse missing steps, cycles and code in sequences.
    let missing = f
        .service
        .deploy(&f.ns, "bad", sequence(json!(["nope"])))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
    let cycle = f
        .service
        .deploy(&f.ns, "pipeline", sequence(json!(["outer"])))
        .await
        .unwrap_err();
    assert!(cycle.to_string().contains("would run itself"), "{cycle}");
    let with_code: FunctionSpec =
        serde_json::from_value(json!({"kind": "sequence", "steps": ["inc"], "code": "x"})).unwrap();
    assert!(f.service.deploy(&f.ns, "bad", with_code).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_or_script_is_decided_by_parsing() {
    let f = fixture_with(config());
    let cases = [
        (
            "one-line",
            r#"import { kv } from "ferrobase"; export default async function (e) { return { n: e.n, kv: typeof kv.get } }"#,
            json!({"n": 1, "kv": "function"}),
        ),
        (
            "reexport",
            "const handler=async(e)=>({n:e.n});export{handler as default};",
            json!({"n": 1}),
        ),
        (
            "arrow",
            "export default (e, ctx) => ({ n: e.n, fn: ctx.functionName })",
            json!({"n": 1, "fn": "arrow"}),
        ),
        (
            "main-fn",
            "export async function main(params) { return { n: params.n } }",
            json!({"n": 1}),
        ),
        (
            "main-const",
            "export const main = (params) => ({ n: params.n, args: arguments_count() });\nfunction arguments_count() { return 1 }",
            json!({"n": 1, "args": 1}),
        ),
        (
            "script",
            "/* export default is only in this comment */ function main(params) { return { n: params.n } }",
            json!({"n": 1}),
        ),
    ];
    for (name, code, expected) in cases {
        f.deploy(name, spec(code)).await;
        assert_eq!(
            result(&f.invoke(name, json!({"n": 1})).await),
            expected,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_are_reported_where_they_are_in_either_form() {
    let f = fixture_with(config());
    for (code, line) in [
        (
            "const a = 1; export default function (e) {\n  return {;\n}",
            2,
        ),
        ("function main(params) {\n\n  return {;\n}", 3),
    ] {
        match f.service.deploy(&f.ns, "broken", spec(code)).await {
            Err(FunctionError::Compile(compile)) => {
                assert_eq!(compile.line, Some(line), "{code}: {compile:?}");
                assert!(compile.column.is_some(), "{compile:?}");
            }
            other => panic!("{code}: expected a compile error, got {other:?}"),
        }
    }
}

/// OpenWhisk's action context: every `__OW_*` variable actions read, with the configured API
/// host, beside the function's own env; Ferrobase's own functions do not get them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_actions_see_every_ow_variable_and_modules_none() {
    let f = fixture_with(FunctionsConfig {
        api_host: "https://api.example.test".into(),
        ..config()
    });
    let mut action = spec(
        "function main() { return Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('__OW_') || k === 'MINE')); }",
    );
    action.env.insert("MINE".into(), "yes".into());
    f.deploy("ctx", action).await;
    let done = f.invoke("ctx", json!({})).await;
    let value = result(&done);
    let names: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "MINE",
            "__OW_ACTION_NAME",
            "__OW_ACTIVATION_ID",
            "__OW_API_HOST",
            "__OW_DEADLINE",
            "__OW_NAMESPACE"
        ]
    );
    assert_eq!(value["__OW_API_HOST"], "https://api.example.test");
    assert_eq!(value["__OW_ACTION_NAME"], "/shop/ctx");
    assert_eq!(value["__OW_NAMESPACE"], "shop");
    assert_eq!(value["__OW_ACTIVATION_ID"], done.record.id.as_str());
    let deadline: u64 = value["__OW_DEADLINE"].as_str().unwrap().parse().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(deadline > now_ms, "the deadline {deadline} is still ahead");
    assert_eq!(value["MINE"], "yes");

    f.deploy(
        "module",
        spec("export default () => Object.keys(process.env).filter((k) => k.startsWith('__OW_'));"),
    )
    .await;
    assert_eq!(result(&f.invoke("module", json!({})).await), json!([]));
}
