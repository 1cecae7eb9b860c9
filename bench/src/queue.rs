//! `ferrobase-bench queue`: publish→ack throughput and end-to-end latency of the queue.
//!
//! Two runs, each with the same closed workload: `publishers` tasks publish `messages`
//! messages of `message_size` bytes in batches of `batch`, while `consumers` tasks pull batches
//! of up to `batch`, and ack each batch with one call. Every ack and publish is durable (group
//! commit) before it is answered.
//!
//! - **in-process**: the embedded engine called directly, in a temp directory under `--dir`.
//! - **http**: the same through the HTTP API of a server started in this process on
//!   `127.0.0.1:0` with its own temp data directory (or `--url` and `--token` for a running
//!   server), bodies as JSON strings.
//! - **jetstream** (with `--nats-url`): the JetStream engine in-process beside plain async-nats
//!   on the same server, with ratios ([`super::queue_nats`]).
//!
//! Each message carries its publish time, so a consumer measures the end-to-end latency from
//! the publish call to the pull that received it. Publishers hold back while `window`
//! messages are published but not yet acked, so that the latency is the pipeline's, not that
//! of a backlog growing for the whole run. Throughput is messages over the time from
//! the first publish to the last ack; the publish rate is messages over the time until the
//! last publish was answered.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use bytes::Bytes;
use ferrobase_core::auth::{Claims, Role};
use ferrobase_core::{Namespace, SystemClock};
use ferrobase_kv::{KvLimits, KvRecordStore, MemoryEngine};
use ferrobase_queue::{
    EmbeddedQueue, GroupName, NewMessage, PullRequest, Queue, QueueConfig, QueueLimits, QueueName,
    Receipt,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

pub(super) const NS: &str = "bench";
pub(super) const QUEUE: &str = "bench";
/// Digits of the publish time (nanoseconds since the run started) at the start of each body.
const STAMP_DIGITS: usize = 20;
/// A run that makes no progress for this long fails instead of hanging.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Which runs `ferrobase-bench queue` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueBenchTarget {
    InProcess,
    Http,
    /// The JetStream engine beside plain async-nats (needs `--nats-url`).
    #[value(name = "jetstream")]
    JetStream,
    /// in-process and http, and jetstream when `--nats-url` is given.
    All,
}

/// Options of `ferrobase-bench queue`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueBenchArgs {
    /// Which runs to make
    #[arg(long, value_enum, default_value = "all")]
    pub target: QueueBenchTarget,
    /// Messages of the in-process run
    #[arg(long, default_value_t = 200_000)]
    pub messages: usize,
    /// Messages of the HTTP run
    #[arg(long, default_value_t = 50_000)]
    pub http_messages: usize,
    /// Messages per publish, and most messages per pull
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent publishing tasks
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Concurrent consuming tasks
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// Most messages published but not yet acked; publishers wait beyond it, so that latency
    /// measures the pipeline rather than an ever-growing backlog
    #[arg(long, default_value_t = 2_000)]
    pub window: usize,
    /// Size of each message body in bytes (at least 20, which hold the publish time)
    #[arg(long, default_value_t = 128)]
    pub message_size: usize,
    /// Parent of the temporary data directories (avoid a tmpfs, where fsync costs nothing)
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Base URL of a running server for the HTTP run, instead of one started in-process
    #[arg(long, requires = "token")]
    pub url: Option<String>,
    /// Bearer token (admin or service of namespace `bench`) for `--url`
    #[arg(long, env = "FERROBASE_TOKEN")]
    pub token: Option<String>,
    /// A running nats-server with JetStream (2.9 or later) for the jetstream runs
    #[arg(long, env = "FERROBASE_NATS_URL")]
    pub nats_url: Option<String>,
    /// Messages of each jetstream run (engine and plain alike)
    #[arg(long, default_value_t = 50_000)]
    pub jetstream_messages: usize,
    /// Rounds of the jetstream comparison; the summary gives medians over them
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Results of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRunStats {
    pub messages: usize,
    /// Messages over the time until the last publish was answered.
    pub published_per_sec: f64,
    /// Messages over the time until the last ack was answered.
    pub consumed_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl QueueRunStats {
    pub(super) fn line(&self, label: &str, batch: usize) -> String {
        format!(
            "queue {label} messages={} batch={batch} published_per_sec={:.0} \
             consumed_per_sec={:.0} e2e_p50_us={} e2e_p99_us={}",
            self.messages,
            self.published_per_sec,
            self.consumed_per_sec,
            self.p50.as_micros(),
            self.p99.as_micros()
        )
    }
}

/// Runs the selected benchmarks and prints one `key=value` line per run.
pub async fn run_queue_bench(args: &QueueBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.batch >= 1 && args.batch <= 1000,
        "--batch must be between 1 and 1000"
    );
    ensure!(args.publishers >= 1, "--publishers must be at least 1");
    ensure!(args.consumers >= 1, "--consumers must be at least 1");
    ensure!(
        args.message_size >= STAMP_DIGITS,
        "--message-size must be at least {STAMP_DIGITS}"
    );
    if matches!(
        args.target,
        QueueBenchTarget::InProcess | QueueBenchTarget::All
    ) {
        let stats = in_process(args).await?;
        println!("{}", stats.line("in-process", args.batch));
    }
    if matches!(args.target, QueueBenchTarget::Http | QueueBenchTarget::All) {
        let stats = http(args).await?;
        println!("{}", stats.line("http", args.batch));
    }
    let jetstream = match (args.target, &args.nats_url) {
        (QueueBenchTarget::JetStream, None) => bail!("--target jetstream needs --nats-url"),
        (QueueBenchTarget::JetStream | QueueBenchTarget::All, Some(url)) => Some(url),
        _ => None,
    };
    if let Some(url) = jetstream {
        ensure!(args.rounds >= 1, "--rounds must be at least 1");
        let comparison =
            crate::queue_nats::compare(url, args, args.rounds, args.jetstream_messages).await?;
        for line in comparison.lines(args.rounds, args.batch) {
            println!("{line}");
        }
    }
    Ok(())
}

/// What a run needs of a queue: the embedded engine or the HTTP API.
#[async_trait]
pub(super) trait BenchQueue: Send + Sync + 'static {
    async fn publish(&self, bodies: Vec<Bytes>) -> anyhow::Result<()>;
    /// Pulls up to `max`; returns (body, receipt) pairs.
    async fn pull(&self, max: usize) -> anyhow::Result<Vec<(Bytes, String)>>;
    async fn ack(&self, receipts: Vec<String>) -> anyhow::Result<()>;
}

#[derive(Debug)]
pub(super) struct Engine {
    pub(super) queue: Arc<dyn Queue>,
    pub(super) ns: Namespace,
    pub(super) name: QueueName,
}

#[async_trait]
impl BenchQueue for Engine {
    async fn publish(&self, bodies: Vec<Bytes>) -> anyhow::Result<()> {
        let messages = bodies.into_iter().map(NewMessage::new).collect();
        self.queue.publish(&self.ns, &self.name, messages).await?;
        Ok(())
    }

    async fn pull(&self, max: usize) -> anyhow::Result<Vec<(Bytes, String)>> {
        let request = PullRequest {
            group: GroupName::default(),
            max,
            wait: Duration::from_millis(100),
            lease: Duration::from_secs(300),
        };
        let deliveries = self.queue.pull(&self.ns, &self.name, &request).await?;
        Ok(deliveries
            .into_iter()
            .map(|d| (d.body, d.receipt.as_str().to_owned()))
            .collect())
    }

    async fn ack(&self, receipts: Vec<String>) -> anyhow::Result<()> {
        let receipts: Vec<Receipt> = receipts.into_iter().map(Receipt::from_text).collect();
        let outcome = self.queue.ack(&self.ns, &self.name, &receipts).await?;
        ensure!(
            outcome.stale.is_empty(),
            "{} acks were stale",
            outcome.stale.len()
        );
        Ok(())
    }
}

#[derive(Debug)]
struct Http {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }
}

#[async_trait]
impl BenchQueue for Http {
    async fn publish(&self, bodies: Vec<Bytes>) -> anyhow::Result<()> {
        let messages: Vec<Value> = bodies
            .iter()
            .map(|body| json!({"body": String::from_utf8_lossy(body)}))
            .collect();
        self.post("messages", json!({"messages": messages})).await?;
        Ok(())
    }

    async fn pull(&self, max: usize) -> anyhow::Result<Vec<(Bytes, String)>> {
        let answer = self
            .post(
                "pull",
                json!({"max": max, "wait_ms": 100, "lease_ms": 300_000}),
            )
            .await?;
        let messages = answer["messages"].as_array().cloned().unwrap_or_default();
        Ok(messages
            .into_iter()
            .map(|m| {
                let body = m["body"].as_str().unwrap_or_default().to_owned();
                let receipt = m["receipt"].as_str().unwrap_or_default().to_owned();
                (Bytes::from(body), receipt)
            })
            .collect())
    }

    async fn ack(&self, receipts: Vec<String>) -> anyhow::Result<()> {
        let answer = self.post("ack", json!({"receipts": receipts})).await?;
        ensure!(answer["stale"] == json!([]), "stale acks: {answer}");
        Ok(())
    }
}

async fn in_process(args: &QueueBenchArgs) -> anyhow::Result<QueueRunStats> {
    let dir = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("creating a temp dir in {}", args.dir.display()))?;
    let clock = Arc::new(SystemClock);
    // The bench queue emits no events; the record store is only there to satisfy the engine.
    let kv = Arc::new(MemoryEngine::new(clock.clone(), KvLimits::default()));
    let engine: Arc<dyn Queue> = Arc::new(EmbeddedQueue::open(
        dir.path(),
        clock,
        QueueLimits::default(),
        Arc::new(KvRecordStore::new(kv)),
    )?);
    run_engine(engine, args, args.messages).await
}

/// Runs the workload in process against `engine`: configures the bench queue and keeps the
/// engine's maintenance going meanwhile, as the server does.
pub(super) async fn run_engine(
    engine: Arc<dyn Queue>,
    args: &QueueBenchArgs,
    messages: usize,
) -> anyhow::Result<QueueRunStats> {
    let ns = Namespace::parse(NS)?;
    let name = QueueName::parse(QUEUE)?;
    engine.configure(&ns, &name, QueueConfig::default()).await?;
    let maintenance = tokio::spawn(ferrobase_queue::run_maintenance(
        engine.clone(),
        Duration::from_secs(1),
        std::future::pending(),
    ));
    let target = Arc::new(Engine {
        queue: engine,
        ns,
        name,
    });
    let stats = run(target, args, messages).await;
    maintenance.abort();
    stats
}

async fn http(args: &QueueBenchArgs) -> anyhow::Result<QueueRunStats> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    if let (Some(url), Some(token)) = (&args.url, &args.token) {
        let target = Http {
            client,
            base: format!("{}/v1/queues/{NS}/{QUEUE}", url.trim_end_matches('/')),
            token: token.clone(),
        };
        configure_over_http(&target).await?;
        return run(Arc::new(target), args, args.http_messages).await;
    }

    let dir = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("creating a temp dir in {}", args.dir.display()))?;
    let config = ferrobase::config::Config {
        data_dir: dir.path().join("data"),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ferrobase::config::Config::default()
    };
    let state = ferrobase::server::build(&config).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let token = state.verifier.mint(&Claims {
        sub: "bench".to_owned(),
        exp: now + 24 * 3600,
        iat: Some(now),
        ns: Some(Namespace::parse(NS)?),
        role: Role::Service,
        scopes: None,
    })?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        ferrobase::server::run(listener, state, &config, async move {
            let _ = stopped.await;
        })
        .await
    });
    let target = Http {
        client,
        base: format!("http://{address}/v1/queues/{NS}/{QUEUE}"),
        token,
    };
    let result = async {
        configure_over_http(&target).await?;
        run(Arc::new(target), args, args.http_messages).await
    }
    .await;
    let _ = stop.send(());
    server.await.context("bench server task")??;
    result
}

async fn configure_over_http(target: &Http) -> anyhow::Result<()> {
    let response = target
        .client
        .put(&target.base)
        .bearer_auth(&target.token)
        .json(&json!({}))
        .send()
        .await
        .context("configuring the bench queue")?;
    ensure!(
        response.status().is_success(),
        "configuring the bench queue answered {}",
        response.status()
    );
    Ok(())
}

/// One closed run of `messages` messages.
pub(super) async fn run<Q: BenchQueue>(
    target: Arc<Q>,
    args: &QueueBenchArgs,
    messages: usize,
) -> anyhow::Result<QueueRunStats> {
    ensure!(messages >= 1, "a run needs at least one message");
    let started = Instant::now();
    let budget = Arc::new(AtomicUsize::new(0));
    let consumed = Arc::new(AtomicUsize::new(0));
    let padding = "x".repeat(args.message_size - STAMP_DIGITS);

    let mut publishers = JoinSet::new();
    for _ in 0..args.publishers {
        let (target, budget, consumed, padding, batch, window) = (
            target.clone(),
            budget.clone(),
            consumed.clone(),
            padding.clone(),
            args.batch,
            args.window.max(args.batch),
        );
        publishers.spawn(async move {
            loop {
                let first = budget.fetch_add(batch, Ordering::Relaxed);
                if first >= messages {
                    return Ok::<(), anyhow::Error>(());
                }
                while first.saturating_sub(consumed.load(Ordering::Relaxed)) >= window {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                let count = batch.min(messages - first);
                let stamp = started.elapsed().as_nanos();
                let bodies = (0..count)
                    .map(|_| Bytes::from(format!("{stamp:0STAMP_DIGITS$}{padding}")))
                    .collect();
                target.publish(bodies).await?;
            }
        });
    }
    let mut consumers = JoinSet::new();
    for _ in 0..args.consumers {
        let (target, consumed, batch) = (target.clone(), consumed.clone(), args.batch);
        consumers.spawn(async move {
            let mut latencies = Vec::with_capacity(messages / 2);
            let mut last_progress = Instant::now();
            while consumed.load(Ordering::Relaxed) < messages {
                let got = target.pull(batch).await?;
                let received = started.elapsed().as_nanos();
                if got.is_empty() {
                    ensure!(
                        last_progress.elapsed() < STALL_TIMEOUT,
                        "no message for {STALL_TIMEOUT:?}"
                    );
                    continue;
                }
                last_progress = Instant::now();
                let mut receipts = Vec::with_capacity(got.len());
                for (body, receipt) in got {
                    let stamp: u128 = std::str::from_utf8(&body[..STAMP_DIGITS])
                        .ok()
                        .and_then(|digits| digits.parse().ok())
                        .context("a message without its publish time")?;
                    latencies.push(Duration::from_nanos(received.saturating_sub(stamp) as u64));
                    receipts.push(receipt);
                }
                let count = receipts.len();
                target.ack(receipts).await?;
                consumed.fetch_add(count, Ordering::Relaxed);
            }
            Ok::<Vec<Duration>, anyhow::Error>(latencies)
        });
    }
    while let Some(joined) = publishers.join_next().await {
        joined.context("publisher panicked")??;
    }
    let published_in = started.elapsed();
    let mut latencies = Vec::with_capacity(messages);
    while let Some(joined) = consumers.join_next().await {
        latencies.extend(joined.context("consumer panicked")??);
    }
    let consumed_in = started.elapsed();
    latencies.sort_unstable();
    let per_sec = |elapsed: Duration| messages as f64 / elapsed.as_secs_f64().max(1e-9);
    Ok(QueueRunStats {
        messages,
        published_per_sec: per_sec(published_in),
        consumed_per_sec: per_sec(consumed_in),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

/// The nearest-rank `q`-quantile of `sorted`; zero when empty.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_completes_in_process_and_over_http() {
        let dir = tempfile::tempdir().unwrap();
        let args = QueueBenchArgs {
            target: QueueBenchTarget::All,
            messages: 500,
            http_messages: 200,
            batch: 20,
            publishers: 2,
            consumers: 2,
            window: 100,
            message_size: 128,
            dir: dir.path().to_owned(),
            url: None,
            token: None,
            nats_url: None,
            jetstream_messages: 0,
            rounds: 1,
        };
        let stats = in_process(&args).await.unwrap();
        assert_eq!(stats.messages, 500);
        assert!(stats.consumed_per_sec > 0.0 && stats.p99 >= stats.p50);
        let stats = http(&args).await.unwrap();
        assert_eq!(stats.messages, 200);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
