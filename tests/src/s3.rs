//! Helpers for the object storage suites: the S3 endpoint of a [`Server`] started with
//! [`s3_options`], and access keys made with `ferrobase keys create`.

use std::process::Command;

use anyhow::{Context, bail};

use crate::{Server, ServerOptions, binary};

/// Options that start the S3 endpoint on a port the OS picks.
pub fn s3_options() -> ServerOptions {
    ServerOptions {
        args: vec!["--s3-listen".to_owned(), "127.0.0.1:0".to_owned()],
        // s3s logs each client error at error level; the suites provoke many on purpose.
        envs: vec![("FERROBASE_LOG".to_owned(), "warn,s3s=off".to_owned())],
    }
}

/// An S3 access key as `ferrobase keys create` prints it.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Server {
    /// The S3 endpoint's URL, which the server writes to `{data_dir}/s3/address` before it
    /// reports its HTTP address.
    pub fn s3_url(&self) -> anyhow::Result<String> {
        let path = self.data_dir().join("s3").join("address");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (started with --s3-listen?)", path.display()))?;
        Ok(text.trim().to_owned())
    }

    /// Creates an access key for `ns` with `role`, through the CLI, while the server runs.
    pub fn s3_key(&self, ns: &str, role: &str) -> anyhow::Result<AccessKey> {
        self.s3_key_for(ns, role, None)
    }

    /// Like [`Server::s3_key`], for the subject `sub` when given (`keys create --sub`): the
    /// user whose `{sub}` policy patterns the key is held to.
    pub fn s3_key_for(&self, ns: &str, role: &str, sub: Option<&str>) -> anyhow::Result<AccessKey> {
        let mut command = Command::new(binary());
        command.args(["keys", "create", "--ns", ns, "--role", role]);
        if let Some(sub) = sub {
            command.args(["--sub", sub]);
        }
        let output = command
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .context("running ferrobase keys create")?;
        if !output.status.success() {
            bail!(
                "ferrobase keys create failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let stdout = String::from_utf8(output.stdout)?;
        let line = stdout
            .lines()
            .last()
            .context("keys create printed nothing")?;
        let json: serde_json::Value = serde_json::from_str(line)?;
        let field = |name: &str| {
            json[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{name} missing from {line}"))
        };
        Ok(AccessKey {
            access_key_id: field("access_key_id")?,
            secret_access_key: field("secret_access_key")?,
        })
    }
}
