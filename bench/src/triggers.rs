//! `ferrobase-bench triggers`: change-event → function-start latency through a rule, and the
//! highest sustained event rate delivered with zero loss and bounded lag.
//!
//! Events are durable KV puts on the embedded (sled) engine, as clients make them; a KV trigger
//! and a rule deliver each to a trivial function whose first act is an SDK call, where the
//! benchmark's host notes the time. Latency runs from just before the put's commit to that
//! call, so it covers the change-log wake-up, the rule's read, the dispatch to an isolate and
//! the function's start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::ensure;
use async_trait::async_trait;
use bytes::Bytes;
use ferrobase_core::{Namespace, SystemClock};
use ferrobase_functions::pool::PoolConfig;
use ferrobase_functions::triggers::model::{RuleSpec, TriggerSpec};
use ferrobase_functions::triggers::{MissingFunction, TriggerConfig, TriggerService};
use ferrobase_functions::{
    FunctionService, FunctionsConfig, HostApi, HostContext, HostError, HostOp,
};
use ferrobase_kv::{Key, KvEngine, KvLimits, KvRecordStore, SledEngine, Txn};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::percentile;

const FUNCTION: &str = "import { kv } from 'ferrobase';\nexport default async (event) => { await kv.get(event.subject); };";

#[derive(Debug, Clone, clap::Args)]
pub struct TriggersBenchArgs {
    /// Events per second of the latency run.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Rates tried for the sustained-rate search, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,5000,10000,20000"
    )]
    pub rates: Vec<u64>,
    /// Seconds per rate in the search.
    #[arg(long, default_value_t = 3)]
    pub search_seconds: u64,
    /// Most lag allowed after the last event of a run, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub max_lag_ms: u64,
}

/// Notes when each event's function made its first SDK call.
#[derive(Debug, Default)]
struct StartClock {
    starts: Mutex<HashMap<String, Instant>>,
}

#[async_trait]
impl HostApi for StartClock {
    async fn call(&self, _context: &HostContext, op: HostOp) -> Result<Value, HostError> {
        if let HostOp::KvGet { key } = op {
            self.starts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_insert_with(Instant::now);
        }
        Ok(Value::Null)
    }
}

struct Run {
    latencies: Vec<Duration>,
    delivered: usize,
    sent: usize,
    lag: Duration,
}

pub async fn run_triggers_bench(args: &TriggersBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.rate > 0 && args.seconds > 0,
        "rate and seconds must be positive"
    );
    let dir = std::env::temp_dir().join(format!("ferrobase-bench-triggers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let kv: Arc<dyn KvEngine> = Arc::new(SledEngine::open(
        &dir,
        Arc::new(SystemClock),
        KvLimits::default(),
    )?);
    let clock = Arc::new(StartClock::default());
    let records = Arc::new(KvRecordStore::new(kv.clone()));
    let functions = FunctionService::start(
        records.clone(),
        clock.clone(),
        FunctionsConfig {
            pool: PoolConfig::default(),
            max_waiting: 1_000_000,
            ..FunctionsConfig::default()
        },
    )?;
    let triggers = TriggerService::start(
        records,
        kv.clone(),
        functions.clone(),
        None,
        TriggerConfig::default(),
    )
    .await?;
    let ns = Namespace::parse("bench")?;
    functions
        .deploy(
            &ns,
            "on-event",
            serde_json::from_value(json!({"code": FUNCTION, "concurrency": 1000}))?,
        )
        .await?;
    let trigger: TriggerSpec =
        serde_json::from_value(json!({"source": {"kind": "kv", "prefix": "ev/", "ops": ["put"]}}))?;
    triggers.put_trigger(&ns, "events", trigger).await?;
    let rule: RuleSpec =
        serde_json::from_value(json!({"trigger": "events", "function": "on-event"}))?;
    triggers
        .put_rule(&ns, "deliver", rule, MissingFunction::Refuse)
        .await?;

    let mut run = drive(
        &kv,
        &ns,
        &clock,
        "lat",
        args.rate,
        args.seconds,
        args.max_lag_ms,
    )
    .await?;
    run.latencies.sort_unstable();
    let (p50, p99) = (
        percentile(&run.latencies, 0.5),
        percentile(&run.latencies, 0.99),
    );
    println!(
        "triggers event->function start at {}/s: p50_us={} p99_us={} delivered={}/{} lag_ms={}",
        args.rate,
        p50.as_micros(),
        p99.as_micros(),
        run.delivered,
        run.sent,
        run.lag.as_millis()
    );

    let mut best = None;
    for (index, rate) in args.rates.iter().copied().enumerate() {
        let run = drive(
            &kv,
            &ns,
            &clock,
            &format!("s{index}"),
            rate,
            args.search_seconds,
            args.max_lag_ms,
        )
        .await?;
        let ok = run.delivered == run.sent && run.lag <= Duration::from_millis(args.max_lag_ms);
        println!(
            "triggers sustained {rate}/s: delivered={}/{} lag_ms={} {}",
            run.delivered,
            run.sent,
            run.lag.as_millis(),
            if ok { "ok" } else { "FAILED (loss or lag)" }
        );
        if !ok {
            break;
        }
        best = Some(rate);
    }
    println!();
    println!(
        "event->function start p50 = {} us (target <= 2000), p99 = {} us (target <= 10000) at {}/s",
        p50.as_micros(),
        p99.as_micros(),
        args.rate
    );
    match best {
        Some(rate) => println!(
            "highest sustained rate with zero loss and lag <= {} ms: {rate}/s (target >= 5000/s)",
            args.max_lag_ms
        ),
        None => println!(
            "no rate was sustained with zero loss and lag <= {} ms",
            args.max_lag_ms
        ),
    }
    triggers.stop();
    drop(triggers);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Puts `rate` events a second for `seconds` (each at its scheduled time, concurrently, as
/// independent clients would), then waits for their deliveries.
async fn drive(
    kv: &Arc<dyn KvEngine>,
    ns: &Namespace,
    clock: &Arc<StartClock>,
    tag: &str,
    rate: u64,
    seconds: u64,
    max_lag_ms: u64,
) -> anyhow::Result<Run> {
    let total = (rate * seconds) as usize;
    let outstanding = Arc::new(Semaphore::new(2048));
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = started + Duration::from_nanos(i as u64 * 1_000_000_000 / rate);
        tokio::time::sleep_until(at.into()).await;
        let permit = outstanding.clone().acquire_owned().await?;
        let (kv, ns, sent_at) = (kv.clone(), ns.clone(), sent_at.clone());
        let key = format!("ev/{tag}/{i:08}");
        tasks.spawn(async move {
            let _permit = permit;
            sent_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), Instant::now());
            let txn = Txn::put(Key::parse(&key)?, Bytes::from_static(b"e"), "text/plain");
            kv.commit(&ns, txn).await?;
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let last_sent = Instant::now();
    let deadline = last_sent + Duration::from_millis(max_lag_ms.max(1) * 5);
    let prefix = format!("ev/{tag}/");
    let delivered = |clock: &StartClock| {
        clock
            .starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .count()
    };
    while delivered(clock) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent_at = sent_at.lock().unwrap_or_else(|e| e.into_inner());
    let starts = clock.starts.lock().unwrap_or_else(|e| e.into_inner());
    let mut latencies = Vec::with_capacity(total);
    let mut last_start = last_sent;
    for (key, sent) in sent_at.iter() {
        if let Some(start) = starts.get(key) {
            latencies.push(start.saturating_duration_since(*sent));
            last_start = last_start.max(*start);
        }
    }
    Ok(Run {
        delivered: latencies.len(),
        sent: total,
        lag: last_start.saturating_duration_since(last_sent),
        latencies,
    })
}
