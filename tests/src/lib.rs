//! `ferrobase-tests`: harnesses that run the real `ferrobase` binary for end-to-end suites.
//!
//! [`Server`] starts `ferrobase serve` on `127.0.0.1:0` with a data directory of its own, learns
//! the port from the line the server prints, and kills the process when dropped, so a failing
//! test never leaves a server behind. [`Server::restart`] reuses the data directory, which is
//! how the crash tests check what survived.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod s3;

/// How long a server gets to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `ferrobase` binary built alongside the tests (`target/<profile>/ferrobase`).
/// The standard output of a command that must have succeeded; its standard error otherwise.
pub fn succeeded(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/ferrobase
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let binary = profile_dir.join(format!("ferrobase{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p ferrobase` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// A running `ferrobase serve`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    data_dir: PathBuf,
    /// Keeps the temp directory alive for the server's whole life, restarts included.
    _temp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    envs: Vec<(String, String)>,
    pub url: String,
}

/// How to start a server.
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// Extra `serve` arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub envs: Vec<(String, String)>,
}

impl Server {
    /// Starts a server with `config` as its TOML file; the file lives in the returned
    /// directory, which the caller keeps for as long as the server may restart.
    pub fn start_with_config(config: &str) -> anyhow::Result<(Server, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ferrobase.toml");
        std::fs::write(&path, config)?;
        let server = Server::start_with(ServerOptions {
            args: vec!["--config".into(), path.display().to_string()],
            ..ServerOptions::default()
        })?;
        Ok((server, dir))
    }

    /// Starts a server on a fresh data directory.
    pub fn start() -> anyhow::Result<Server> {
        Server::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> anyhow::Result<Server> {
        let temp = tempfile::tempdir()?;
        let mut server = Server {
            child: None,
            data_dir: temp.path().join("data"),
            _temp: Some(temp),
            extra_args: options.args,
            envs: options.envs,
            url: String::new(),
        };
        server.spawn()?;
        Ok(server)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env("FERROBASE_LOG", "warn")
            // Servers run side by side: the S3 endpoint must not take its fixed default port.
            .env("FERROBASE_S3_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        let mut child = command.spawn().context("spawning ferrobase serve")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("ferrobase listening on ") {
                    let _ = sender.send(url.to_owned());
                }
            }
        });
        self.child = Some(child);
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(url) => {
                self.url = url;
                Ok(())
            }
            Err(_) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                bail!("ferrobase serve did not report its address (exit status: {status:?})")
            }
        }
    }

    /// Mints a token with `ferrobase token` against this server's data directory.
    pub fn token(&self, role: &str, ns: Option<&str>, sub: &str) -> anyhow::Result<String> {
        let mut command = Command::new(binary());
        command
            .args(["token", "--role", role, "--sub", sub, "--data-dir"])
            .arg(&self.data_dir);
        if let Some(ns) = ns {
            command.args(["--ns", ns]);
        }
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        let output = command.output().context("running ferrobase token")?;
        if !output.status.success() {
            bail!(
                "ferrobase token failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let stdout = String::from_utf8(output.stdout)?;
        stdout
            .lines()
            .last()
            .map(str::to_owned)
            .context("ferrobase token printed nothing")
    }

    /// A client for `ns` with an admin token of that namespace.
    pub fn client(&self, ns: &str) -> anyhow::Result<ferrobase_sdk::Client> {
        Ok(ferrobase_sdk::Client::new(
            &self.url,
            self.token("admin", Some(ns), "tests")?,
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit and returns its status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("server not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("server did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory (after a kill or terminate).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill_hard();
        self.spawn()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
