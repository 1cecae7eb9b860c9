//! `ferrobase kv|queue|storage|policy ...`: the data services of a running server from the
//! command line, through the Rust SDK (same `--url`/`--token`/`--ns` handling as
//! `ferrobase fn`).

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrobase_core::policy::Policy;
use ferrobase_queue::QueueConfig;
use ferrobase_sdk::{NewMessage, Pull, PutOptions};

use crate::cli::functions::{ListArgs, Target, api_error, print_json};

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print a key's value (raw bytes on stdout; its version and type on stderr).
    Get(KeyArgs),
    /// Store a value: `--value TEXT`, or stdin when omitted.
    Put(KvPutArgs),
    /// List keys under a prefix.
    List(KvListArgs),
    /// Delete a key; exits non-zero when there was none.
    Delete(KeyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// The key.
    pub key: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Args)]
pub struct KvPutArgs {
    /// The key.
    pub key: String,
    #[command(flatten)]
    pub target: Target,
    /// The value; read from stdin when omitted.
    #[arg(long)]
    pub value: Option<String>,
    /// Content type of the value (default application/octet-stream, or JSON when it parses).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Seconds until the entry expires.
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Write only if the current version is this.
    #[arg(long)]
    pub if_version: Option<u64>,
    /// Write only if the key does not exist.
    #[arg(long)]
    pub if_absent: bool,
}

#[derive(Debug, Clone, Args)]
pub struct KvListArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue, or change its configuration (unset flags take the defaults).
    Configure(ConfigureArgs),
    /// Publish one message (a JSON body).
    Publish(PublishArgs),
    /// Pull messages, print them, and ack them unless `--no-ack`.
    Pull(PullArgs),
    /// Show a queue's configuration, depth and consumer groups.
    Info(QueueArgs),
    /// List the namespace's queues with their depth.
    List(ListArgs),
}

#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Queue name.
    pub queue: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigureArgs {
    /// Queue name.
    pub queue: String,
    #[command(flatten)]
    pub target: Target,
    /// Deliveries of a message before it is dead-lettered (default 5).
    #[arg(long)]
    pub max_deliver: Option<u32>,
    /// Drop messages older than this, in seconds.
    #[arg(long)]
    pub max_age_s: Option<u64>,
    /// Keep at most this many messages.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Append a change-log event for every message (so triggers can react).
    #[arg(long)]
    pub emit_events: bool,
    /// How long a dedup id is remembered, in seconds (default 120).
    #[arg(long)]
    pub dedup_window_s: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Queue name.
    pub queue: String,
    #[command(flatten)]
    pub target: Target,
    /// The message body, as JSON.
    #[arg(long)]
    pub body: String,
    /// Ordering key: messages with the same key are delivered one at a time, in order.
    #[arg(long)]
    pub key: Option<String>,
    /// Hold the message back this long, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Drop a second publish with this id within the queue's dedup window.
    #[arg(long)]
    pub dedup_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Queue name.
    pub queue: String,
    #[command(flatten)]
    pub target: Target,
    /// Most messages to pull.
    #[arg(long, default_value_t = 10)]
    pub max: usize,
    /// How long to wait for a first message, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub wait_ms: u64,
    /// Consumer group (default `default`).
    #[arg(long)]
    pub group: Option<String>,
    /// Leave the messages leased instead of acking them (they come back after the lease).
    #[arg(long)]
    pub no_ack: bool,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// List the namespace's buckets.
    Buckets(ListArgs),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the namespace's policy.
    Get(PolicyGetArgs),
    /// Replace the namespace's policy with a JSON document (`--file`, or stdin).
    Put(PolicyPutArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PolicyGetArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyPutArgs {
    #[command(flatten)]
    pub target: Target,
    /// The policy document; read from stdin when omitted.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading stdin")?;
    Ok(bytes)
}

pub async fn run_kv(command: KvCommand) -> anyhow::Result<()> {
    match command {
        KvCommand::Get(args) => {
            let client = args.target.client()?;
            let Some(value) = client
                .kv_get(&args.target.ns, &args.key)
                .await
                .map_err(api_error)?
            else {
                bail!("404: key {:?} not found", args.key);
            };
            use std::io::Write;
            std::io::stdout().write_all(&value.bytes)?;
            eprintln!("version {} ({})", value.version, value.content_type);
        }
        KvCommand::Put(args) => {
            let bytes = match args.value {
                Some(value) => value.into_bytes(),
                None => read_stdin()?,
            };
            let content_type = args.content_type.or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .is_ok()
                    .then(|| "application/json".to_owned())
            });
            let options = PutOptions {
                content_type,
                ttl_secs: args.ttl,
                if_version: args.if_version,
                if_absent: args.if_absent,
            };
            let client = args.target.client()?;
            let stored = client
                .kv_put(&args.target.ns, &args.key, bytes, &options)
                .await
                .map_err(api_error)?;
            print_json(&stored)?;
        }
        KvCommand::List(args) => {
            let target = &args.list.target;
            let client = target.client()?;
            let page = client
                .kv_list(
                    &target.ns,
                    &args.prefix,
                    args.list.after.as_deref(),
                    args.list.limit,
                )
                .await
                .map_err(api_error)?;
            for item in &page.items {
                println!(
                    "{}\tv{}\t{} bytes\t{}",
                    item.key, item.version, item.size, item.updated_at
                );
            }
            if let Some(next) = page.next {
                println!("more: --after {next}");
            }
        }
        KvCommand::Delete(args) => {
            let client = args.target.client()?;
            let deleted = client
                .kv_delete(&args.target.ns, &args.key)
                .await
                .map_err(api_error)?;
            if !deleted {
                bail!("404: key {:?} not found", args.key);
            }
            println!("deleted {}", args.key);
        }
    }
    Ok(())
}

pub async fn run_queue(command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::Configure(args) => {
            let mut config = crate::routes::queue::config_document(&QueueConfig::default());
            config.max_deliver = args.max_deliver.unwrap_or(config.max_deliver);
            config.retention.max_age_s = args.max_age_s;
            config.retention.max_messages = args.max_messages;
            config.emit_events = args.emit_events;
            config.dedup_window_s = args.dedup_window_s.unwrap_or(config.dedup_window_s);
            let client = args.target.client()?;
            let stored = client
                .configure_queue(&args.target.ns, &args.queue, &config)
                .await
                .map_err(api_error)?;
            print_json(&stored)?;
        }
        QueueCommand::Publish(args) => {
            let body = serde_json::from_str(&args.body).context("--body must be JSON")?;
            let message = NewMessage {
                body,
                key: args.key,
                delay_ms: args.delay_ms,
                dedup_id: args.dedup_id,
            };
            let client = args.target.client()?;
            let published = client
                .publish(&args.target.ns, &args.queue, &[message])
                .await
                .map_err(api_error)?;
            print_json(&published)?;
        }
        QueueCommand::Pull(args) => {
            let pull = Pull {
                max: args.max,
                wait_ms: args.wait_ms,
                group: args.group.clone(),
                ..Pull::default()
            };
            let client = args.target.client()?;
            let ns = &args.target.ns;
            let pulled = client
                .pull(ns, &args.queue, &pull)
                .await
                .map_err(api_error)?;
            print_json(&pulled)?;
            if !args.no_ack && !pulled.messages.is_empty() {
                let receipts: Vec<String> =
                    pulled.messages.iter().map(|m| m.receipt.clone()).collect();
                let acked = client
                    .ack(ns, &args.queue, &receipts)
                    .await
                    .map_err(api_error)?;
                if !acked.stale.is_empty() {
                    bail!(
                        "{} of the messages were no longer leased and will be delivered again",
                        acked.stale.len()
                    );
                }
            }
        }
        QueueCommand::List(args) => {
            let client = args.target.client()?;
            let page = client
                .queues(&args.target.ns, args.after.as_deref(), args.limit)
                .await
                .map_err(api_error)?;
            for queue in &page.items {
                println!("{}\t{} messages", queue.queue, queue.messages);
            }
            if let Some(next) = page.next {
                println!("more: --after {next}");
            }
        }
        QueueCommand::Info(args) => {
            let client = args.target.client()?;
            let info = client
                .queue_info(&args.target.ns, &args.queue)
                .await
                .map_err(api_error)?;
            print_json(&info)?;
        }
    }
    Ok(())
}

pub async fn run_storage(command: StorageCommand) -> anyhow::Result<()> {
    match command {
        StorageCommand::Buckets(args) => {
            let client = args.target.client()?;
            let page = client
                .buckets(&args.target.ns, args.after.as_deref(), args.limit)
                .await
                .map_err(api_error)?;
            for bucket in &page.items {
                println!("{}\t{}", bucket.name, bucket.created_at);
            }
            if let Some(next) = page.next {
                println!("more: --after {next}");
            }
        }
    }
    Ok(())
}

pub async fn run_policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Get(args) => {
            let client = args.target.client()?;
            let policy = client.policy(&args.target.ns).await.map_err(api_error)?;
            print_json(&policy)?;
        }
        PolicyCommand::Put(args) => {
            let bytes = match &args.file {
                Some(path) => {
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
                }
                None => read_stdin()?,
            };
            let policy: Policy =
                serde_json::from_slice(&bytes).context("the policy must be a JSON document")?;
            let client = args.target.client()?;
            let stored = client
                .put_policy(&args.target.ns, &policy)
                .await
                .map_err(api_error)?;
            print_json(&stored)?;
        }
    }
    Ok(())
}
