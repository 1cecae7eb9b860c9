//! `ferrobase fn deploy|invoke|logs|list|get|delete`: the functions API from the command
//! line, through the Rust SDK (`ferrobase_sdk`), so that the CLI reads the same answer types
//! the server writes.
//!
//! The commands talk to a running server (`--url`, default `http://127.0.0.1:8080`). Without
//! `--token` they mint a short-lived admin token for `--ns` from the same configuration and
//! data directory that `serve` uses, like `ferrobase token`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrobase_core::auth::Role;
use ferrobase_core::wire::functions::{FunctionKind, FunctionSpec, FunctionSummary};
use serde_json::Value;

use crate::cli::CommonArgs;

#[derive(Debug, Subcommand)]
pub enum FnCommand {
    /// Deploy a JavaScript file as a new version of a function.
    Deploy(DeployArgs),
    /// Invoke a function and print its result.
    Invoke(InvokeArgs),
    /// Print the latest activations of a function with their logs.
    Logs(LogsArgs),
    /// List the namespace's functions (latest version of each).
    List(ListArgs),
    /// Show a function: the latest version (or `--version`) in full, and every version.
    Get(GetArgs),
    /// Delete a function and all its versions.
    Delete(NameArgs),
}

/// Where the server is and as whom to call it.
#[derive(Debug, Clone, Args)]
pub struct Target {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Base URL of the server.
    #[arg(long, env = "FERROBASE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token; minted from the data directory's key when omitted.
    #[arg(long, env = "FERROBASE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Namespace of the function.
    #[arg(long)]
    pub ns: String,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The function's source file.
    pub file: PathBuf,
    /// Function name.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// Memory limit of each activation, in MiB (default 128).
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// Deadline of each activation, in milliseconds (default 10000).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Most activations running at once (default 16).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Serve the function as a web action at /web/{ns}/{name}.
    #[arg(long)]
    pub web: bool,
    /// `KEY=VALUE` for `ctx.env` (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// `KEY=VALUE` readable in `ctx.env` but never shown by the API (repeatable).
    #[arg(long = "secret", value_parser = parse_env)]
    pub secrets: Vec<(String, String)>,
}

#[derive(Debug, Clone, Args)]
pub struct InvokeArgs {
    /// `name` or `name@version`.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// The event, as JSON.
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// Return at once with the activation id.
    #[arg(long = "async")]
    pub no_wait: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// How many activations, newest first.
    #[arg(long, default_value_t = 1)]
    pub limit: usize,
}

/// What every `list` command takes: the server, and a page.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    /// Most entries to print.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Start after this cursor (the `next` a previous page printed).
    #[arg(long)]
    pub after: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// Show this version instead of the latest.
    #[arg(long)]
    pub version: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

impl Target {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let config = self.common.load_server_config()?;
        let ns = ferrobase_core::Namespace::parse(&self.ns)?;
        crate::auth::mint(
            &config,
            Role::Admin,
            Some(ns),
            "cli",
            Duration::from_secs(600),
            None,
        )
    }

    /// An SDK client for the server, as the token's holder.
    pub(crate) fn client(&self) -> anyhow::Result<ferrobase_sdk::Client> {
        Ok(ferrobase_sdk::Client::new(&self.url, self.token()?))
    }
}

/// An SDK error as the CLI reports it: the status and message, with a syntax error's
/// position and a failed activation's id when the server gave them.
pub(crate) fn api_error(error: ferrobase_sdk::Error) -> anyhow::Error {
    let ferrobase_sdk::Error::Api {
        status,
        message,
        details,
        ..
    } = &error
    else {
        return anyhow::Error::new(error);
    };
    let mut text = format!("{}: {message}", status.as_u16());
    if let (Some(line), Some(column)) = (details.get("line"), details.get("column")) {
        text.push_str(&format!(" (line {line}, column {column})"));
    }
    if let Some(Value::String(id)) = details.get("activation_id") {
        text.push_str(&format!(" (activation {id})"));
    }
    anyhow::anyhow!(text)
}

/// Prints an answer as indented JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn summary_line(function: &FunctionSummary) -> String {
    let kind = match function.kind {
        FunctionKind::Javascript => "javascript",
        FunctionKind::Sequence => "sequence",
    };
    let web = if function.web { " web" } else { "" };
    format!(
        "{}@{}\t{kind}{web}\t{} MiB\t{} ms\t{}",
        function.name,
        function.version,
        function.memory_mb,
        function.timeout_ms,
        function.deployed_at
    )
}

pub async fn run(command: FnCommand) -> anyhow::Result<()> {
    match command {
        FnCommand::Deploy(args) => {
            let code = std::fs::read_to_string(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?;
            // The server fills in every default; a field given here overrides it.
            let mut spec: FunctionSpec = serde_json::from_value(serde_json::json!({"code": code}))?;
            spec.web = args.web;
            spec.memory_mb = args.memory_mb.unwrap_or(spec.memory_mb);
            spec.timeout_ms = args.timeout_ms.unwrap_or(spec.timeout_ms);
            spec.concurrency = args.concurrency.unwrap_or(spec.concurrency);
            spec.env = args.env.into_iter().collect::<BTreeMap<_, _>>();
            spec.secrets = args.secrets.into_iter().collect::<BTreeMap<_, _>>();
            let client = args.target.client()?;
            let deployed = client
                .deploy(&args.target.ns, &args.name, &spec)
                .await
                .map_err(api_error)?;
            print_json(&deployed)?;
        }
        FnCommand::Invoke(args) => {
            let event: Value = serde_json::from_str(&args.data).context("--data must be JSON")?;
            let client = args.target.client()?;
            let ns = &args.target.ns;
            if args.no_wait {
                let accepted = client
                    .invoke_async(ns, &args.name, &event)
                    .await
                    .map_err(api_error)?;
                print_json(&accepted)?;
            } else {
                let result = client
                    .invoke(ns, &args.name, &event)
                    .await
                    .map_err(api_error)?;
                print_json(&result)?;
            }
        }
        FnCommand::Logs(args) => {
            let client = args.target.client()?;
            let ns = &args.target.ns;
            // A function that does not exist says so, rather than "no activations".
            client
                .function(ns, &args.name, None)
                .await
                .map_err(api_error)?;
            let page = client
                .activations(ns, Some(&args.name), None, args.limit)
                .await
                .map_err(api_error)?;
            if page.activations.is_empty() {
                bail!("{} has no activations in {ns} yet", args.name);
            }
            for activation in page.activations {
                println!(
                    "{} {}@{} {} {} {:.3} ms",
                    activation.start,
                    activation.function,
                    activation.version,
                    activation.id,
                    activation.outcome.as_str(),
                    activation.duration_ms,
                );
                if let Some(error) = &activation.error {
                    println!("  error: {}", error.message);
                }
                for line in &activation.logs {
                    println!("  {line}");
                }
            }
        }
        FnCommand::List(args) => {
            let client = args.target.client()?;
            let page = client
                .functions(&args.target.ns, args.after.as_deref(), args.limit)
                .await
                .map_err(api_error)?;
            for function in &page.items {
                println!("{}", summary_line(function));
            }
            if let Some(next) = page.next {
                println!("more: --after {next}");
            }
        }
        FnCommand::Get(args) => {
            let client = args.target.client()?;
            let document = client
                .function(&args.target.ns, &args.name, args.version)
                .await
                .map_err(api_error)?;
            print_json(&document)?;
        }
        FnCommand::Delete(args) => {
            let client = args.target.client()?;
            client
                .delete_function(&args.target.ns, &args.name)
                .await
                .map_err(api_error)?;
            println!("deleted {}", args.name);
        }
    }
    Ok(())
}
