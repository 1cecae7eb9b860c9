//! Cron tickers: each scheduled time of a cron trigger becomes one `ferrobase.cron.tick`.

use std::sync::Arc;

use ferrobase_core::EventType;
use ferrobase_core::Namespace;
use ferrobase_core::event::{Causation, rfc3339_millis};
use ferrobase_core::records::{EventDraft, RecordCommit};

use super::model::{self, Source, TriggerSpec};
use super::{TriggerService, encode};
use crate::FunctionError;

impl TriggerService {
    pub(super) fn stop_ticker(&self, ns: &Namespace, name: &str) {
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

    pub(super) fn spawn_ticker(self: &Arc<Self>, ns: Namespace, name: String, spec: TriggerSpec) {
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
    pub(super) async fn tick(
        self: Arc<Self>,
        ns: Namespace,
        name: String,
        schedule: model::Schedule,
        catch_up: bool,
    ) {
        let state_key = format!("cron/{name}");
        let started_ms = self.now_ms();
        loop {
            // Schedules have whole-second resolution; sub-second parts would leak into the
            // scheduled times and make "the same tick" compare unequal.
            let now = whole_second(
                chrono::DateTime::from_timestamp_millis(self.now_ms() as i64).unwrap_or_default(),
            )
            .with_timezone(&schedule.tz);
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

    pub(super) async fn commit_tick(
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
}

fn whole_second(time: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::Timelike;
    time.with_nanosecond(0).unwrap_or(time)
}
