//! `ferrobase kv|queue|storage|policy|keys|completions` against the real server: each command
//! does what its HTTP route does, and fails with a non-zero exit and the server's message.

use std::io::Write;
use std::process::{Command, Stdio};

use ferrobase_tests::{Server, binary, succeeded};

/// Runs `ferrobase ARGS --url .. --data-dir .. --ns shop`, feeding `stdin`.
fn cli_with_input(server: &Server, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(binary())
        .args(args)
        .arg("--url")
        .arg(&server.url)
        .arg("--data-dir")
        .arg(server.data_dir())
        .arg("--ns")
        .arg("shop")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs ferrobase");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    cli_with_input(server, args, b"")
}

fn failed(output: std::process::Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_commands_reach_every_service_and_fail_clearly() {
    let server = Server::start().unwrap();

    // KV: put from a flag and from stdin, get, list, conditional put, delete.
    let stored: serde_json::Value = serde_json::from_str(&succeeded(cli(
        &server,
        &["kv", "put", "orders/1", "--value", "{\"total\":3}"],
    )))
    .unwrap();
    assert_eq!(stored["version"], 1);
    succeeded(cli_with_input(
        &server,
        &["kv", "put", "orders/2"],
        b"raw bytes",
    ));
    let got = cli(&server, &["kv", "get", "orders/1"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "{\"total\":3}");
    assert!(String::from_utf8_lossy(&got.stderr).contains("application/json"));
    let listed = succeeded(cli(&server, &["kv", "list", "--prefix", "orders/"]));
    let keys: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(keys, ["orders/1", "orders/2"], "{listed}");
    let stale = failed(cli(
        &server,
        &["kv", "put", "orders/1", "--value", "x", "--if-version", "7"],
    ));
    assert!(stale.contains("412"), "{stale}");
    succeeded(cli(&server, &["kv", "delete", "orders/2"]));
    assert!(failed(cli(&server, &["kv", "get", "orders/2"])).contains("not found"));
    assert!(failed(cli(&server, &["kv", "delete", "orders/2"])).contains("not found"));

    // Queues: configure, publish, info, pull (acked), and a second pull finds nothing.
    let configured: serde_json::Value = serde_json::from_str(&succeeded(cli(
        &server,
        &["queue", "configure", "jobs", "--max-deliver", "3"],
    )))
    .unwrap();
    assert_eq!(configured["max_deliver"], 3, "{configured}");
    assert_eq!(configured["queue"], "jobs");
    succeeded(cli(
        &server,
        &[
            "queue",
            "publish",
            "jobs",
            "--body",
            "{\"n\":1}",
            "--key",
            "a",
        ],
    ));
    let info: serde_json::Value =
        serde_json::from_str(&succeeded(cli(&server, &["queue", "info", "jobs"]))).unwrap();
    assert_eq!(info["messages"], 1, "{info}");
    let queues = succeeded(cli(&server, &["queue", "list"]));
    assert_eq!(queues.trim(), "jobs\t1 messages", "{queues}");
    let pulled: serde_json::Value =
        serde_json::from_str(&succeeded(cli(&server, &["queue", "pull", "jobs"]))).unwrap();
    assert_eq!(pulled["messages"][0]["body"], serde_json::json!({"n": 1}));
    let again: serde_json::Value =
        serde_json::from_str(&succeeded(cli(&server, &["queue", "pull", "jobs"]))).unwrap();
    assert_eq!(again["messages"], serde_json::json!([]), "the pull acked");
    assert!(failed(cli(&server, &["queue", "publish", "jobs", "--body", "{"])).contains("JSON"));

    // Storage buckets, created over the HTTP API.
    let admin = server.token("admin", Some("shop"), "admin").unwrap();
    let http = reqwest::Client::new();
    for bucket in ["photos", "backups"] {
        let created = http
            .put(format!("{}/v1/storage/shop/{bucket}", server.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success());
    }
    let buckets = succeeded(cli(&server, &["storage", "buckets"]));
    let names: Vec<&str> = buckets
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["backups", "photos"], "{buckets}");

    // Policies: put from stdin, read back; a bad document is refused by the server.
    let policy = br#"{"rules": [{"actions": ["read"], "resources": ["kv:public/**"]}]}"#;
    succeeded(cli_with_input(&server, &["policy", "put"], policy));
    let shown: serde_json::Value =
        serde_json::from_str(&succeeded(cli(&server, &["policy", "get"]))).unwrap();
    assert_eq!(shown["rules"][0]["resources"][0], "kv:public/**");
    let refused = failed(cli_with_input(
        &server,
        &["policy", "put"],
        b"{\"rules\": 3}",
    ));
    assert!(refused.contains("policy"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_list_without_secrets_and_revoke() {
    let server = Server::start().unwrap();
    let keys = |args: &[&str]| {
        Command::new(binary())
            .arg("keys")
            .args(args)
            .arg("--data-dir")
            .arg(server.data_dir())
            .output()
            .unwrap()
    };
    let created: serde_json::Value = serde_json::from_str(
        succeeded(keys(&[
            "create", "--ns", "shop", "--role", "user", "--sub", "alice",
        ]))
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    let id = created["access_key_id"].as_str().unwrap().to_owned();
    let secret = created["secret_access_key"].as_str().unwrap().to_owned();
    succeeded(keys(&["create", "--ns", "blog"]));
    let listed = succeeded(keys(&["list", "--ns", "shop"]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.starts_with(&format!("{id}\tshop\tuser\talice\t")),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "secrets are never listed");
    assert_eq!(succeeded(keys(&["list"])).lines().count(), 2);
    succeeded(keys(&["revoke", &id]));
    assert_eq!(succeeded(keys(&["list", "--ns", "shop"])), "");
    assert!(failed(keys(&["revoke", &id])).contains("no access key"));
}

#[test]
fn completions_cover_the_commands() {
    let output = Command::new(binary())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = succeeded(output);
    for command in ["serve", "kv", "queue", "policy", "keys", "revoke"] {
        assert!(
            script.contains(command),
            "{command} missing from the script"
        );
    }
}
