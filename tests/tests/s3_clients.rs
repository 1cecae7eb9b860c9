//! Real S3 clients against the real binary: the boto3 suites (`tests/python/`) and the aws-cli
//! suite (`tests/shell/`), each against a server of its own. `./scripts/test` installs boto3
//! and aws-cli when they are missing; a missing client fails the test rather than skipping it.

use std::process::Command;

use ferrobase_tests::Server;
use ferrobase_tests::s3::s3_options;

const NS: &str = "clients";

/// Runs `command` with the endpoint, keys and token of `server`, echoing its output, and
/// fails when it fails.
fn run_suite(server: &Server, mut command: Command) {
    let key = server.s3_key(NS, "service").expect("a service key");
    let user = server.s3_key(NS, "user").expect("a user key");
    let alice = server
        .s3_key_for(NS, "user", Some("alice"))
        .expect("a user key for alice");
    command
        .env("S3_ENDPOINT", server.s3_url().expect("the S3 endpoint"))
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .env("FERROBASE_USER_KEY_ID", &user.access_key_id)
        .env("FERROBASE_USER_SECRET", &user.secret_access_key)
        .env("FERROBASE_ALICE_KEY_ID", &alice.access_key_id)
        .env("FERROBASE_ALICE_SECRET", &alice.secret_access_key)
        .env("FERROBASE_URL", &server.url)
        .env(
            "FERROBASE_TOKEN",
            server.token("admin", Some(NS), "tests").expect("a token"),
        )
        .env("FERROBASE_NS", NS)
        // Credentials and settings of the machine must not leak in.
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let output = command.output().expect("the suite starts");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the suite failed: {}",
        output.status
    );
}

fn suite_path(relative: &str) -> String {
    format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn boto3_suite() {
    let server = Server::start_with(s3_options()).unwrap();
    let mut command = Command::new("python3");
    command.arg(suite_path("python/test_s3_boto3.py"));
    run_suite(&server, command);
}

/// S3 behaviour real tools rely on beyond the basics (`python/test_s3_compat.py`).
#[test]
fn boto3_compat_suite() {
    let server = Server::start_with(s3_options()).unwrap();
    let mut command = Command::new("python3");
    command.arg(suite_path("python/test_s3_compat.py"));
    run_suite(&server, command);
}

#[test]
fn awscli_suite() {
    let server = Server::start_with(s3_options()).unwrap();
    let mut command = Command::new("bash");
    command.arg(suite_path("shell/s3_awscli.sh"));
    run_suite(&server, command);
}
