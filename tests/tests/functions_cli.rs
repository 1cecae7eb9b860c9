//! `ferrobase fn deploy|invoke|logs|list|get|delete` against the real server, and a
//! function's KV writes surviving a restart.

use std::process::Command;

use ferrobase_tests::{Server, binary, succeeded};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_get_and_delete_functions_and_secrets_stay_unshown() {
    let server = Server::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("sign.js");
    std::fs::write(&source, "export default (e, ctx) => ctx.env.KEY.length;\n").unwrap();
    for name in ["sign", "audit"] {
        succeeded(fn_command(
            &server,
            &[
                "deploy",
                source.to_str().unwrap(),
                "--name",
                name,
                "--ns",
                "shop",
                "--secret",
                "KEY=hunter22",
                "--timeout-ms",
                "2000",
            ],
        ));
    }
    let listed = succeeded(fn_command(&server, &["list", "--ns", "shop"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("audit@1\tjavascript"), "{listed}");
    assert!(
        lines[1].starts_with("sign@1\t") && lines[1].contains("2000 ms"),
        "{listed}"
    );
    let paged = succeeded(fn_command(
        &server,
        &["list", "--ns", "shop", "--limit", "1"],
    ));
    assert!(paged.contains("more: --after audit"), "{paged}");

    let shown = succeeded(fn_command(&server, &["get", "sign", "--ns", "shop"]));
    let document: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(document["latest"], 1);
    assert_eq!(document["version"]["secrets"], serde_json::json!(["KEY"]));
    assert!(!shown.contains("hunter22"), "secrets never leave: {shown}");
    let invoked = succeeded(fn_command(&server, &["invoke", "sign", "--ns", "shop"]));
    assert_eq!(invoked.trim(), "8", "the function reads its secret");

    // A failed activation is reported with its error and its id, from the error document.
    let boom = dir.path().join("boom.js");
    std::fs::write(
        &boom,
        "export default () => { throw new Error('kaput'); };\n",
    )
    .unwrap();
    succeeded(fn_command(
        &server,
        &[
            "deploy",
            boom.to_str().unwrap(),
            "--name",
            "boom",
            "--ns",
            "shop",
        ],
    ));
    let failed = fn_command(&server, &["invoke", "boom", "--ns", "shop"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("502: ") && stderr.contains("kaput"),
        "{stderr}"
    );
    assert!(stderr.contains("(activation "), "{stderr}");

    succeeded(fn_command(&server, &["delete", "sign", "--ns", "shop"]));
    let gone = fn_command(&server, &["get", "sign", "--ns", "shop"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"));
    // Logs of a function that does not exist say so, not "no activations".
    let logs = fn_command(&server, &["logs", "sign", "--ns", "shop"]);
    assert!(!logs.status.success());
    let stderr = String::from_utf8_lossy(&logs.stderr);
    assert!(stderr.contains("function sign not found"), "{stderr}");
}
