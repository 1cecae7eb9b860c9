//! Triggers and rules: change events drive functions, at least once.
//!
//! A trigger names an event source with filters ([`model::Source`]); a rule binds a trigger to
//! a function with a retry policy. Every enabled rule runs as its own task with a durable
//! cursor on its namespace's change log: it reads the events after the cursor, invokes the
//! function for each event its trigger matches, retries failed activations with exponential
//! backoff and jitter, and after the last attempt moves the event to the namespace's
//! dead-letter list with every attempt's error. The cursor advances only past handled events,
//! so a crash re-delivers (at least once) and never skips. One slow rule never holds up
//! another: each has its own task. Events deeper than the configured chain limit (functions
//! triggering functions) are not delivered but dead-lettered as loop protection.
//!
//! Layout: this file holds the definitions (triggers, rules, firing); `delivery.rs` the rule
//! tasks, retries and dead letters; `cron.rs` the schedule tickers; [`model`] the documents.
//!
//! Definitions, cursors and dead letters are records of the namespace; the namespaces that
//! have rules are listed in the reserved `_system` namespace so that rules resume on start.

mod cron;
mod delivery;
pub mod model;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferrobase_core::event::Causation;
use ferrobase_core::records::{EventDraft, RecordCommit, RecordStore};
use ferrobase_core::{ChangeLog, EventType, Namespace};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::model::{NameKind, Validate, validate_name_of};
use crate::{FunctionError, FunctionService};
use model::{RuleSpec, Source, TriggerSpec};

/// Whether a rule may name a function that does not exist (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingFunction {
    /// Answer not found: a typo in a rule's function is caught when the rule is made.
    Refuse,
    /// Store the rule anyway; its events are dead-lettered until the function exists.
    Allow,
}

/// Events read per page; also the most a crash can re-deliver per rule.
pub(super) const READ_BATCH: usize = 256;
const SCAN_PAGE: usize = 500;

/// A message leased from a queue for a rule to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    pub id: String,
    pub receipt: String,
    pub body: serde_json::Value,
    pub attempt: u32,
    pub key: Option<String>,
}

/// How rules with a queue source consume their queue. `functions` may depend only on `core`,
/// so the queue service reaches it through this trait, implemented in `services`.
#[async_trait::async_trait]
pub trait QueueConsumer: Send + Sync + std::fmt::Debug {
    /// Leases up to `max` messages of `queue` to `group`, waiting up to `wait` for the first.
    async fn pull(
        &self,
        ns: &Namespace,
        queue: &str,
        group: &str,
        max: usize,
        wait: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<Vec<QueuedMessage>, String>;
    async fn ack(&self, ns: &Namespace, queue: &str, receipt: &str) -> Result<(), String>;
    /// Gives the message back with `error`; the queue redelivers it or dead-letters it.
    async fn nack(
        &self,
        ns: &Namespace,
        queue: &str,
        receipt: &str,
        error: &str,
    ) -> Result<(), String>;
}

/// Tunables of delivery.
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// Events caused by chains of functions deeper than this are not delivered.
    pub max_depth: u32,
    /// Wall-clock time of cron ticks, queue-message events and dead letters.
    pub clock: Arc<dyn ferrobase_core::Clock>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            max_depth: 16,
            clock: Arc::new(ferrobase_core::SystemClock),
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct TriggerStats {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub loop_cut: AtomicU64,
}

fn trigger_key(name: &str) -> String {
    format!("trig/{name}")
}
fn rule_key(name: &str) -> String {
    format!("rule/{name}")
}
fn cursor_key(rule: &str) -> String {
    format!("rcur/{rule}")
}
fn dlq_key(id: &str) -> String {
    format!("dlq/{id}")
}
fn registry_key(ns: &Namespace) -> String {
    format!("rules-ns/{ns}")
}

/// Empties a task table, handing back its tasks (the lock is released before they are used).
fn take_tasks(tasks: &Mutex<HashMap<(Namespace, String), JoinHandle<()>>>) -> Vec<JoinHandle<()>> {
    tasks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, task)| task)
        .collect()
}

fn storage(error: impl std::fmt::Display) -> FunctionError {
    FunctionError::Storage(error.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Option<Bytes>, FunctionError> {
    Ok(Some(Bytes::from(
        serde_json::to_vec(value).map_err(storage)?,
    )))
}

impl TriggerService {
    fn now_ms(&self) -> u64 {
        self.config.clock.now_ms()
    }
}

/// Triggers, rules, delivery and dead letters.
#[derive(Debug)]
pub struct TriggerService {
    records: Arc<dyn RecordStore>,
    log: Arc<dyn ChangeLog>,
    functions: Arc<FunctionService>,
    config: TriggerConfig,
    running: Mutex<HashMap<(Namespace, String), JoinHandle<()>>>,
    /// Where rules with a queue source pull from; `None` when the server has no queues.
    queue: Option<Arc<dyn QueueConsumer>>,
    /// Cron tickers by (namespace, trigger).
    tickers: Mutex<HashMap<(Namespace, String), JoinHandle<()>>>,
    stats: TriggerStats,
    /// Set by [`TriggerService::shutdown`]: rule tasks finish the activation they run and
    /// start no other.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl TriggerService {
    /// Starts the service and resumes every enabled rule from its cursor.
    pub async fn start(
        records: Arc<dyn RecordStore>,
        log: Arc<dyn ChangeLog>,
        functions: Arc<FunctionService>,
        queue: Option<Arc<dyn QueueConsumer>>,
        config: TriggerConfig,
    ) -> Result<Arc<Self>, FunctionError> {
        let service = Arc::new(TriggerService {
            records,
            log,
            functions,
            config,
            running: Mutex::default(),
            queue,
            tickers: Mutex::default(),
            stats: TriggerStats::default(),
            stopping: tokio::sync::watch::channel(false).0,
        });
        for (key, _) in scan_all(&*service.records, &Namespace::system(), "rules-ns/").await? {
            let Ok(ns) = Namespace::parse(key.trim_start_matches("rules-ns/")) else {
                continue;
            };
            for (key, record) in scan_all(&*service.records, &ns, "trig/").await? {
                let trigger: TriggerSpec =
                    serde_json::from_slice(&record.value).map_err(storage)?;
                if matches!(trigger.source, Source::Cron { .. }) {
                    service.spawn_ticker(
                        ns.clone(),
                        key.trim_start_matches("trig/").to_owned(),
                        trigger,
                    );
                }
            }
            for (key, record) in scan_all(&*service.records, &ns, "rule/").await? {
                let name = key.trim_start_matches("rule/").to_owned();
                let rule: RuleSpec = serde_json::from_slice(&record.value).map_err(storage)?;
                if rule.enabled {
                    service.spawn_rule(ns.clone(), name, rule);
                }
            }
        }
        Ok(service)
    }

    pub fn stats(&self) -> &TriggerStats {
        &self.stats
    }

    async fn get<T: DeserializeOwned>(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<T>, FunctionError> {
        match self.records.get(ns, key).await? {
            Some(record) => Ok(Some(
                serde_json::from_slice(&record.value).map_err(storage)?,
            )),
            None => Ok(None),
        }
    }

    /// Records under `prefix` whose names sort after `after`, in name order, at most `max`:
    /// the one listing of triggers and rules.
    async fn list<T: DeserializeOwned>(
        &self,
        ns: &Namespace,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, T)>, FunctionError> {
        let after = after.map(|name| format!("{prefix}{name}"));
        let page = self.records.scan(ns, prefix, after.as_deref(), max).await?;
        page.into_iter()
            .map(|(key, record)| {
                let value = serde_json::from_slice(&record.value).map_err(storage)?;
                Ok((key[prefix.len()..].to_owned(), value))
            })
            .collect()
    }

    /// Triggers named after `after`, in name order, at most `max`.
    pub async fn triggers(
        &self,
        ns: &Namespace,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, TriggerSpec)>, FunctionError> {
        self.list(ns, &trigger_key(""), after, max).await
    }

    /// Rules named after `after`, in name order, at most `max`.
    pub async fn rules(
        &self,
        ns: &Namespace,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, RuleSpec)>, FunctionError> {
        self.list(ns, &rule_key(""), after, max).await
    }

    /// Stores a trigger; a cron trigger starts ticking (a changed schedule restarts it, from
    /// its last tick).
    pub async fn put_trigger(
        self: &Arc<Self>,
        ns: &Namespace,
        name: &str,
        spec: TriggerSpec,
    ) -> Result<TriggerSpec, FunctionError> {
        validate_name_of(NameKind::Trigger, name)?;
        spec.validate()?;
        let commit = RecordCommit {
            writes: vec![(trigger_key(name), encode(&spec)?)],
            ..RecordCommit::default()
        };
        self.records.commit(ns, commit).await?;
        self.register(ns).await?;
        self.stop_ticker(ns, name);
        if matches!(spec.source, Source::Cron { .. }) {
            self.spawn_ticker(ns.clone(), name.to_owned(), spec.clone());
        }
        Ok(spec)
    }

    /// Lists `ns` among the namespaces whose rules and cron triggers resume on start.
    async fn register(&self, ns: &Namespace) -> Result<(), FunctionError> {
        let registry = RecordCommit {
            writes: vec![(registry_key(ns), encode(&true)?)],
            ..RecordCommit::default()
        };
        self.records.commit(&Namespace::system(), registry).await?;
        Ok(())
    }

    /// The graceful stop: cron tickers end at once (a tick and its event commit together); a
    /// rule task finishes the activation it runs, saves no cursor past an event it did not
    /// handle, and ends. Resolves when every rule task has ended; the server bounds the wait
    /// with its shutdown grace and then calls [`TriggerService::stop`]. Events not delivered
    /// are delivered after the restart (the cursor is durable).
    pub async fn shutdown(&self) {
        self.stopping.send_replace(true);
        for task in take_tasks(&self.tickers) {
            task.abort();
        }
        for task in take_tasks(&self.running) {
            let _ = task.await;
        }
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once [`TriggerService::shutdown`] has begun.
    async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // An error means the sender is gone, which only happens when the service is dropped.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// `work`, unless shutdown begins first (then `None`): for the waits of idle rule tasks.
    async fn unless_stopping<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            done = work => Some(done),
            () = self.stopped() => None,
        }
    }

    /// Stops every rule and ticker task at once, wherever they are (the service is being
    /// replaced, or a graceful [`TriggerService::shutdown`] ran out of time).
    pub fn stop(&self) {
        for task in take_tasks(&self.running)
            .into_iter()
            .chain(take_tasks(&self.tickers))
        {
            task.abort();
        }
    }

    pub async fn trigger(&self, ns: &Namespace, name: &str) -> Result<TriggerSpec, FunctionError> {
        validate_name_of(NameKind::Trigger, name)?;
        self.get(ns, &trigger_key(name))
            .await?
            .ok_or_else(|| FunctionError::NotFound(format!("trigger {name} not found")))
    }

    /// Deletes a trigger; rules that name it stay, idle, until it exists again.
    pub async fn delete_trigger(&self, ns: &Namespace, name: &str) -> Result<(), FunctionError> {
        self.trigger(ns, name).await?;
        self.stop_ticker(ns, name);
        let commit = RecordCommit {
            writes: vec![(trigger_key(name), None), (format!("cron/{name}"), None)],
            ..RecordCommit::default()
        };
        self.records.commit(ns, commit).await?;
        Ok(())
    }

    /// Fires a manual trigger: appends `ferrobase.trigger.fired` with `payload` to the log.
    pub async fn fire(
        &self,
        ns: &Namespace,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<u64, FunctionError> {
        let trigger = self.trigger(ns, name).await?;
        if trigger.source != Source::Manual {
            return Err(FunctionError::Invalid(format!(
                "trigger {name} is not a manual trigger"
            )));
        }
        let draft = EventDraft {
            event_type: EventType::TriggerFired,
            subject: name.to_owned(),
            data: payload,
            causation: Causation::default(),
        };
        let outcome = self
            .records
            .commit(
                ns,
                RecordCommit {
                    events: vec![draft],
                    ..RecordCommit::default()
                },
            )
            .await?;
        Ok(outcome.event_offsets.first().copied().unwrap_or_default())
    }

    /// Stores a rule and (re)starts its delivery. A new rule starts at the log's head: it
    /// sees the events appended from now on. A rule naming a function that does not exist is
    /// refused unless `missing` allows it (a deploy that follows the rule).
    pub async fn put_rule(
        self: &Arc<Self>,
        ns: &Namespace,
        name: &str,
        rule: RuleSpec,
        missing: MissingFunction,
    ) -> Result<RuleSpec, FunctionError> {
        validate_name_of(NameKind::Rule, name)?;
        rule.validate()?;
        self.trigger(ns, &rule.trigger).await.map_err(|_| {
            FunctionError::Invalid(format!(
                "rule {name} names trigger {}, which does not exist",
                rule.trigger
            ))
        })?;
        if missing == MissingFunction::Refuse
            && let Err(FunctionError::NotFound(_)) = self.functions.get(ns, &rule.function).await
        {
            return Err(FunctionError::NotFound(format!(
                "rule {name} names function {}, which does not exist; deploy it first, or \
                 pass ?allow_missing=true to create the rule anyway",
                rule.function
            )));
        }
        let mut writes = vec![(rule_key(name), encode(&rule)?)];
        if self.records.get(ns, &cursor_key(name)).await?.is_none() {
            let head = self.log.head(ns).await.map_err(storage)?;
            writes.push((cursor_key(name), encode(&head)?));
        }
        self.records
            .commit(
                ns,
                RecordCommit {
                    writes,
                    ..RecordCommit::default()
                },
            )
            .await?;
        self.register(ns).await?;
        self.stop_rule(ns, name);
        if rule.enabled {
            self.spawn_rule(ns.clone(), name.to_owned(), rule.clone());
        }
        Ok(rule)
    }

    /// What keeps `rule` from delivering, if anything: its function or its trigger is
    /// missing. Shown beside the rule, so that a rule whose function was deleted is visible
    /// before its events are dead-lettered.
    pub async fn rule_problem(&self, ns: &Namespace, rule: &RuleSpec) -> Option<String> {
        if let Err(FunctionError::NotFound(message)) = self.functions.get(ns, &rule.function).await
        {
            return Some(message);
        }
        if let Err(FunctionError::NotFound(message)) = self.trigger(ns, &rule.trigger).await {
            return Some(message);
        }
        None
    }

    pub async fn rule(&self, ns: &Namespace, name: &str) -> Result<RuleSpec, FunctionError> {
        validate_name_of(NameKind::Rule, name)?;
        self.get(ns, &rule_key(name))
            .await?
            .ok_or_else(|| FunctionError::NotFound(format!("rule {name} not found")))
    }

    pub async fn delete_rule(&self, ns: &Namespace, name: &str) -> Result<(), FunctionError> {
        self.rule(ns, name).await?;
        self.stop_rule(ns, name);
        let commit = RecordCommit {
            writes: vec![(rule_key(name), None), (cursor_key(name), None)],
            ..RecordCommit::default()
        };
        self.records.commit(ns, commit).await?;
        Ok(())
    }

    fn stop_rule(&self, ns: &Namespace, name: &str) {
        if let Some(task) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(ns.clone(), name.to_owned()))
        {
            task.abort();
        }
    }
}

async fn scan_all(
    records: &dyn RecordStore,
    ns: &Namespace,
    prefix: &str,
) -> Result<Vec<(String, ferrobase_core::records::Record)>, FunctionError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = records
            .scan(ns, prefix, after.as_deref(), SCAN_PAGE)
            .await?;
        let done = page.len() < SCAN_PAGE;
        after = page.last().map(|(key, _)| key.clone());
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}
