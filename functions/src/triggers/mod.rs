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
//! Definitions, cursors and dead letters are records of the namespace; the namespaces that
//! have rules are listed in the reserved `_system` namespace so that rules resume on start.

pub mod model;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferrobase_core::event::{Causation, rfc3339_millis};
use ferrobase_core::records::{EventDraft, RecordCommit, RecordStore};
use ferrobase_core::{ChangeLog, Event, EventQuery, EventType, Namespace};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::model::{Cause, OutcomeKind, validate_name};
use crate::service::Invocation;
use crate::{FunctionError, FunctionService};
use model::{Attempt, DeadLetter, RuleSpec, Source, TriggerSpec};

/// Events read per page; also the most a crash can re-deliver per rule.
const READ_BATCH: usize = 256;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerConfig {
    /// Events caused by chains of functions deeper than this are not delivered.
    pub max_depth: u32,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig { max_depth: 16 }
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

fn storage(error: impl std::fmt::Display) -> FunctionError {
    FunctionError::Storage(error.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Option<Bytes>, FunctionError> {
    Ok(Some(Bytes::from(
        serde_json::to_vec(value).map_err(storage)?,
    )))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

    /// Stores a trigger; a cron trigger starts ticking (a changed schedule restarts it, from
    /// its last tick).
    pub async fn put_trigger(
        self: &Arc<Self>,
        ns: &Namespace,
        name: &str,
        spec: TriggerSpec,
    ) -> Result<TriggerSpec, FunctionError> {
        validate_name(name)?;
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

    fn stop_ticker(&self, ns: &Namespace, name: &str) {
        let key = (ns.clone(), name.to_owned());
        if let Some(task) = self
            .tickers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key)
        {
            task.abort();
        }
    }

    fn spawn_ticker(self: &Arc<Self>, ns: Namespace, name: String, spec: TriggerSpec) {
        let Source::Cron {
            schedule,
            tz,
            catch_up,
        } = spec.source
        else {
            return;
        };
        let schedule = match model::Schedule::parse(&schedule, &tz) {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::error!(%error, %ns, trigger = %name, "stored cron trigger does not parse");
                return;
            }
        };
        let task = tokio::spawn(
            self.clone()
                .tick(ns.clone(), name.clone(), schedule, catch_up),
        );
        self.tickers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((ns, name), task);
    }

    /// One cron trigger: appends `ferrobase.cron.tick` for every scheduled time, once. The
    /// last tick is a record committed with the tick's event under a compare-and-set, so two
    /// tickers (a restart racing an old task, or two nodes) never emit the same tick twice.
    async fn tick(
        self: Arc<Self>,
        ns: Namespace,
        name: String,
        schedule: model::Schedule,
        catch_up: bool,
    ) {
        let state_key = format!("cron/{name}");
        let started_ms = now_ms();
        loop {
            // Schedules have whole-second resolution; sub-second parts would leak into the
            // scheduled times and make "the same tick" compare unequal.
            let now = whole_second(chrono::Utc::now()).with_timezone(&schedule.tz);
            let state = match self.records.get(&ns, &state_key).await {
                Ok(state) => state,
                Err(error) => {
                    tracing::warn!(%error, %ns, trigger = %name, "cannot read the cron state");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            let (last_ms, condition) = match &state {
                Some(record) => (
                    serde_json::from_slice::<u64>(&record.value).unwrap_or(started_ms),
                    ferrobase_core::records::RecordCondition::Version(record.version),
                ),
                // A new trigger starts now: nothing before its creation is due.
                None => (
                    now.timestamp_millis().max(0) as u64,
                    ferrobase_core::records::RecordCondition::Absent,
                ),
            };
            let Some(last) =
                chrono::DateTime::from_timestamp_millis(last_ms as i64).map(whole_second)
            else {
                return;
            };
            let last = last.with_timezone(&schedule.tz);
            let Ok(due) = schedule.cron.find_next_occurrence(&last, false) else {
                tracing::warn!(%ns, trigger = %name, "the cron schedule has no further occurrence");
                return;
            };
            if due > now {
                if state.is_none() {
                    let _ = self
                        .commit_tick(&ns, &state_key, condition, last_ms, None)
                        .await;
                }
                let wait = (due - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                continue;
            }
            // Due: tick for the latest scheduled time not after now; earlier missed times
            // collapse into it.
            let latest = schedule
                .cron
                .find_previous_occurrence(&now, true)
                .unwrap_or(due)
                .max(due);
            let latest_ms = latest.timestamp_millis().max(0) as u64;
            let missed_while_down = latest_ms < started_ms;
            let event = (catch_up || !missed_while_down).then(|| EventDraft {
                event_type: EventType::CronTick,
                subject: name.clone(),
                data: serde_json::json!({
                    "trigger": name,
                    "scheduled": rfc3339_millis(latest_ms),
                    "catch_up": missed_while_down,
                }),
                causation: Causation::default(),
            });
            if let Err(error) = self
                .commit_tick(&ns, &state_key, condition, latest_ms, event)
                .await
            {
                // Another ticker took this tick (condition failed) or storage failed: re-read.
                tracing::debug!(%error, %ns, trigger = %name, "cron tick not committed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }

    async fn commit_tick(
        &self,
        ns: &Namespace,
        state_key: &str,
        condition: ferrobase_core::records::RecordCondition,
        tick_ms: u64,
        event: Option<EventDraft>,
    ) -> Result<(), FunctionError> {
        let commit = RecordCommit {
            conditions: vec![(state_key.to_owned(), condition)],
            writes: vec![(state_key.to_owned(), encode(&tick_ms)?)],
            events: event.into_iter().collect(),
        };
        self.records.commit(ns, commit).await?;
        Ok(())
    }

    /// Stops every rule and ticker task (the service is being shut down or replaced).
    pub fn stop(&self) {
        for (_, task) in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            task.abort();
        }
        for (_, task) in self
            .tickers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            task.abort();
        }
    }

    pub async fn trigger(&self, ns: &Namespace, name: &str) -> Result<TriggerSpec, FunctionError> {
        validate_name(name)?;
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
    /// sees the events appended from now on.
    pub async fn put_rule(
        self: &Arc<Self>,
        ns: &Namespace,
        name: &str,
        rule: RuleSpec,
    ) -> Result<RuleSpec, FunctionError> {
        validate_name(name)?;
        rule.validate()?;
        self.trigger(ns, &rule.trigger).await.map_err(|_| {
            FunctionError::Invalid(format!(
                "rule {name} names trigger {}, which does not exist",
                rule.trigger
            ))
        })?;
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

    pub async fn rule(&self, ns: &Namespace, name: &str) -> Result<RuleSpec, FunctionError> {
        validate_name(name)?;
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

    fn spawn_rule(self: &Arc<Self>, ns: Namespace, name: String, rule: RuleSpec) {
        let task = tokio::spawn(self.clone().deliver_loop(ns.clone(), name.clone(), rule));
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((ns, name), task);
    }

    /// One rule's delivery: read past the cursor, deliver what matches, advance, wait.
    async fn deliver_loop(self: Arc<Self>, ns: Namespace, name: String, rule: RuleSpec) {
        let mut cursor: u64 = match self.get(&ns, &cursor_key(&name)).await {
            Ok(Some(cursor)) => cursor,
            Ok(None) => 0,
            Err(error) => {
                tracing::error!(%error, %ns, rule = %name, "cannot read the rule's cursor; rule stopped");
                return;
            }
        };
        loop {
            let trigger = match self
                .get::<TriggerSpec>(&ns, &trigger_key(&rule.trigger))
                .await
            {
                Ok(Some(trigger)) => Some(trigger),
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(%error, %ns, rule = %name, "cannot read the rule's trigger");
                    None
                }
            };
            if let Some(TriggerSpec {
                source: Source::Queue { queue, group },
            }) = &trigger
            {
                self.consume(&ns, &name, &rule, queue, group).await;
                continue;
            }
            let query = EventQuery {
                after: cursor,
                limit: READ_BATCH,
                type_filter: None,
            };
            let page = match self.log.read(&ns, &query).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, %ns, rule = %name, "cannot read the change log; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if page.next_after == cursor {
                self.log.wait_beyond(&ns, cursor).await;
                continue;
            }
            // Without its trigger a rule idles: events pass, nothing is delivered.
            let matching: Vec<&Event> = page
                .events
                .iter()
                .filter(|event| {
                    trigger
                        .as_ref()
                        .is_some_and(|t| t.matches(&rule.trigger, event))
                })
                .collect();
            self.deliver_page(&ns, &name, &rule, matching).await;
            // The cursor is saved once per page: a crash re-delivers at most a page (at least
            // once), and the SDK writes of a re-delivered event are idempotent.
            cursor = page.next_after;
            self.save_cursor(&ns, &name, cursor).await;
        }
    }

    /// One round of a queue-sourced rule: lease a few messages, run the function for each,
    /// ack what succeeded and nack what failed. The queue counts attempts and dead-letters;
    /// the rule's own retry policy does not apply.
    async fn consume(
        &self,
        ns: &Namespace,
        rule_name: &str,
        rule: &RuleSpec,
        queue: &str,
        group: &str,
    ) {
        const BATCH: usize = 16;
        let Some(consumer) = &self.queue else {
            tracing::warn!(%ns, rule = rule_name, "queue triggers need a server with queues");
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            return;
        };
        // The lease outlasts the function's own deadline, so a message is not redelivered
        // while its activation still runs.
        let timeout = match self.functions.get(ns, &rule.function).await {
            Ok(version) => version.spec.timeout(),
            Err(_) => std::time::Duration::from_secs(60),
        };
        let lease = timeout + std::time::Duration::from_secs(30);
        let wait = std::time::Duration::from_secs(1);
        let messages = match consumer.pull(ns, queue, group, BATCH, wait, lease).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, %ns, rule = rule_name, queue, "cannot pull; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                return;
            }
        };
        for message in messages {
            let event = Event::new(
                ns,
                EventType::QueueMessage,
                queue,
                0,
                now_ms(),
                &Causation::default(),
                serde_json::json!({
                    "queue": queue,
                    "group": group,
                    "id": message.id,
                    "body": message.body,
                    "attempt": message.attempt,
                    "key": message.key,
                }),
            );
            // The message id identifies the delivery for idempotency keys across attempts.
            let event = Event {
                id: message.id.clone(),
                ..event
            };
            let settled = match self.invoke(ns, rule, &event, message.attempt).await {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    consumer.ack(ns, queue, &message.receipt).await
                }
                Err(attempt) => {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    consumer
                        .nack(ns, queue, &message.receipt, &attempt.error)
                        .await
                }
            };
            if let Err(error) = settled {
                // The lease runs out and the queue redelivers: at least once.
                tracing::warn!(%error, %ns, rule = rule_name, queue, "cannot settle a message");
            }
        }
    }

    async fn save_cursor(&self, ns: &Namespace, rule: &str, cursor: u64) {
        let Ok(value) = encode(&cursor) else { return };
        let commit = RecordCommit {
            writes: vec![(cursor_key(rule), value)],
            ..RecordCommit::default()
        };
        if let Err(error) = self.records.commit(ns, commit).await {
            // The next save or a restart re-delivers from the older cursor: at least once.
            tracing::warn!(%error, %ns, rule, "cannot save the rule's cursor");
        }
    }

    /// Delivers one page's matching events, at most `rule.concurrency` at once. Ordered rules
    /// keep each subject's events in log order, one at a time; unordered rules run any event
    /// as soon as a slot is free. The page is done when every event is.
    async fn deliver_page(&self, ns: &Namespace, name: &str, rule: &RuleSpec, events: Vec<&Event>) {
        use futures::StreamExt;
        let lanes: Vec<Vec<&Event>> = if rule.ordered {
            let mut by_subject: Vec<(String, Vec<&Event>)> = Vec::new();
            for event in events {
                match by_subject
                    .iter_mut()
                    .find(|(subject, _)| *subject == event.subject)
                {
                    Some((_, lane)) => lane.push(event),
                    None => by_subject.push((event.subject.clone(), vec![event])),
                }
            }
            by_subject.into_iter().map(|(_, lane)| lane).collect()
        } else {
            events.into_iter().map(|event| vec![event]).collect()
        };
        futures::stream::iter(lanes)
            .for_each_concurrent(rule.concurrency.max(1), |lane| async move {
                for event in lane {
                    self.deliver(ns, name, rule, event).await;
                }
            })
            .await;
    }

    /// Invokes the rule's function for `event`, retrying with backoff; dead-letters it after
    /// the last attempt.
    async fn deliver(&self, ns: &Namespace, rule_name: &str, rule: &RuleSpec, event: &Event) {
        let mut attempts = Vec::new();
        if event.ferrobasedepth >= self.config.max_depth {
            self.stats.loop_cut.fetch_add(1, Ordering::Relaxed);
            attempts.push(Attempt {
                at: rfc3339_millis(now_ms()),
                activation_id: None,
                error: format!(
                    "loop protection: the event is {} function hops deep; the limit is {}",
                    event.ferrobasedepth, self.config.max_depth
                ),
            });
            self.dead_letter(ns, rule_name, rule, event, attempts).await;
            return;
        }
        for attempt in 1..=rule.max_attempts {
            match self.invoke(ns, rule, event, attempt).await {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(failure) => attempts.push(failure),
            }
            if attempt < rule.max_attempts {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                let jitter = f64::from(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos())
                        % 1000,
                ) / 1000.0;
                tokio::time::sleep(rule.backoff.delay(attempt, jitter)).await;
            }
        }
        self.dead_letter(ns, rule_name, rule, event, attempts).await;
    }

    async fn invoke(
        &self,
        ns: &Namespace,
        rule: &RuleSpec,
        event: &Event,
        attempt: u32,
    ) -> Result<(), Attempt> {
        let payload = serde_json::to_value(event).unwrap_or_default();
        let invocation = Invocation {
            namespace: ns.clone(),
            target: rule.function.clone(),
            event: payload,
            cause: Cause::Event {
                id: event.id.clone(),
                attempt,
            },
            causation: Causation {
                cause: Some(event.id.clone()),
                depth: event.ferrobasedepth,
            },
        };
        let at = rfc3339_millis(now_ms());
        match self.functions.invoke(invocation).await {
            Ok(done) if done.record.outcome == OutcomeKind::Ok => Ok(()),
            Ok(done) => Err(Attempt {
                at,
                activation_id: Some(done.record.id.clone()),
                error: done.record.error.map_or_else(
                    || done.record.outcome.as_str().to_owned(),
                    |e| format!("{}: {}", done.record.outcome.as_str(), e.message),
                ),
            }),
            Err(error) => Err(Attempt {
                at,
                activation_id: None,
                error: error.to_string(),
            }),
        }
    }

    async fn dead_letter(
        &self,
        ns: &Namespace,
        rule_name: &str,
        rule: &RuleSpec,
        event: &Event,
        attempts: Vec<Attempt>,
    ) {
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let letter = DeadLetter {
            id: ulid::Ulid::new().to_string(),
            rule: rule_name.to_owned(),
            function: rule.function.clone(),
            event: event.clone(),
            attempts,
        };
        let commit = match encode(&letter) {
            Ok(value) => RecordCommit {
                writes: vec![(dlq_key(&letter.id), value)],
                ..RecordCommit::default()
            },
            Err(_) => return,
        };
        if let Err(error) = self.records.commit(ns, commit).await {
            tracing::error!(%error, %ns, rule = rule_name, event = %event.id, "cannot store a dead letter");
        }
    }

    /// Dead letters of `ns`, oldest first.
    pub async fn dead_letters(
        &self,
        ns: &Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, FunctionError> {
        let after = after.map(dlq_key);
        let page = self
            .records
            .scan(ns, "dlq/", after.as_deref(), limit)
            .await?;
        page.into_iter()
            .map(|(_, record)| serde_json::from_slice(&record.value).map_err(storage))
            .collect()
    }

    /// Delivers a dead letter again, once. On success it leaves the list (`None`); otherwise
    /// the attempt is added to it and the updated letter returned.
    pub async fn replay(
        &self,
        ns: &Namespace,
        id: &str,
    ) -> Result<Option<DeadLetter>, FunctionError> {
        let mut letter: DeadLetter = self
            .get(ns, &dlq_key(id))
            .await?
            .ok_or_else(|| FunctionError::NotFound(format!("dead letter {id} not found")))?;
        let rule = RuleSpec {
            trigger: String::new(),
            function: letter.function.clone(),
            enabled: true,
            max_attempts: 1,
            backoff: model::Backoff::default(),
            ordered: true,
            concurrency: 1,
        };
        let attempt = letter.attempts.len() as u32 + 1;
        let (write, answer) = match self.invoke(ns, &rule, &letter.event, attempt).await {
            Ok(()) => (None, None),
            Err(attempt) => {
                letter.attempts.push(attempt);
                (encode(&letter)?, Some(letter))
            }
        };
        let commit = RecordCommit {
            writes: vec![(dlq_key(id), write)],
            ..RecordCommit::default()
        };
        self.records.commit(ns, commit).await?;
        Ok(answer)
    }

    /// Removes a dead letter without delivering it.
    pub async fn purge(&self, ns: &Namespace, id: &str) -> Result<(), FunctionError> {
        self.get::<DeadLetter>(ns, &dlq_key(id))
            .await?
            .ok_or_else(|| FunctionError::NotFound(format!("dead letter {id} not found")))?;
        self.records
            .commit(
                ns,
                RecordCommit {
                    writes: vec![(dlq_key(id), None)],
                    ..RecordCommit::default()
                },
            )
            .await?;
        Ok(())
    }
}

fn whole_second(time: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::Timelike;
    time.with_nanosecond(0).unwrap_or(time)
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
