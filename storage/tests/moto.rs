//! An RAII harness for a real S3 server process: `moto_server` (PyPI `moto[server]`) on a
//! free loopback port, killed when the harness is dropped (at process exit for the shared one).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferrobase_storage::S3BackendConfig;

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts `moto_server` and waits until it answers.
    pub fn start() -> Moto {
        // The OS picks a free port; moto binds it right after (moto cannot report a port it
        // chose itself).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        // A shell watchdog stops moto when this process ends: the shared server lives in a
        // static, which is never dropped.
        let script = format!(
            "moto_server -H 127.0.0.1 -p {port} & m=$!; trap 'kill $m 2>/dev/null; exit 0' TERM EXIT; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done",
            parent = std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (pip install 'moto[server]'; ./scripts/test installs it)");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// Creates a new, empty backend bucket and returns a backend config for it, so that tests
    /// sharing the server never see each other's blobs.
    pub async fn fresh_bucket(&self) -> S3BackendConfig {
        let bucket = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
        // moto accepts unsigned requests.
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("moto answers");
        assert!(
            response.status().is_success(),
            "creating the bucket: {}",
            response.status()
        );
        S3BackendConfig {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".to_owned(),
            bucket,
            access_key_id: "testing".to_owned(),
            secret_access_key: "testing".to_owned(),
            allow_http: true,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGTERM so that the watchdog's trap stops moto too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The server shared by the tests of this process.
pub fn shared() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}
