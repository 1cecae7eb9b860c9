//! Logs that explain and one error contract, on the real binary: a request log line per
//! request with the request id the client gets back, `RUST_LOG` honoured, no colour codes in a
//! log file, JSON lines with `--log-format json`, and 405 with `Allow` for a wrong method.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrobase_tests::binary;

/// A server whose stderr (its log) goes to a file, with `envs` and `args` added.
struct Logged {
    child: Child,
    log: std::path::PathBuf,
    url: String,
    _temp: tempfile::TempDir,
}

impl Logged {
    fn start(envs: &[(&str, &str)], args: &[&str]) -> Logged {
        let temp = tempfile::tempdir().unwrap();
        let log = temp.path().join("server.log");
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--s3-listen",
                "off",
                "--data-dir",
            ])
            .arg(temp.path().join("data"))
            .args(args)
            .env_remove("FERROBASE_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let url = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("ferrobase listening on ")
                    .map(str::to_owned)
            })
            .expect("the server prints its address");
        Logged {
            child,
            log,
            url,
            _temp: temp,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Waits until the log has a line containing every one of `needles`.
    fn wait_for_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if let Some(line) = log
                .lines()
                .find(|line| needles.iter().all(|needle| line.contains(needle)))
            {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_logged_with_the_id_the_client_gets_back() {
    let server = Logged::start(&[], &[]);
    let http = reqwest::Client::new();
    let answer = http
        .get(format!("{}/v1/kv/shop/missing", server.url))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "trace-42");
    let line = server.wait_for_line(&["request", "trace-42"]);
    for field in [
        "GET",
        "/v1/kv/{ns}/{*key}",
        "status=401",
        "ns=shop",
        "latency_ms=",
    ] {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }
    // An id that could forge log lines is replaced by one of the server's own.
    let answer = http
        .get(format!("{}/v1/kv/shop/missing", server.url))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    let id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, "two words");
    server.wait_for_line(&["request", &id]);
    assert!(
        !server.log().contains('\u{1b}'),
        "a log written to a file has no colour codes"
    );
}

/// A GET of `url`, retried while the connection is refused or reset just after start-up.
async fn answered(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reqwest::get(url).await {
            Ok(_) => return,
            Err(error) if Instant::now() < deadline && error.is_request() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{url}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_is_honoured_and_json_lines_are_available() {
    let quiet = Logged::start(&[("RUST_LOG", "warn")], &[]);
    answered(&format!("{}/v1/kv/shop/a", quiet.url)).await;
    assert!(
        !quiet.log().contains("request"),
        "RUST_LOG=warn keeps info lines out: {}",
        quiet.log()
    );
    drop(quiet);
    let json = Logged::start(&[("RUST_LOG", "info")], &["--log-format", "json"]);
    answered(&format!("{}/v1/kv/shop/a", json.url)).await;
    json.wait_for_line(&["\"request\""]);
    for line in json.log().lines() {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("{line:?} is not JSON: {error}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_answers_405_with_allow_and_the_json_error() {
    let server = Logged::start(&[], &[]);
    let answer = reqwest::Client::new()
        .delete(format!("{}/v1/kv/shop", server.url))
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}; server log:\n{}", server.log()));
    assert_eq!(answer.status().as_u16(), 405);
    let allow = answer.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "Allow: {allow}");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DELETE"),
        "{body}"
    );
}
