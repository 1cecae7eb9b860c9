//! `ferrobase trigger|rule|dlq` against the real server: a manual trigger fired from the
//! command line reaches its function through a rule.

use std::process::Command;
use std::time::{Duration, Instant};

use ferrobase_tests::{Server, binary};

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .arg("--url")
        .arg(&server.url)
        .arg("--data-dir")
        .arg(server.data_dir())
        .arg("--ns")
        .arg("shop")
        .output()
        .expect("runs ferrobase")
}

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_trigger_fired_from_the_command_line_runs_its_rule() {
    let server = Server::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("greet.js");
    std::fs::write(&source, "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('greeted', e.data.name); };\n").unwrap();
    ok(cli(
        &server,
        &["fn", "deploy", source.to_str().unwrap(), "--name", "greet"],
    ));
    ok(cli(
        &server,
        &[
            "trigger",
            "put",
            "hello",
            "--source",
            "{\"kind\":\"manual\"}",
        ],
    ));
    let shown = ok(cli(&server, &["trigger", "get", "hello"]));
    assert!(shown.contains("\"manual\""), "{shown}");
    ok(cli(
        &server,
        &[
            "rule",
            "put",
            "on-hello",
            "--trigger",
            "hello",
            "--function",
            "greet",
        ],
    ));
    ok(cli(
        &server,
        &["trigger", "fire", "hello", "--data", "{\"name\":\"ada\"}"],
    ));

    let client = server.client("shop").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = client.kv_get("shop", "greeted").await.unwrap() {
            assert_eq!(value.bytes, "ada");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rule delivered the fired event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let letters = ok(cli(&server, &["dlq", "list"]));
    assert!(letters.contains("\"dead_letters\": []"), "{letters}");
    let missing = cli(&server, &["rule", "get", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}
