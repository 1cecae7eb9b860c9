//! `ferrobase trigger|rule|dlq ...`: triggers, rules and dead letters from the command line,
//! against a running server (same `--url`/`--token`/`--ns` handling as `ferrobase fn`).

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::functions::{Target, api_error};

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Create or replace a trigger, e.g. `--source '{"kind":"kv","prefix":"orders/"}'`.
    Put(TriggerPutArgs),
    /// Show a trigger.
    Get(NameArgs),
    /// Delete a trigger.
    Delete(NameArgs),
    /// Fire a manual trigger with a JSON payload.
    Fire(FireArgs),
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create or replace a rule binding a trigger to a function.
    Put(RulePutArgs),
    /// Show a rule.
    Get(NameArgs),
    /// Delete a rule (its delivery stops).
    Delete(NameArgs),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the namespace's dead letters.
    List(NsArgs),
    /// Deliver a dead letter again.
    Replay(NameArgs),
    /// Drop a dead letter.
    Purge(NameArgs),
}

#[derive(Debug, Clone, Args)]
pub struct NsArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    /// Trigger or rule name, or dead-letter id.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Args)]
pub struct TriggerPutArgs {
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// The source as JSON.
    #[arg(long)]
    pub source: String,
}

#[derive(Debug, Clone, Args)]
pub struct FireArgs {
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value = "{}")]
    pub data: String,
}

#[derive(Debug, Clone, Args)]
pub struct RulePutArgs {
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub trigger: String,
    /// `name` or `name@version`.
    #[arg(long)]
    pub function: String,
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Create the rule disabled.
    #[arg(long)]
    pub disabled: bool,
}

async fn show(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let (status, reply) = target.send(method, path, body).await?;
    if !(200..300).contains(&status) {
        return Err(api_error(status, &reply));
    }
    if !reply.is_null() {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    }
    Ok(())
}

pub async fn run_trigger(command: TriggerCommand) -> anyhow::Result<()> {
    match command {
        TriggerCommand::Put(args) => {
            let source: Value =
                serde_json::from_str(&args.source).context("--source must be JSON")?;
            let path = format!("/v1/triggers/{}/{}", args.target.ns, args.name);
            show(
                &args.target,
                Method::PUT,
                &path,
                Some(json!({ "source": source })),
            )
            .await
        }
        TriggerCommand::Get(args) => {
            let path = format!("/v1/triggers/{}/{}", args.target.ns, args.name);
            show(&args.target, Method::GET, &path, None).await
        }
        TriggerCommand::Delete(args) => {
            let path = format!("/v1/triggers/{}/{}", args.target.ns, args.name);
            show(&args.target, Method::DELETE, &path, None).await
        }
        TriggerCommand::Fire(args) => {
            let payload: Value = serde_json::from_str(&args.data).context("--data must be JSON")?;
            let path = format!("/v1/triggers/{}/{}/fire", args.target.ns, args.name);
            show(&args.target, Method::POST, &path, Some(payload)).await
        }
    }
}

pub async fn run_rule(command: RuleCommand) -> anyhow::Result<()> {
    match command {
        RuleCommand::Put(args) => {
            let rule = json!({
                "trigger": args.trigger,
                "function": args.function,
                "max_attempts": args.max_attempts,
                "enabled": !args.disabled,
            });
            let path = format!("/v1/rules/{}/{}", args.target.ns, args.name);
            show(&args.target, Method::PUT, &path, Some(rule)).await
        }
        RuleCommand::Get(args) => {
            let path = format!("/v1/rules/{}/{}", args.target.ns, args.name);
            show(&args.target, Method::GET, &path, None).await
        }
        RuleCommand::Delete(args) => {
            let path = format!("/v1/rules/{}/{}", args.target.ns, args.name);
            show(&args.target, Method::DELETE, &path, None).await
        }
    }
}

pub async fn run_dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(args) => {
            let path = format!("/v1/dlq/{}", args.target.ns);
            show(&args.target, Method::GET, &path, None).await
        }
        DlqCommand::Replay(args) => {
            let path = format!("/v1/dlq/{}/{}/replay", args.target.ns, args.name);
            show(&args.target, Method::POST, &path, None).await
        }
        DlqCommand::Purge(args) => {
            let path = format!("/v1/dlq/{}/{}", args.target.ns, args.name);
            show(&args.target, Method::DELETE, &path, None).await
        }
    }
}
