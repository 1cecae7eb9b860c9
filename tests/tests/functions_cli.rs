//! `ferrobase fn deploy|invoke|logs` against the real server, and a function's KV writes
//! surviving a restart.

use std::process::Command;

use ferrobase_tests::{Server, binary};

fn fn_command(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("fn")
        .args(args)
        .arg("--url")
        .arg(&server.url)
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("runs ferrobase fn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_invoke_and_read_logs_from_the_command_line() {
    let mut server = Server::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("thumb.js");
    std::fs::write(
        &source,
        "import { kv } from 'ferrobase';\nexport default async (event, ctx) => {\n  console.log('resizing', event.image);\n  await kv.put('thumbs/' + event.image, { size: 64, by: ctx.functionName });\n  return { thumb: 'thumbs/' + event.image };\n};\n",
    )
    .unwrap();

    let deployed = fn_command(
        &server,
        &[
            "deploy",
            source.to_str().unwrap(),
            "--name",
            "thumb",
            "--ns",
            "shop",
        ],
    );
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&deployed.stdout).unwrap();
    assert_eq!(summary["version"], 1);

    let invoked = fn_command(
        &server,
        &[
            "invoke",
            "thumb",
            "--ns",
            "shop",
            "--data",
            "{\"image\":\"cat.png\"}",
        ],
    );
    assert!(
        invoked.status.success(),
        "{}",
        String::from_utf8_lossy(&invoked.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&invoked.stdout).unwrap();
    assert_eq!(result["thumb"], "thumbs/cat.png");

    let logs = fn_command(&server, &["logs", "thumb", "--ns", "shop"]);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("thumb@1") && text.contains(" ok "), "{text}");
    assert!(text.contains("log: resizing cat.png"), "{text}");

    // A broken file is refused with its position, and nothing is deployed.
    let broken = dir.path().join("broken.js");
    std::fs::write(&broken, "export default () => {\n  return (;\n};\n").unwrap();
    let refused = fn_command(
        &server,
        &[
            "deploy",
            broken.to_str().unwrap(),
            "--name",
            "thumb",
            "--ns",
            "shop",
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");

    // The function's write is durable like any other.
    server.restart().unwrap();
    let client = server.client("shop").unwrap();
    let stored = client
        .kv_get("shop", "thumbs/cat.png")
        .await
        .unwrap()
        .expect("written by the function");
    let value: serde_json::Value = serde_json::from_slice(&stored.bytes).unwrap();
    assert_eq!(value, serde_json::json!({"size": 64, "by": "thumb"}));
    let again = fn_command(
        &server,
        &[
            "invoke",
            "thumb",
            "--ns",
            "shop",
            "--data",
            "{\"image\":\"dog.png\"}",
        ],
    );
    assert!(
        again.status.success(),
        "deployed functions survive a restart: {}",
        String::from_utf8_lossy(&again.stderr)
    );
}
