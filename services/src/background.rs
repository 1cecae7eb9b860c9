//! The server's background work, started in one place and stopped in one order.
//!
//! [`Background::start`] spawns every maintenance loop the server runs: the KV engine's TTL
//! sweep and change-log retention, the queue's lease and retention sweeps, and the object
//! store's orphan sweep. The services that keep tasks of their own (trigger rule tasks and
//! cron tickers, the function runtime's asynchronous invocations and activation recorder) are
//! stopped through it as well, so that [`Background::shutdown`] is the one place that knows
//! the order a stop takes once the listeners have drained:
//!
//! 1. triggers: rule tasks finish the activation they run and start no other;
//! 2. functions: running asynchronous invocations finish and every activation record is
//!    committed;
//! 3. the maintenance loops, which end by themselves at the shutdown signal, are waited for;
//! 4. the queue and KV engines flush.
//!
//! Every step waits at most until the shutdown deadline; what has not finished by then is cut
//! off (an undelivered event is delivered after the restart, from the rule's durable cursor).

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::state::AppState;

/// The maintenance loops of one server and the services it stops on shutdown.
#[derive(Debug)]
pub struct Background {
    state: AppState,
    loops: Vec<(&'static str, JoinHandle<()>)>,
}

impl Background {
    /// Spawns the maintenance loops on the current runtime. Each also ends by itself when
    /// the server begins shutting down.
    pub fn start(state: &AppState, config: &Config) -> Self {
        let shutdown = || {
            let state = state.clone();
            async move { state.shutdown_signal().await }
        };
        let mut loops = vec![(
            "kv maintenance",
            tokio::spawn(ferrobase_kv::engine::run_maintenance(
                state.kv.clone(),
                config.kv.maintenance_interval,
                config.events.retention(),
                shutdown(),
            )),
        )];
        loops.push((
            "queue maintenance",
            tokio::spawn(ferrobase_queue::run_maintenance(
                state.queue.clone(),
                config.queue.maintenance_interval,
                shutdown(),
            )),
        ));
        {
            let storage = state.storage.clone();
            let (min_age, interval) =
                (config.storage.orphan_min_age, config.storage.sweep_interval);
            let stop = shutdown();
            loops.push((
                "storage orphan sweep",
                tokio::spawn(async move {
                    let sweep = async {
                        loop {
                            if let Err(error) = storage.sweep_orphans(min_age).await {
                                tracing::warn!(%error, "orphan sweep failed");
                            }
                            tokio::time::sleep(interval).await;
                        }
                    };
                    tokio::select! {
                        () = sweep => {}
                        () = stop => {}
                    }
                }),
            ));
        }
        Background {
            state: state.clone(),
            loops,
        }
    }

    /// Stops everything in the order the module docs give, each step by `deadline` at the
    /// latest, then flushes the engines.
    pub async fn shutdown(self, deadline: Instant) -> anyhow::Result<()> {
        let state = &self.state;
        if !finished_by(deadline, "trigger deliveries", state.triggers.shutdown()).await {
            state.triggers.stop();
        }
        finished_by(
            deadline,
            "activations and their records",
            state.functions.shutdown(),
        )
        .await;
        // Idempotent; here so that the loops end also when a caller skipped the signal.
        state.begin_shutdown();
        for (name, task) in self.loops {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!(task = name, "a maintenance loop did not stop in time");
                abort.abort();
            }
        }
        state
            .queue
            .flush()
            .await
            .context("flushing the queue store")?;
        state.kv.flush().await.context("flushing the KV store")?;
        Ok(())
    }
}

/// Runs `work` until `deadline`; false (and a warning naming `what`) when it did not finish.
async fn finished_by(deadline: Instant, what: &str, work: impl Future<Output = ()>) -> bool {
    match tokio::time::timeout_at(deadline, work).await {
        Ok(()) => true,
        Err(_) => {
            let late = Instant::now().saturating_duration_since(deadline);
            tracing::warn!(
                what,
                late_ms = late.as_millis() as u64,
                "did not finish within the shutdown grace"
            );
            false
        }
    }
}
