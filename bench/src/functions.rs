//! `ferrobase-bench functions`: latency, throughput, cold start and memory of the function
//! runtime for a trivial function, beside a process-per-invocation baseline (`node -e`, the
//! way a container platform starts a runtime per cold request), all in one run.
//!
//! Phases:
//! 1. warm invocations in process (`FunctionService::invoke`, sequential) — p50/p99;
//! 2. warm invocations over HTTP on loopback: latency on one connection, then invocations/s
//!    and latency with N connections;
//! 3. cold starts: a new isolate for the already deployed function, loaded and run once;
//! 4. resident memory per idle warm isolate, from creating many of them;
//! 5. cold starts and warm invocations of a CSV-parse + HMAC-SHA256 function (web globals);
//! 6. `node -e` of the trivial function, per invocation;
//! 7. compute beside node: the same JS (`COMPUTE_JS`) totals a 100,000-row CSV and signs 10 MB
//!    with HMAC-SHA256 (Web Crypto) in a warm isolate and in one `node` process, each round
//!    timed inside the engine with `performance.now()`, printed as isolate/node ratios.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ferrobase_core::auth::{Claims, Role};
use ferrobase_core::event::Causation;
use ferrobase_core::{Namespace, SystemClock};
use ferrobase_functions::engine::{ActivationInput, FetchPolicy, HostBinding, Isolate, LogLimits};
use ferrobase_functions::model::{Cause, OutcomeKind};
use ferrobase_functions::pool::PoolConfig;
use ferrobase_functions::service::Invocation;
use ferrobase_functions::{FunctionSpec, FunctionsConfig, HostContext};
use ferrobase_kv::{KvEngine, KvLimits, MemoryEngine};
use serde_json::json;
use tokio::task::JoinSet;

use crate::percentile;
use ferrobase::auth::TokenVerifier;
use ferrobase::config::AuthConfig;
use ferrobase::host::ServiceHost;
use ferrobase::server::{Foundation, start_services};
use ferrobase::state::{AppState, HttpLimits, Services};
use ferrobase_queue::QueueLimits;

const MODULE: &str = "export default (event) => ({ ok: true, n: event.n ?? 0 });";
/// A realistic small function: parse a CSV upload, total a column and sign the body with
/// HMAC-SHA256 (Web Crypto), answering with the hex signature (Buffer).
const CSV_HMAC_MODULE: &str = "export default async (event) => {\n\
  const lines = event.csv.split('\\n').filter(Boolean);\n\
  const header = lines.shift().split(',');\n\
  const rows = lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [header[i], v])));\n\
  const total = rows.reduce((sum, row) => sum + Number(row.amount), 0);\n\
  const enc = new TextEncoder();\n\
  const key = await crypto.subtle.importKey('raw', enc.encode(event.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);\n\
  const signature = new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(event.csv)));\n\
  return { rows: rows.length, total, signature: Buffer.from(signature).toString('hex') };\n\
};";
/// Rows in the CSV + HMAC function's event.
const CSV_ROWS: usize = 100;
/// The compute case, the same source in the isolate and in node: `compute(rounds)` builds a
/// 100,000-row CSV and 10 MB of bytes, then per round totals the CSV's amounts by customer
/// and signs the bytes with HMAC-SHA256, timing each step with `performance.now()`.
const COMPUTE_JS: &str = "function csvTotals(csv) {\n\
  const lines = csv.split('\\n');\n\
  const header = lines[0].split(',');\n\
  const customer = header.indexOf('customer'), amount = header.indexOf('amount');\n\
  const totals = {};\n\
  for (let i = 1; i < lines.length; i++) {\n\
    if (lines[i] === '') continue;\n\
    const cols = lines[i].split(',');\n\
    totals[cols[customer]] = (totals[cols[customer]] ?? 0) + Number(cols[amount]);\n\
  }\n\
  return totals;\n\
}\n\
async function compute(rounds) {\n\
  const rows = ['id,customer,amount'];\n\
  for (let i = 0; i < 100000; i++) rows.push(`${i},customer-${i % 1000},${(i % 97) + 0.25}`);\n\
  const csv = rows.join('\\n');\n\
  const data = new Uint8Array(10 * 1024 * 1024);\n\
  for (let i = 0; i < data.length; i += 4096) data.fill(i & 255, i, i + 4096);\n\
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode('bench-secret'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);\n\
  const csvMs = [], hmacMs = [];\n\
  let totals, signature;\n\
  for (let r = 0; r < rounds; r++) {\n\
    let t = performance.now();\n\
    totals = csvTotals(csv);\n\
    csvMs.push(performance.now() - t);\n\
    t = performance.now();\n\
    signature = new Uint8Array(await crypto.subtle.sign('HMAC', key, data));\n\
    hmacMs.push(performance.now() - t);\n\
  }\n\
  const check = Object.keys(totals).length + ':' + totals['customer-7'].toFixed(2) + ':' + Array.from(signature.slice(0, 4)).join('.');\n\
  return { csvMs, hmacMs, check };\n\
}\n";
/// Rounds of the compute case in each engine.
const COMPUTE_ROUNDS: usize = 5;
const NODE_SCRIPT: &str = "function main(event) { return { ok: true, n: event.n ?? 0 }; }\nprocess.stdout.write(JSON.stringify(main({ n: 1 })));";

#[derive(Debug, Clone, clap::Args)]
pub struct FunctionsBenchArgs {
    /// Sequential warm invocations in process.
    #[arg(long, default_value_t = 20_000)]
    pub warm: usize,
    /// Invocations over HTTP.
    #[arg(long, default_value_t = 50_000)]
    pub http_requests: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Cold starts measured.
    #[arg(long, default_value_t = 500)]
    pub cold_starts: usize,
    /// Idle warm isolates created to measure memory per isolate.
    #[arg(long, default_value_t = 1000)]
    pub isolates: usize,
    /// `node -e` runs for the process-per-invocation baseline (0 skips it).
    #[arg(long, default_value_t = 20)]
    pub node_runs: usize,
    /// Run the compute case (CSV totals and HMAC of 10 MB, beside node).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub compute: bool,
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn p(&mut self, q: f64) -> Duration {
        self.0.sort_unstable();
        percentile(&self.0, q)
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub async fn run_functions_bench(args: &FunctionsBenchArgs) -> anyhow::Result<()> {
    ensure!(args.connections > 0 && args.warm > 0 && args.cold_starts > 0 && args.isolates > 0);
    let kv: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new(
        Arc::new(SystemClock),
        KvLimits::default(),
    ));
    let dir = tempfile_dir()?;
    let mut foundation = Foundation::embedded(
        kv.clone(),
        &dir,
        Arc::new(SystemClock),
        QueueLimits::default(),
    )?;
    foundation.functions = FunctionsConfig {
        pool: PoolConfig::default(),
        max_waiting: 100_000,
        ..FunctionsConfig::default()
    };
    // The isolate phases call the host directly, as an executor thread does.
    let host = Arc::new(ServiceHost::new(
        kv.clone(),
        foundation.queue.clone(),
        foundation.storage.clone(),
        Arc::new(FetchPolicy::default()),
    ));
    let services = start_services(foundation).await?;
    let service = services.functions.clone();
    let ns = Namespace::parse("bench")?;
    let spec: FunctionSpec = serde_json::from_value(json!({"code": MODULE, "concurrency": 1000}))?;
    service.deploy(&ns, "trivial", spec.clone()).await?;
    let invocation = || Invocation {
        namespace: ns.clone(),
        target: "trivial".into(),
        event: json!({"n": 1}),
        cause: Cause::Request,
        causation: Causation::default(),
    };

    // 1. Warm, in process.
    for _ in 0..1000.min(args.warm) {
        service.invoke(invocation()).await?;
    }
    let mut warm = Latencies(Vec::with_capacity(args.warm));
    for _ in 0..args.warm {
        let started = Instant::now();
        let done = service.invoke(invocation()).await?;
        warm.0.push(started.elapsed());
        ensure!(
            done.record.outcome == OutcomeKind::Ok,
            "warm invocation failed: {:?}",
            done.record.error
        );
    }
    let (warm_p50, warm_p99) = (warm.p(0.5), warm.p(0.99));
    println!(
        "functions in-process warm: p50_us={:.1} p99_us={:.1} (n={})",
        us(warm_p50),
        us(warm_p99),
        args.warm
    );

    // 2. Warm, over HTTP: latency with one connection, then throughput with many.
    let (_, mut single) = http_phase(kv.clone(), services.clone(), 1, args.warm.min(5000)).await?;
    let (http_p50, http_p99) = (single.p(0.5), single.p(0.99));
    println!(
        "functions over-HTTP warm, one connection: p50_us={:.1} p99_us={:.1} (n={})",
        us(http_p50),
        us(http_p99),
        single.0.len()
    );
    let (http_rate, mut loaded) = http_phase(
        kv.clone(),
        services.clone(),
        args.connections,
        args.http_requests,
    )
    .await?;
    let (loaded_p50, loaded_p99) = (loaded.p(0.5), loaded.p(0.99));
    println!(
        "functions over-HTTP warm, {} connections: invocations_per_sec={http_rate:.0} p50_us={:.1} p99_us={:.1} (n={})",
        args.connections,
        us(loaded_p50),
        us(loaded_p99),
        args.http_requests
    );

    // 3 and 4 run on a thread of their own, as executor threads do (isolates are !Send).
    let version_id = "bench/trivial@1".to_owned();
    let context = HostContext {
        namespace: ns.clone(),
        function: "trivial".into(),
        activation_id: "bench".into(),
        causation: Causation::default(),
        idempotency: None,
    };
    let binding = HostBinding {
        api: host,
        context,
        fetch: Arc::new(FetchPolicy::default()),
    };
    let binding_for_web = binding.clone();
    let (cold_starts, isolates) = (args.cold_starts, args.isolates);
    let memory = spec.memory_mb as usize * 1024 * 1024;
    let (mut cold, per_isolate) = std::thread::spawn(move || {
        isolate_phases(&version_id, memory, binding, cold_starts, isolates)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the isolate benchmark thread panicked"))??;
    let (cold_p50, cold_p99) = (cold.p(0.5), cold.p(0.99));
    println!(
        "functions cold start: p50_us={:.1} p99_us={:.1} (n={cold_starts})",
        us(cold_p50),
        us(cold_p99)
    );
    println!(
        "functions idle warm isolate: rss_per_isolate_kib={:.0} (n={isolates})",
        per_isolate / 1024.0
    );
    let web_binding = binding_for_web.clone();
    let warm_runs = args.warm.min(5000);
    let (mut csv_cold, mut csv_warm) =
        std::thread::spawn(move || csv_hmac_phase(memory, web_binding, cold_starts, warm_runs))
            .join()
            .map_err(|_| anyhow::anyhow!("the CSV + HMAC benchmark thread panicked"))??;
    let (csv_cold_p50, csv_cold_p99) = (csv_cold.p(0.5), csv_cold.p(0.99));
    let (csv_warm_p50, csv_warm_p99) = (csv_warm.p(0.5), csv_warm.p(0.99));
    println!(
        "functions CSV + HMAC ({CSV_ROWS} rows): cold_p50_us={:.1} cold_p99_us={:.1} warm_p50_us={:.1} warm_p99_us={:.1}",
        us(csv_cold_p50),
        us(csv_cold_p99),
        us(csv_warm_p50),
        us(csv_warm_p99)
    );

    // 6. A runtime process per invocation.
    let node = if args.node_runs > 0 {
        node_baseline(args.node_runs)?
    } else {
        None
    };
    println!();
    println!("{:<44} {:>12} {:>12}  target", "measure", "p50", "p99");
    println!(
        "{:<44} {:>10.1}us {:>10.1}us  p50 <= 100us",
        "warm invocation, in process",
        us(warm_p50),
        us(warm_p99)
    );
    println!(
        "{:<44} {:>10.1}us {:>10.1}us  p50 <= 1000us",
        "warm invocation, over HTTP (one connection)",
        us(http_p50),
        us(http_p99)
    );
    println!(
        "{:<44} {:>10.1}us {:>10.1}us  p50 <= 2000us",
        "cold start (new isolate, deployed function)",
        us(cold_p50),
        us(cold_p99)
    );
    println!(
        "{:<44} {:>10.1}us {:>10.1}us",
        format!("cold start, CSV + HMAC ({CSV_ROWS} rows)"),
        us(csv_cold_p50),
        us(csv_cold_p99)
    );
    println!(
        "{:<44} {:>10.1}us {:>10.1}us",
        format!("warm invocation, CSV + HMAC ({CSV_ROWS} rows)"),
        us(csv_warm_p50),
        us(csv_warm_p99)
    );
    println!(
        "{:<44} {:>10.1}us {:>10.1}us",
        format!(
            "warm invocation, over HTTP ({} connections)",
            args.connections
        ),
        us(loaded_p50),
        us(loaded_p99)
    );
    println!(
        "{:<44} {:>12.0}/s {:>11}  >= 10000/s",
        format!("invocations over HTTP ({} connections)", args.connections),
        http_rate,
        ""
    );
    println!(
        "{:<44} {:>10.0}KiB {:>11}  <= 512KiB",
        "resident memory per idle warm isolate",
        per_isolate / 1024.0,
        ""
    );
    match node {
        Some(mut node) => {
            let (node_p50, node_p99) = (node.p(0.5), node.p(0.99));
            println!(
                "{:<44} {:>10.1}us {:>10.1}us",
                "node -e per invocation (baseline)",
                us(node_p50),
                us(node_p99)
            );
            println!(
                "cold start / node -e (p50) = {:.4} ({:.0}x faster)",
                us(cold_p50) / us(node_p50),
                us(node_p50) / us(cold_p50)
            );
        }
        None => println!("node -e baseline: skipped (node not found or --node-runs 0)"),
    }

    // 7. Compute beside node, in the same run.
    if args.compute {
        let isolate = std::thread::spawn(move || compute_in_isolate(binding_for_web))
            .join()
            .map_err(|_| anyhow::anyhow!("the compute benchmark thread panicked"))??;
        match compute_in_node()? {
            Some(node) => {
                ensure!(
                    isolate.check == node.check,
                    "the isolate and node computed different results: {} vs {}",
                    isolate.check,
                    node.check
                );
                let (csv, csv_node) = (median(&isolate.csv_ms), median(&node.csv_ms));
                let (hmac, hmac_node) = (median(&isolate.hmac_ms), median(&node.hmac_ms));
                println!(
                    "{:<44} {:>10.1}ms {:>10.1}ms  isolate/node = {:.2}x (median of {COMPUTE_ROUNDS})",
                    "CSV to totals, 100,000 rows: isolate, node",
                    csv,
                    csv_node,
                    csv / csv_node
                );
                println!(
                    "{:<44} {:>10.1}ms {:>10.1}ms  isolate/node = {:.2}x (median of {COMPUTE_ROUNDS})",
                    "HMAC-SHA256 of 10 MB: isolate, node",
                    hmac,
                    hmac_node,
                    hmac / hmac_node
                );
            }
            None => println!(
                "compute: isolate CSV {:.1}ms, HMAC {:.1}ms; node not found, no ratios",
                median(&isolate.csv_ms),
                median(&isolate.hmac_ms)
            ),
        }
    }
    Ok(())
}

/// Milliseconds per round of the compute case, and what it computed (to check both engines
/// did the same work).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Compute {
    csv_ms: Vec<f64>,
    hmac_ms: Vec<f64>,
    check: String,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The compute case in one isolate on this (dedicated) thread, with room for its 10 MB.
fn compute_in_isolate(binding: HostBinding) -> anyhow::Result<Compute> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let source = format!("{COMPUTE_JS}export default () => compute({COMPUTE_ROUNDS});");
        let mut isolate = Isolate::new().map_err(|e| anyhow::anyhow!(e.message))?;
        isolate
            .specialize(
                "bench/compute@1",
                &source,
                512 * 1024 * 1024,
                Instant::now() + Duration::from_secs(10),
            )
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let output = isolate
            .invoke(ActivationInput {
                event_json: "{}".into(),
                ctx_json: "{}".into(),
                deadline: Instant::now() + Duration::from_secs(300),
                host: binding,
                log_limits: LogLimits::default(),
            })
            .await;
        ensure!(
            output.outcome == OutcomeKind::Ok,
            "the compute case failed in the isolate: {:?}",
            output.error
        );
        Ok(serde_json::from_str(
            output.result_json.as_deref().unwrap_or("null"),
        )?)
    })
}

/// The compute case in one `node` process; `None` without node.
fn compute_in_node() -> anyhow::Result<Option<Compute>> {
    let probe = std::process::Command::new("node").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Ok(None);
    }
    let script = format!(
        "{COMPUTE_JS}compute({COMPUTE_ROUNDS}).then((r) => process.stdout.write(JSON.stringify(r)));"
    );
    let output = std::process::Command::new("node")
        .arg("-e")
        .arg(script)
        .output()?;
    ensure!(
        output.status.success(),
        "the compute case failed in node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Some(serde_json::from_slice(&output.stdout)?))
}

async fn http_phase(
    kv: Arc<dyn KvEngine>,
    services: Services,
    connections: usize,
    requests: usize,
) -> anyhow::Result<(f64, Latencies)> {
    let dir = tempfile_dir()?;
    let auth = AuthConfig {
        hs256_secret: Some("bench-secret-bench-secret-bench-secret!".into()),
        ..AuthConfig::default()
    };
    let verifier = Arc::new(TokenVerifier::load(&auth, &dir)?);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let token = verifier.mint(&Claims {
        sub: "bench".into(),
        exp,
        iat: None,
        ns: Some(Namespace::parse("bench")?),
        role: Role::Service,
        scopes: None,
    })?;
    let limits = HttpLimits {
        max_value_bytes: 1 << 20,
        max_txn_bytes: 4 << 20,
    };
    let state = AppState::new(kv, verifier, limits, services);
    let router = ferrobase::routes::router(state, &ferrobase::config::CorsConfig::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/v1/functions/bench/trivial/invoke",
        listener.local_addr()?
    );
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(requests));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        let (url, token, remaining) = (url.clone(), token.clone(), remaining.clone());
        workers.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut samples = Vec::new();
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .body("{\"n\":1}")
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                samples.push(sent.elapsed());
                ensure!(status.is_success(), "invoke answered {status}");
            }
            anyhow::Ok(samples)
        });
    }
    let mut all = Vec::with_capacity(requests);
    while let Some(result) = workers.join_next().await {
        all.extend(result.context("benchmark worker")??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((rate, Latencies(all)))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferrobase-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Cold starts, then memory per idle warm isolate, on the current (dedicated) thread.
fn isolate_phases(
    version_id: &str,
    memory: usize,
    binding: HostBinding,
    cold_starts: usize,
    isolates: usize,
) -> anyhow::Result<(Latencies, f64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let input = || ActivationInput {
            event_json: "{\"n\":1}".into(),
            ctx_json: "{}".into(),
            deadline: Instant::now() + Duration::from_secs(10),
            host: binding.clone(),
            log_limits: LogLimits::default(),
        };
        let mut cold = Latencies(Vec::with_capacity(cold_starts));
        for _ in 0..cold_starts {
            let started = Instant::now();
            let mut isolate = Isolate::new().map_err(|e| anyhow::anyhow!(e.message))?;
            isolate
                .specialize(
                    version_id,
                    MODULE,
                    memory,
                    Instant::now() + Duration::from_secs(10),
                )
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let output = isolate.invoke(input()).await;
            cold.0.push(started.elapsed());
            ensure!(
                output.outcome == OutcomeKind::Ok,
                "cold start failed: {:?}",
                output.error
            );
        }
        let before = resident_bytes()?;
        let mut warm = Vec::with_capacity(isolates);
        for _ in 0..isolates {
            let mut isolate = Isolate::new().map_err(|e| anyhow::anyhow!(e.message))?;
            isolate
                .specialize(
                    version_id,
                    MODULE,
                    memory,
                    Instant::now() + Duration::from_secs(10),
                )
                .map_err(|e| anyhow::anyhow!(e.message))?;
            isolate.invoke(input()).await;
            warm.push(isolate);
        }
        let after = resident_bytes()?;
        let per_isolate = after.saturating_sub(before) as f64 / isolates as f64;
        drop(warm);
        Ok((cold, per_isolate))
    })
}

/// Cold starts of the CSV + HMAC function (each a new isolate, which loads the encoding,
/// crypto and buffer glue on first use), then warm invocations of one isolate.
fn csv_hmac_phase(
    memory: usize,
    binding: HostBinding,
    cold_starts: usize,
    warm_runs: usize,
) -> anyhow::Result<(Latencies, Latencies)> {
    let mut csv = String::from("id,name,amount\n");
    for i in 0..CSV_ROWS {
        csv.push_str(&format!("{i},customer-{i},{}.25\n", i % 97));
    }
    let event_json = json!({"csv": csv, "secret": "whsec_bench"}).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let input = || ActivationInput {
            event_json: event_json.clone(),
            ctx_json: "{}".into(),
            deadline: Instant::now() + Duration::from_secs(10),
            host: binding.clone(),
            log_limits: LogLimits::default(),
        };
        let load = || -> anyhow::Result<Isolate> {
            let mut isolate = Isolate::new().map_err(|e| anyhow::anyhow!(e.message))?;
            isolate
                .specialize(
                    "bench/csv@1",
                    CSV_HMAC_MODULE,
                    memory,
                    Instant::now() + Duration::from_secs(10),
                )
                .map_err(|e| anyhow::anyhow!(e.message))?;
            Ok(isolate)
        };
        let mut cold = Latencies(Vec::with_capacity(cold_starts));
        for _ in 0..cold_starts {
            let started = Instant::now();
            let mut isolate = load()?;
            let output = isolate.invoke(input()).await;
            cold.0.push(started.elapsed());
            ensure!(
                output.outcome == OutcomeKind::Ok,
                "CSV + HMAC cold start failed: {:?}",
                output.error
            );
        }
        let mut isolate = load()?;
        let mut warm = Latencies(Vec::with_capacity(warm_runs));
        for _ in 0..warm_runs {
            let started = Instant::now();
            let output = isolate.invoke(input()).await;
            warm.0.push(started.elapsed());
            ensure!(
                output.outcome == OutcomeKind::Ok,
                "CSV + HMAC invocation failed: {:?}",
                output.error
            );
        }
        Ok((cold, warm))
    })
}

/// Resident set size of this process (Linux `/proc/self/status`).
fn resident_bytes() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

/// Wall time of `node -e` running the same function once, per run; `None` without node.
fn node_baseline(runs: usize) -> anyhow::Result<Option<Latencies>> {
    let probe = std::process::Command::new("node").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Ok(None);
    }
    let mut samples = Latencies(Vec::with_capacity(runs));
    for _ in 0..runs {
        let started = Instant::now();
        let output = std::process::Command::new("node")
            .arg("-e")
            .arg(NODE_SCRIPT)
            .output()?;
        samples.0.push(started.elapsed());
        ensure!(
            output.status.success() && output.stdout == b"{\"ok\":true,\"n\":1}",
            "node baseline failed"
        );
    }
    Ok(Some(samples))
}
