//! `ferrobase trigger|rule|dlq` against the real server: a manual trigger fired from the
//! command line reaches its function through a rule.

use std::process::Command;
use std::time::{Duration, Instant};

use ferrobase_tests::{Server, binary, succeeded};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_trigger_fired_from_the_command_line_runs_its_rule() {
    let server = Server::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("greet.js");
    std::fs::write(&source, "import { kv } from 'ferrobase';\nexport default async (e) => { await kv.put('greeted', e.data.name); };\n").unwrap();
    succeeded(cli(
        &server,
        &["fn", "deploy", source.to_str().unwrap(), "--name", "greet"],
    ));
    succeeded(cli(
        &server,
        &[
            "trigger",
            "put",
            "hello",
            "--source",
            "{\"kind\":\"manual\"}",
        ],
    ));
    let shown = succeeded(cli(&server, &["trigger", "get", "hello"]));
    assert!(shown.contains("\"manual\""), "{shown}");
    succeeded(cli(
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
    succeeded(cli(
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
    let triggers = succeeded(cli(&server, &["trigger", "list"]));
    assert_eq!(
        triggers.trim(),
        "hello\t{\"kind\":\"manual\"}",
        "{triggers}"
    );
    let rules = succeeded(cli(&server, &["rule", "list"]));
    assert_eq!(rules.trim(), "on-hello\thello -> greet\tenabled", "{rules}");
    let letters = succeeded(cli(&server, &["dlq", "list"]));
    assert!(letters.contains("\"dead_letters\": []"), "{letters}");
    let missing = cli(&server, &["rule", "get", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_fails_again_exits_non_zero() {
    let server = Server::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("fail.js");
    std::fs::write(
        &source,
        "export default () => { throw new Error('still broken'); };\n",
    )
    .unwrap();
    succeeded(cli(
        &server,
        &["fn", "deploy", source.to_str().unwrap(), "--name", "fail"],
    ));
    succeeded(cli(
        &server,
        &["trigger", "put", "go", "--source", "{\"kind\":\"manual\"}"],
    ));
    succeeded(cli(
        &server,
        &[
            "rule",
            "put",
            "on-go",
            "--trigger",
            "go",
            "--function",
            "fail",
            "--max-attempts",
            "1",
        ],
    ));
    succeeded(cli(&server, &["trigger", "fire", "go"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let letters: serde_json::Value =
            serde_json::from_str(&succeeded(cli(&server, &["dlq", "list"]))).unwrap();
        if let Some(id) = letters["dead_letters"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the failed event was dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let replayed = cli(&server, &["dlq", "replay", &id]);
    assert!(!replayed.status.success(), "a failed replay is a failure");
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(stdout.contains("\"delivered\": false"), "{stdout}");
    let stderr = String::from_utf8_lossy(&replayed.stderr);
    assert!(stderr.contains("failed again"), "{stderr}");
}
