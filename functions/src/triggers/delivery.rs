//! Delivery: each rule's task reads past its cursor on the change log (or pulls its queue),
//! invokes the function, retries with backoff and dead-letters what keeps failing.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrobase_core::event::{Causation, rfc3339_millis};
use ferrobase_core::records::RecordCommit;
use ferrobase_core::{Event, EventQuery, EventType, Namespace};

use super::model::{self, Attempt, DeadLetter, RuleSpec, Source, TriggerSpec};
use super::{READ_BATCH, TriggerService, cursor_key, dlq_key, encode, storage, trigger_key};
use crate::FunctionError;
use crate::model::{Cause, OutcomeKind};
use crate::service::Invocation;

impl TriggerService {
    pub(super) fn spawn_rule(self: &Arc<Self>, ns: Namespace, name: String, rule: RuleSpec) {
        let task = tokio::spawn(self.clone().deliver_loop(ns.clone(), name.clone(), rule));
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((ns, name), task);
    }

    /// One rule's delivery: read past the cursor, deliver what matches, advance, wait.
    pub(super) async fn deliver_loop(self: Arc<Self>, ns: Namespace, name: String, rule: RuleSpec) {
        let mut cursor: u64 = match self.get(&ns, &cursor_key(&name)).await {
            Ok(Some(cursor)) => cursor,
            Ok(None) => 0,
            Err(error) => {
                tracing::error!(%error, %ns, rule = %name, "cannot read the rule's cursor; rule stopped");
                return;
            }
        };
        while !self.is_stopping() {
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
                    self.unless_stopping(tokio::time::sleep(std::time::Duration::from_secs(1)))
                        .await;
                    continue;
                }
            };
            if page.next_after == cursor {
                self.unless_stopping(self.log.wait_beyond(&ns, cursor))
                    .await;
                continue;
            }
            // Without its trigger a rule idles: events pass, nothing is delivered.
            let matching: Vec<&Event> = page
                .events
                .iter()
                .filter(|event| {
                    trigger
                        .as_ref()
                        .is_some_and(|t| model::matches(t, &rule.trigger, event))
                })
                .collect();
            if let Some(undelivered) = self.deliver_page(&ns, &name, &rule, matching).await {
                // Shutdown stopped the page part way: the cursor moves up to the first event
                // left undelivered, which the restart delivers (nothing handled is repeated).
                if undelivered > cursor + 1 {
                    self.save_cursor(&ns, &name, undelivered - 1).await;
                }
                break;
            }
            // The cursor is saved once per page: a crash re-delivers at most a page (at least
            // once), and the SDK writes of a re-delivered event are idempotent.
            cursor = page.next_after;
            self.save_cursor(&ns, &name, cursor).await;
        }
    }

    /// One round of a queue-sourced rule: lease up to `rule.concurrency` messages, run the
    /// function for all of them at once, ack what succeeded and nack what failed. The queue
    /// counts attempts and dead-letters; the rule's own retry policy does not apply.
    ///
    /// The messages of one pull never share a queue key (the queue delivers a key's next
    /// message only after the previous one is settled), so running them at once keeps the
    /// per-key order; and since none waits for another, each lease only has to outlast one
    /// activation.
    pub(super) async fn consume(
        &self,
        ns: &Namespace,
        rule_name: &str,
        rule: &RuleSpec,
        queue: &str,
        group: &str,
    ) {
        let Some(consumer) = &self.queue else {
            tracing::warn!(%ns, rule = rule_name, "queue triggers need a server with queues");
            self.unless_stopping(tokio::time::sleep(std::time::Duration::from_secs(5)))
                .await;
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
        let max = rule.concurrency.max(1);
        // A pull cut short by shutdown leases nothing it hands out; a lease it took anyway
        // runs out and the queue redelivers.
        let messages = match self
            .unless_stopping(consumer.pull(ns, queue, group, max, wait, lease))
            .await
        {
            None => return,
            Some(Ok(messages)) => messages,
            Some(Err(error)) => {
                tracing::warn!(%error, %ns, rule = rule_name, queue, "cannot pull; retrying");
                self.unless_stopping(tokio::time::sleep(std::time::Duration::from_secs(1)))
                    .await;
                return;
            }
        };
        let deliveries = messages
            .into_iter()
            .map(|message| self.deliver_message(ns, rule_name, rule, queue, group, message));
        futures::future::join_all(deliveries).await;
    }

    /// Runs the rule's function for one leased message and settles it.
    async fn deliver_message(
        &self,
        ns: &Namespace,
        rule_name: &str,
        rule: &RuleSpec,
        queue: &str,
        group: &str,
        message: super::QueuedMessage,
    ) {
        let Some(consumer) = &self.queue else { return };
        if self.is_stopping() {
            // Not started: the lease runs out and the queue redelivers after the restart.
            return;
        }
        let event = Event::new(
            ns,
            EventType::QueueMessage,
            queue,
            0,
            self.now_ms(),
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
        // The event id is the idempotency key of the function's writes: the same on every
        // delivery of this message to this group, and distinct from other queues' and groups'
        // messages (message ids count per queue).
        let event = Event {
            id: format!("{queue}/{group}/{}", message.id),
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

    pub(super) async fn save_cursor(&self, ns: &Namespace, rule: &str, cursor: u64) {
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
    /// as soon as a slot is free. The page is done when every event is: `None` then, or when
    /// shutdown left some of its events undelivered the log position of the first of them.
    pub(super) async fn deliver_page(
        &self,
        ns: &Namespace,
        name: &str,
        rule: &RuleSpec,
        events: Vec<&Event>,
    ) -> Option<u64> {
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
        let first_undelivered = std::sync::atomic::AtomicU64::new(u64::MAX);
        futures::stream::iter(lanes)
            .for_each_concurrent(rule.concurrency.max(1), |lane| {
                let first_undelivered = &first_undelivered;
                async move {
                    for event in lane {
                        if !self.deliver(ns, name, rule, event).await {
                            // A lane stops at its first undelivered event; later ones in it
                            // have higher positions.
                            first_undelivered.fetch_min(event.ferrobaseseq, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
            .await;
        Some(first_undelivered.into_inner()).filter(|seq| *seq != u64::MAX)
    }

    /// Invokes the rule's function for `event`, retrying with backoff; dead-letters it after
    /// the last attempt. False when shutdown began before the event was handled: it is neither
    /// delivered nor dead-lettered, and is delivered again after the restart.
    pub(super) async fn deliver(
        &self,
        ns: &Namespace,
        rule_name: &str,
        rule: &RuleSpec,
        event: &Event,
    ) -> bool {
        let mut attempts = Vec::new();
        if event.ferrobasedepth >= self.config.max_depth {
            self.stats.loop_cut.fetch_add(1, Ordering::Relaxed);
            attempts.push(Attempt {
                at: rfc3339_millis(self.now_ms()),
                activation_id: None,
                error: format!(
                    "loop protection: the event is {} function hops deep; the limit is {}",
                    event.ferrobasedepth, self.config.max_depth
                ),
            });
            self.dead_letter(ns, rule_name, rule, event, attempts).await;
            return true;
        }
        for attempt in 1..=rule.max_attempts {
            if self.is_stopping() {
                return false;
            }
            match self.invoke(ns, rule, event, attempt).await {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(failure) => {
                    tracing::warn!(
                        %ns,
                        rule = rule_name,
                        function = %rule.function,
                        event = %event.id,
                        attempt,
                        max_attempts = rule.max_attempts,
                        activation = failure.activation_id.as_deref().unwrap_or("-"),
                        error = %failure.error,
                        "delivery failed"
                    );
                    attempts.push(failure);
                }
            }
            if attempt < rule.max_attempts {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                let jitter: f64 = rand::random();
                let backoff = tokio::time::sleep(rule.backoff.delay(attempt, jitter));
                if self.unless_stopping(backoff).await.is_none() {
                    return false;
                }
            }
        }
        self.dead_letter(ns, rule_name, rule, event, attempts).await;
        true
    }

    pub(super) async fn invoke(
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
                write_key: None,
            },
        };
        let at = rfc3339_millis(self.now_ms());
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

    pub(super) async fn dead_letter(
        &self,
        ns: &Namespace,
        rule_name: &str,
        rule: &RuleSpec,
        event: &Event,
        attempts: Vec<Attempt>,
    ) {
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            %ns,
            rule = rule_name,
            function = %rule.function,
            event = %event.id,
            attempts = attempts.len(),
            error = attempts.last().map_or("-", |a| a.error.as_str()),
            "event dead-lettered"
        );
        // One letter per event and rule: a delivery repeated after a crash (the cursor is saved
        // once per page) adds its attempts to the letter instead of filing a second one.
        let id = format!("{}-{rule_name}", event.id);
        let letter = match self.get::<DeadLetter>(ns, &dlq_key(&id)).await {
            Ok(Some(mut earlier)) => {
                earlier.attempts.extend(attempts);
                earlier
            }
            Ok(None) | Err(_) => DeadLetter {
                id,
                rule: rule_name.to_owned(),
                function: rule.function.clone(),
                event: event.clone(),
                attempts,
            },
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

    /// Dead letters of `ns`, in the order of their events (ids are `{event id}-{rule}`).
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
        let attempt = u32::try_from(letter.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
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
