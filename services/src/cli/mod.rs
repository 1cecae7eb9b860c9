//! Command-line interface: `serve` (the server), `token` (mint a token with the server's key),
//! `fn`, `trigger`, `rule` and `dlq` (`functions`, `triggers`), `kv`, `queue`, `storage` and
//! `policy` (`data`), each managing a running server through the Rust SDK, `keys` (S3 access
//! keys, in the data directory), `completions` (shell completion scripts). The benchmarks are the `ferrobase-bench` crate under `bench/`.
//!
//! Flags that configure the server also read a `FERROBASE_*` variable (clap resolves flag over
//! variable); whatever either supplies overrides the TOML file given with `--config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferrobase_core::Namespace;
use ferrobase_core::auth::Role;

use crate::config::{Config, KvEngineKind, LogFormat, QueueEngineKind};

pub mod data;
pub mod functions;
pub mod triggers;

#[derive(Debug, Parser)]
#[command(
    name = "ferrobase",
    version,
    about = "Ferrobase: a backend-as-a-service in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print a token the server accepts (as the last line of output).
    Token(TokenArgs),
    /// Deploy, invoke and inspect functions on a running server.
    #[command(subcommand, name = "fn")]
    Fn(crate::cli::functions::FnCommand),
    /// Manage triggers on a running server.
    #[command(subcommand)]
    Trigger(crate::cli::triggers::TriggerCommand),
    /// Manage rules (trigger → function) on a running server.
    #[command(subcommand)]
    Rule(crate::cli::triggers::RuleCommand),
    /// List, replay and purge dead letters on a running server.
    #[command(subcommand)]
    Dlq(crate::cli::triggers::DlqCommand),
    /// Read and write KV entries on a running server.
    #[command(subcommand)]
    Kv(crate::cli::data::KvCommand),
    /// Publish, pull and inspect queues on a running server.
    #[command(subcommand)]
    Queue(crate::cli::data::QueueCommand),
    /// Object storage on a running server (S3 clients use the S3 endpoint).
    #[command(subcommand)]
    Storage(crate::cli::data::StorageCommand),
    /// Read and replace a namespace's policy on a running server.
    #[command(subcommand)]
    Policy(crate::cli::data::PolicyCommand),
    /// Manage S3 access keys (works while the server runs).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a shell completion script, e.g. `ferrobase completions bash > /etc/bash_completion.d/ferrobase`.
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an access key for a namespace; prints `{"access_key_id", "secret_access_key"}`
    /// as the last line.
    Create(KeysCreateArgs),
    /// List access keys (never their secrets), oldest first.
    List(KeysListArgs),
    /// Revoke an access key; a running server refuses it from its next request on.
    Revoke(KeysRevokeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct KeysListArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only the keys of this namespace.
    #[arg(long)]
    pub ns: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KeysRevokeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The access key id (`FB...`).
    pub access_key_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct KeysCreateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Namespace whose buckets the key reaches.
    #[arg(long)]
    pub ns: String,
    /// admin, service or user (user keys get only what the namespace policy grants).
    #[arg(long, default_value = "service")]
    pub role: Role,
    /// The user the key acts as: `{sub}` in policy patterns then matches this subject, as
    /// for that user's tokens (default: the access key id, which matches no user).
    #[arg(long)]
    pub sub: Option<String>,
}

/// Settings shared by every command that reads the server's configuration and data directory.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, env = "FERROBASE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (default ./data).
    #[arg(long, env = "FERROBASE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HS256 secret for tokens; generated into the data directory when none is configured.
    #[arg(long, env = "FERROBASE_AUTH_HS256_SECRET", hide_env_values = true)]
    pub hs256_secret: Option<String>,
}

impl CommonArgs {
    /// The configuration file with these flags and variables applied over it.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = Config::from_file(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(secret) = &self.hs256_secret {
            config.auth.hs256_secret = Some(secret.clone());
        }
        Ok(config)
    }

    /// [`CommonArgs::load_config`] for commands that use a server's data directory (tokens,
    /// access keys): refused when the directory has never been a server's, instead of minting
    /// with a new key the server does not know. Only `serve` creates a data directory's key.
    pub fn load_server_config(&self) -> anyhow::Result<Config> {
        let config = self.load_config()?;
        let key = config.data_dir.join(crate::auth::SECRET_FILE);
        if config.auth.hs256_secret.is_none() && !key.exists() {
            anyhow::bail!(
                "{} is not the data directory of a Ferrobase server (it has no {}). Point this \
                 command at the server's data directory with --data-dir, FERROBASE_DATA_DIR or \
                 --config; `ferrobase serve` prints it when it starts.",
                config.data_dir.display(),
                crate::auth::SECRET_FILE
            );
        }
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of the HTTP API (default 127.0.0.1:8080).
    #[arg(long, env = "FERROBASE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "FERROBASE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// KV engine (default sled).
    #[arg(long, env = "FERROBASE_KV_ENGINE")]
    pub kv_engine: Option<KvEngineKind>,
    /// Largest KV value in bytes (default 1048576).
    #[arg(long, env = "FERROBASE_KV_MAX_VALUE_BYTES")]
    pub kv_max_value_bytes: Option<usize>,
    /// Origins allowed by CORS, comma-separated; `*` for any.
    #[arg(long, env = "FERROBASE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Change-log retention by age, e.g. `7d` or `12h`.
    #[arg(long, env = "FERROBASE_EVENTS_MAX_AGE", value_parser = humantime::parse_duration)]
    pub events_max_age: Option<Duration>,
    /// Change-log retention by count of events per namespace.
    #[arg(long, env = "FERROBASE_EVENTS_MAX_EVENTS")]
    pub events_max_events: Option<u64>,
    /// Address of the S3 protocol endpoint (default 127.0.0.1:9000), or `off` for none.
    #[arg(long, env = "FERROBASE_S3_LISTEN")]
    pub s3_listen: Option<crate::config::Listen>,
    /// ETags of large bodies sent without Content-MD5: auto (default; BLAKE3-based over
    /// 8 MiB) or md5 (always the MD5).
    #[arg(long, env = "FERROBASE_STORAGE_ETAG")]
    pub storage_etag: Option<crate::config::EtagMode>,
    /// Queue engine: embedded (default) or jetstream (needs --nats-url).
    #[arg(long, env = "FERROBASE_QUEUE_ENGINE")]
    pub queue_engine: Option<QueueEngineKind>,
    /// NATS server of the jetstream queue engine, e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "FERROBASE_NATS_URL")]
    pub nats_url: Option<String>,
    /// Whether functions' `fetch` refuses private addresses (loopback, private networks,
    /// link-local, metadata services...): true (default) or false.
    #[arg(long, env = "FERROBASE_FUNCTIONS_FETCH_DENY_PRIVATE")]
    pub functions_fetch_deny_private: Option<bool>,
}

impl ServeArgs {
    /// The effective configuration: file, then variables and flags, validated.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = self.common.load_config()?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(format) = self.log_format {
            config.log_format = format;
        }
        if let Some(engine) = self.kv_engine {
            config.kv.engine = engine;
        }
        if let Some(max) = self.kv_max_value_bytes {
            config.kv.max_value_bytes = max;
        }
        if let Some(origins) = &self.cors_origins {
            config.cors.allowed_origins = origins.clone();
        }
        if let Some(age) = self.events_max_age {
            config.events.max_age = Some(age);
        }
        if let Some(count) = self.events_max_events {
            config.events.max_events = Some(count);
        }
        if let Some(address) = self.s3_listen {
            config.storage.s3_listen = address;
        }
        if let Some(mode) = self.storage_etag {
            config.storage.etag = mode;
        }
        if let Some(engine) = self.queue_engine {
            config.queue.engine = engine;
        }
        if let Some(url) = &self.nats_url {
            config.queue.nats_url = Some(url.clone());
        }
        if let Some(deny) = self.functions_fetch_deny_private {
            config.functions.fetch_deny_private = deny;
        }
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// admin, service or user.
    #[arg(long)]
    pub role: Role,
    /// Namespace the token is for (admin tokens may omit it to reach every namespace).
    #[arg(long)]
    pub ns: Option<String>,
    /// Subject: the user or program the token stands for.
    #[arg(long, default_value = "cli")]
    pub sub: String,
    /// Lifetime, e.g. `1h`, `30m`, `7d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Optional scopes narrowing the token, e.g. `kv:read` (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub scope: Vec<String>,
}

/// Mints the token `ferrobase token` prints, signed with the same key material `serve` uses.
pub fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
    let config = args.common.load_server_config()?;
    let ns = args.ns.as_deref().map(Namespace::parse).transpose()?;
    if ns.is_none() && args.role != Role::Admin {
        anyhow::bail!("--ns is required for {} tokens", args.role.as_str());
    }
    let scopes = (!args.scope.is_empty()).then(|| args.scope.clone());
    crate::auth::mint(&config, args.role, ns, &args.sub, args.ttl, scopes)
}

/// `ferrobase keys list`: one line per key, without its secret.
pub fn list_keys_command(args: &KeysListArgs) -> anyhow::Result<Vec<String>> {
    let config = args.common.load_server_config()?;
    let ns = args.ns.as_deref().map(Namespace::parse).transpose()?;
    let keys = crate::auth::access_keys::AccessKeys::new(&config.data_dir).list(ns.as_ref())?;
    Ok(keys
        .iter()
        .map(|key| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                key.access_key_id,
                key.ns,
                key.role.as_str(),
                key.subject(),
                ferrobase_core::event::rfc3339_millis(key.created_ms)
            )
        })
        .collect())
}

/// `ferrobase keys revoke`: fails when there is no such key.
pub fn revoke_key_command(args: &KeysRevokeArgs) -> anyhow::Result<()> {
    let config = args.common.load_server_config()?;
    let keys = crate::auth::access_keys::AccessKeys::new(&config.data_dir);
    if !keys.revoke(&args.access_key_id)? {
        anyhow::bail!(
            "no access key {:?} in {}",
            args.access_key_id,
            config.data_dir.display()
        );
    }
    Ok(())
}

/// `ferrobase completions SHELL`: the completion script for every command and flag.
pub fn print_completions(args: &CompletionsArgs) {
    use clap::CommandFactory;
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "ferrobase",
        &mut std::io::stdout(),
    );
}

/// `ferrobase keys create`: the JSON line it prints last.
pub fn create_key_command(args: &KeysCreateArgs) -> anyhow::Result<String> {
    let config = args.common.load_server_config()?;
    let ns = Namespace::parse(&args.ns)?;
    if args.sub.as_deref().is_some_and(str::is_empty) {
        anyhow::bail!("--sub must not be empty");
    }
    let key = crate::auth::access_keys::AccessKeys::new(&config.data_dir).create(
        ns,
        args.role,
        args.sub.clone(),
    )?;
    Ok(serde_json::json!({
        "access_key_id": key.access_key_id,
        "secret_access_key": key.secret_access_key,
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferrobase.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\ndata_dir = \"/from/file\"\n[kv]\nmax_value_bytes = 5\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "ferrobase",
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:7001",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve expected")
        };
        let config = args.config().unwrap();
        assert_eq!(config.listen.port(), 7001, "flag beats file");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/file"),
            "file beats default"
        );
        assert_eq!(config.kv.max_value_bytes, 5);
    }

    #[test]
    fn fetch_settings_come_from_file_and_flag_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferrobase.toml");
        let serve = |extra: &[&str]| {
            let mut argv = vec!["ferrobase", "serve", "--config", file.to_str().unwrap()];
            argv.extend_from_slice(extra);
            let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("serve expected")
            };
            args.config()
        };
        std::fs::write(
            &file,
            "[functions]\nfetch_allowed_hosts = [\"api.example.com\"]\n",
        )
        .unwrap();
        assert!(
            serve(&[]).unwrap().functions.fetch_deny_private,
            "denied by default"
        );
        let allowed = serve(&["--functions-fetch-deny-private", "false"]).unwrap();
        assert!(
            !allowed.functions.fetch_deny_private,
            "the flag beats the default"
        );
        assert_eq!(
            allowed
                .functions
                .fetch_policy()
                .unwrap()
                .private_addresses(),
            ferrobase_functions::PrivateAddresses::Allow
        );

        std::fs::write(&file, "[functions]\nfetch_deny_private = false\n").unwrap();
        let flagged = serve(&["--functions-fetch-deny-private", "true"]).unwrap();
        assert!(
            flagged.functions.fetch_deny_private,
            "the flag beats the file"
        );

        std::fs::write(
            &file,
            "[functions]\nfetch_allowed_hosts = [\"api.example.com:443\"]\n",
        )
        .unwrap();
        let error = serve(&[]).unwrap_err();
        assert!(
            format!("{error:#}").contains("functions.fetch_allowed_hosts"),
            "{error:#}"
        );
    }
}
