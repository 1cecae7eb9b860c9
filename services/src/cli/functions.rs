//! `ferrobase fn deploy|invoke|logs`: the functions API from the command line.
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
use serde_json::{Value, json};

use crate::cli::CommonArgs;

#[derive(Debug, Subcommand)]
pub enum FnCommand {
    /// Deploy a JavaScript file as a new version of a function.
    Deploy(DeployArgs),
    /// Invoke a function and print its result.
    Invoke(InvokeArgs),
    /// Print the latest activations of a function with their logs.
    Logs(LogsArgs),
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
    #[arg(long)]
    pub memory_mb: Option<u32>,
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Serve the function as a web action at /web/{ns}/{name}.
    #[arg(long)]
    pub web: bool,
    /// `KEY=VALUE` for `ctx.env` (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
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
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// How many activations, newest first.
    #[arg(long, default_value_t = 1)]
    pub limit: usize,
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

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = reqwest::Client::new()
            .request(method, &url)
            .bearer_auth(self.token()?);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }
}

pub(crate) fn api_error(status: u16, body: &Value) -> anyhow::Error {
    let message = body["error"]["message"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_owned);
    let mut text = format!("{status}: {message}");
    if let (Some(line), Some(column)) = (
        body["error"]["line"].as_u64(),
        body["error"]["column"].as_u64(),
    ) {
        text.push_str(&format!(" (line {line}, column {column})"));
    }
    anyhow::anyhow!(text)
}

pub async fn run(command: FnCommand) -> anyhow::Result<()> {
    match command {
        FnCommand::Deploy(args) => {
            let code = std::fs::read_to_string(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?;
            let mut spec = json!({"code": code, "web": args.web});
            if let Some(memory) = args.memory_mb {
                spec["memory_mb"] = json!(memory);
            }
            if let Some(timeout) = args.timeout_ms {
                spec["timeout_ms"] = json!(timeout);
            }
            if let Some(concurrency) = args.concurrency {
                spec["concurrency"] = json!(concurrency);
            }
            let env: BTreeMap<String, String> = args.env.into_iter().collect();
            spec["env"] = json!(env);
            let path = format!("/v1/functions/{}/{}", args.target.ns, args.name);
            let (status, body) = args
                .target
                .send(reqwest::Method::PUT, &path, Some(spec))
                .await?;
            if status != 200 {
                return Err(api_error(status, &body));
            }
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        FnCommand::Invoke(args) => {
            let event: Value = serde_json::from_str(&args.data).context("--data must be JSON")?;
            let query = if args.no_wait { "?blocking=false" } else { "" };
            let path = format!(
                "/v1/functions/{}/{}/invoke{query}",
                args.target.ns, args.name
            );
            let (status, body) = args
                .target
                .send(reqwest::Method::POST, &path, Some(event))
                .await?;
            match status {
                200 | 202 => println!("{}", serde_json::to_string_pretty(&body)?),
                _ => {
                    let id = body["error"]["activation_id"].as_str().unwrap_or("-");
                    return Err(api_error(status, &body).context(format!("activation {id}")));
                }
            }
        }
        FnCommand::Logs(args) => {
            let path = format!(
                "/v1/activations/{}?function={}&limit={}",
                args.target.ns, args.name, args.limit
            );
            let (status, body) = args.target.send(reqwest::Method::GET, &path, None).await?;
            if status != 200 {
                return Err(api_error(status, &body));
            }
            let activations = body["activations"].as_array().cloned().unwrap_or_default();
            if activations.is_empty() {
                bail!("no activations of {} in {}", args.name, args.target.ns);
            }
            for activation in activations {
                println!(
                    "{} {}@{} {} {} {:.3} ms",
                    activation["start"].as_str().unwrap_or("-"),
                    activation["function"].as_str().unwrap_or("-"),
                    activation["version"],
                    activation["id"].as_str().unwrap_or("-"),
                    activation["outcome"].as_str().unwrap_or("-"),
                    activation["duration_ms"].as_f64().unwrap_or(0.0),
                );
                if let Some(error) = activation["error"]["message"].as_str() {
                    println!("  error: {error}");
                }
                for line in activation["logs"].as_array().into_iter().flatten() {
                    println!("  {}", line.as_str().unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}
