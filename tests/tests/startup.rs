//! Start-up that explains itself, on the real binary: a taken port or a data directory in use
//! is refused with the fix and nothing written, the S3 endpoint can be turned off, and the CLI
//! refuses to mint with a key the server does not have.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use ferrobase_tests::{Server, ServerOptions, binary};

/// `ferrobase serve` with `args` on `data_dir`, expected to exit by itself.
fn serve_expecting_exit(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("FERROBASE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("ferrobase runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_taken_s3_port_is_explained_and_nothing_is_written() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let output = serve_expecting_exit(
        &data_dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && message.contains("another program already uses that port")
            && message.contains("--s3-listen off"),
        "{message}"
    );
    assert!(
        !data_dir.exists(),
        "a refused start writes nothing (no data directory, no secret)"
    );
}

#[test]
fn a_taken_api_port_is_explained_with_its_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let output = serve_expecting_exit(
        &data_dir,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--s3-listen",
            "off",
        ],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("the HTTP API cannot listen") && message.contains("--listen"),
        "{message}"
    );
    assert!(!data_dir.exists());
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_clearly() {
    let first = Server::start().unwrap();
    let output = serve_expecting_exit(
        first.data_dir(),
        &["--listen", "127.0.0.1:0", "--s3-listen", "off"],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("is in use by another ferrobase process")
            && message.contains(&format!("pid {}", first.pid()))
            && message.contains("--data-dir"),
        "{message}"
    );
    assert!(
        !message.contains("WouldBlock"),
        "no raw engine error: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_endpoint_can_be_turned_off() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--s3-listen".into(), "off".into()],
        ..ServerOptions::default()
    })
    .unwrap();
    assert!(
        !ferrobase::s3::address_file(server.data_dir()).exists(),
        "no S3 endpoint, so no address written"
    );
    let token = server.token("admin", Some("shop"), "tests").unwrap();
    let http = reqwest::Client::new();
    let created = http
        .put(format!("{}/v1/storage/shop/photos", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "the REST storage API still works"
    );
    let presigned = http
        .post(format!("{}/v1/storage/shop/photos/_presign", server.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"method": "GET", "key": "a.jpg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(presigned.status().as_u16(), 503);
    let body: serde_json::Value = presigned.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
}

#[test]
fn the_cli_refuses_a_directory_that_is_not_a_servers() {
    let temp = tempfile::tempdir().unwrap();
    let elsewhere = temp.path().join("data");
    for args in [
        vec!["token", "--role", "admin", "--ns", "shop"],
        vec!["keys", "create", "--ns", "shop"],
    ] {
        let output = Command::new(binary())
            .args(&args)
            .arg("--data-dir")
            .arg(&elsewhere)
            .env_remove("FERROBASE_AUTH_HS256_SECRET")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains("is not the data directory of a Ferrobase server")
                && message.contains("--data-dir"),
            "{args:?}: {message}"
        );
        assert!(
            !elsewhere.exists(),
            "{args:?} created {}",
            elsewhere.display()
        );
    }
}
