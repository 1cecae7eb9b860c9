//! A real `nats-server -js` for tests: started on a free port of 127.0.0.1 with its store in a
//! temp directory, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `nats-server` with JetStream; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server` (from `PATH`) and waits until it accepts connections. Panics when
    /// it cannot: this is a test harness.
    pub fn start() -> Self {
        let store = tempfile::tempdir().expect("temp dir for the NATS store");
        // `-p -1` lets the server pick a free port, which it logs; no race with other tests.
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts (install it: apt-get install nats-server)");
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, port) = mpsc::channel();
        std::thread::spawn(move || {
            let marker = "Listening for client connections on ";
            let mut found = Some(found);
            // Keep reading until the server exits, so that its log never blocks it.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.split(marker).nth(1)
                    && let Some(sender) = found.take()
                {
                    let _ = sender.send(address.trim().to_owned());
                }
            }
        });
        let address = match port.recv_timeout(START_TIMEOUT) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("nats-server did not start listening");
            }
        };
        NatsServer {
            child,
            url: format!("nats://{address}"),
            _store: store,
        }
    }

    /// The client URL, `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
