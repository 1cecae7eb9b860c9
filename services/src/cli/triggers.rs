//! `ferrobase trigger|rule|dlq ...`: triggers, rules and dead letters from the command line,
//! against a running server through the Rust SDK (same `--url`/`--token`/`--ns` handling as
//! `ferrobase fn`).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ferrobase_core::wire::triggers::{Backoff, RuleSpec, TriggerSpec};
use serde_json::Value;

use crate::cli::functions::{ListArgs, Target, api_error, print_json};

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
    /// List the namespace's triggers.
    List(ListArgs),
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create or replace a rule binding a trigger to a function.
    Put(RulePutArgs),
    /// Show a rule.
    Get(NameArgs),
    /// Delete a rule (its delivery stops).
    Delete(NameArgs),
    /// List the namespace's rules.
    List(ListArgs),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the namespace's dead letters.
    List(ListArgs),
    /// Deliver a dead letter again; exits non-zero when the delivery failed again.
    Replay(NameArgs),
    /// Drop a dead letter.
    Purge(NameArgs),
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
    /// Trigger name.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// The source as JSON, exactly as the HTTP API takes it (a kv source without `ops`
    /// selects every operation), e.g. `{"kind":"kv","prefix":"orders/","ops":["put"]}`.
    #[arg(long)]
    pub source: String,
}

#[derive(Debug, Clone, Args)]
pub struct FireArgs {
    /// Trigger name.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// The payload, as JSON.
    #[arg(long, default_value = "{}")]
    pub data: String,
}

#[derive(Debug, Clone, Args)]
pub struct RulePutArgs {
    /// Rule name.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// The trigger whose events the rule delivers.
    #[arg(long)]
    pub trigger: String,
    /// `name` or `name@version`.
    #[arg(long)]
    pub function: String,
    /// Attempts at one event before it is dead-lettered.
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Most deliveries running at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Deliver events with the same subject in any order (default: in log order).
    #[arg(long)]
    pub unordered: bool,
    /// Create the rule disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// Prints the cursor of a listing that has more.
fn print_next(next: Option<String>) {
    if let Some(next) = next {
        println!("more: --after {next}");
    }
}

pub async fn run_trigger(command: TriggerCommand) -> anyhow::Result<()> {
    match command {
        TriggerCommand::Put(args) => {
            let source: Value =
                serde_json::from_str(&args.source).context("--source must be JSON")?;
            let spec: TriggerSpec = serde_json::from_value(serde_json::json!({ "source": source }))
                .context("--source is not a trigger source")?;
            let client = args.target.client()?;
            let stored = client
                .put_trigger(&args.target.ns, &args.name, &spec)
                .await
                .map_err(api_error)?;
            print_json(&stored)
        }
        TriggerCommand::Get(args) => {
            let client = args.target.client()?;
            let trigger = client
                .trigger(&args.target.ns, &args.name)
                .await
                .map_err(api_error)?;
            print_json(&trigger)
        }
        TriggerCommand::Delete(args) => {
            let client = args.target.client()?;
            client
                .delete_trigger(&args.target.ns, &args.name)
                .await
                .map_err(api_error)?;
            println!("deleted {}", args.name);
            Ok(())
        }
        TriggerCommand::Fire(args) => {
            let payload: Value = serde_json::from_str(&args.data).context("--data must be JSON")?;
            let client = args.target.client()?;
            let fired = client
                .fire(&args.target.ns, &args.name, &payload)
                .await
                .map_err(api_error)?;
            print_json(&fired)
        }
        TriggerCommand::List(args) => {
            let client = args.target.client()?;
            let page = client
                .triggers(&args.target.ns, args.after.as_deref(), args.limit)
                .await
                .map_err(api_error)?;
            for trigger in &page.items {
                println!(
                    "{}\t{}",
                    trigger.name,
                    serde_json::to_string(&trigger.source)?
                );
            }
            print_next(page.next);
            Ok(())
        }
    }
}

pub async fn run_rule(command: RuleCommand) -> anyhow::Result<()> {
    match command {
        RuleCommand::Put(args) => {
            let rule = RuleSpec {
                trigger: args.trigger,
                function: args.function,
                enabled: !args.disabled,
                max_attempts: args.max_attempts,
                backoff: Backoff::default(),
                ordered: !args.unordered,
                concurrency: args.concurrency,
            };
            let client = args.target.client()?;
            let stored = client
                .put_rule(&args.target.ns, &args.name, &rule)
                .await
                .map_err(api_error)?;
            print_json(&stored)
        }
        RuleCommand::Get(args) => {
            let client = args.target.client()?;
            let rule = client
                .rule(&args.target.ns, &args.name)
                .await
                .map_err(api_error)?;
            print_json(&rule)
        }
        RuleCommand::Delete(args) => {
            let client = args.target.client()?;
            client
                .delete_rule(&args.target.ns, &args.name)
                .await
                .map_err(api_error)?;
            println!("deleted {}", args.name);
            Ok(())
        }
        RuleCommand::List(args) => {
            let client = args.target.client()?;
            let page = client
                .rules(&args.target.ns, args.after.as_deref(), args.limit)
                .await
                .map_err(api_error)?;
            for rule in &page.items {
                let state = if rule.rule.enabled {
                    "enabled"
                } else {
                    "disabled"
                };
                println!(
                    "{}\t{} -> {}\t{state}",
                    rule.name, rule.rule.trigger, rule.rule.function
                );
            }
            print_next(page.next);
            Ok(())
        }
    }
}

pub async fn run_dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(args) => {
            let client = args.target.client()?;
            let page = client
                .dead_letters(&args.target.ns, args.after.as_deref(), args.limit)
                .await
                .map_err(api_error)?;
            print_json(&page)
        }
        DlqCommand::Replay(args) => {
            let client = args.target.client()?;
            let replayed = client
                .replay_dead_letter(&args.target.ns, &args.name)
                .await
                .map_err(api_error)?;
            print_json(&replayed)?;
            if !replayed.delivered {
                bail!(
                    "dead letter {} failed again; it stays in the list",
                    args.name
                );
            }
            Ok(())
        }
        DlqCommand::Purge(args) => {
            let client = args.target.client()?;
            client
                .purge_dead_letter(&args.target.ns, &args.name)
                .await
                .map_err(api_error)?;
            println!("purged {}", args.name);
            Ok(())
        }
    }
}
