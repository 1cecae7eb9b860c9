//! `ferrobase-bench kv`: a closed-loop load generator for the KV HTTP API.
//!
//! Two phases run one after the other against a running server:
//!
//! 1. **PUT**: durable writes of `value_size` bytes spread over the key space; this also
//!    preloads every key the next phase reads.
//! 2. **GET**: reads of the same keys.
//!
//! Each phase starts `connections` workers that take request numbers from a shared budget until
//! `requests` have been sent. Each worker owns a client whose pool holds one connection, so it
//! keeps exactly one HTTP/1.1 connection alive across both phases. (With one client shared by all
//! workers, a checkout that races a connection being returned opens an extra connection, and its
//! connect time lands in the samples.)
//!
//! Every request's latency, from send to the last body byte and errors included, is kept in a
//! per-worker `Vec`; the vectors are merged and sorted once at the end of the phase for the
//! percentiles. Throughput is requests over the wall time of the whole phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use rand::RngCore;
use reqwest::{Client, StatusCode};
use tokio::task::JoinSet;

/// A request that takes longer than this counts as an error rather than hanging the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of an error response body is echoed to stderr.
const ERROR_BODY_PREVIEW: usize = 512;

/// Options of `ferrobase-bench kv`.
#[derive(Debug, Clone, clap::Args)]
pub struct KvBenchArgs {
    /// Base URL of a running server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub url: String,
    /// Bearer token (admin or service for the namespace)
    #[arg(long, env = "FERROBASE_TOKEN")]
    pub token: String,
    /// Namespace the benchmark writes into
    #[arg(long, default_value = "bench")]
    pub ns: String,
    /// Concurrent workers, each keeping one HTTP/1.1 connection busy
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Size of each written value in bytes
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Requests per phase
    #[arg(long, default_value_t = 100_000)]
    pub requests: usize,
    /// Distinct keys
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
}

/// Results of both phases of a KV benchmark run.
#[derive(Debug, Clone)]
pub struct KvBenchReport {
    pub put: PhaseStats,
    pub get: PhaseStats,
}

impl KvBenchReport {
    /// Prints one line per phase, in a `key=value` form that scripts can parse.
    pub fn print(&self) {
        println!("{}", self.put.summary_line(Phase::Put));
        println!("{}", self.get.summary_line(Phase::Get));
    }
}

/// Throughput and latency of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseStats {
    /// Requests sent, errors included.
    pub requests: usize,
    /// Requests that failed: non-2xx answers, transport errors and timeouts.
    pub errors: usize,
    pub ops_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl PhaseStats {
    fn from_samples(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let requests = latencies.len();
        let secs = elapsed.as_secs_f64();
        Self {
            requests,
            errors,
            ops_per_sec: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
        }
    }

    fn summary_line(&self, phase: Phase) -> String {
        format!(
            "kv {} ops_per_sec={:.1} p50_us={} p99_us={} errors={}",
            phase.label(),
            self.ops_per_sec,
            self.p50.as_micros(),
            self.p99.as_micros(),
            self.errors
        )
    }
}

/// The `q`-quantile (0.0..=1.0) of `sorted` by the nearest-rank method: the smallest sample
/// such that at least `q` of all samples are less than or equal to it. Zero when empty.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Put,
    Get,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Put => "PUT",
            Phase::Get => "GET",
        }
    }
}

/// What every worker of a run shares.
#[derive(Debug)]
struct Target {
    /// `{url}/v1/kv/{ns}/`, to which the key is appended.
    key_base: String,
    token: String,
    /// Keys used: `keys`, or fewer when a phase has fewer requests, so that GET only reads keys
    /// that PUT wrote.
    key_space: usize,
    value_size: usize,
}

impl Target {
    fn key_url(&self, request: usize) -> String {
        format!("{}k{:08}", self.key_base, request % self.key_space)
    }
}

/// Hands out request numbers until the phase's budget is spent.
#[derive(Debug)]
struct Budget {
    next: AtomicUsize,
    total: usize,
}

impl Budget {
    fn take(&self) -> Option<usize> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < self.total).then_some(n)
    }
}

/// What one worker measured.
#[derive(Debug, Default)]
struct WorkerSamples {
    latencies: Vec<Duration>,
    errors: usize,
}

/// Runs the PUT phase, then the GET phase, against the server at `args.url`.
///
/// Fails before any load when the arguments are out of range or when a first probe write is
/// refused (server down, wrong token), so that a misconfigured run does not send a whole
/// budget of doomed requests.
pub async fn run_kv_bench(args: &KvBenchArgs) -> anyhow::Result<KvBenchReport> {
    ensure!(args.connections >= 1, "--connections must be at least 1");
    ensure!(args.requests >= 1, "--requests must be at least 1");
    ensure!(args.keys >= 1, "--keys must be at least 1");

    let clients = (0..args.connections.min(args.requests))
        .map(|_| {
            Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .timeout(REQUEST_TIMEOUT)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .context("building the HTTP clients")?;
    let target = Arc::new(Target {
        key_base: format!("{}/v1/kv/{}/", args.url.trim_end_matches('/'), args.ns),
        token: args.token.clone(),
        key_space: args.keys.min(args.requests),
        value_size: args.value_size,
    });

    probe(&clients[0], &target).await?;
    let put = run_phase(&target, &clients, Phase::Put, args.requests).await?;
    let get = run_phase(&target, &clients, Phase::Get, args.requests).await?;
    Ok(KvBenchReport { put, get })
}

/// Writes key 0 once and insists on a 2xx answer.
async fn probe(client: &Client, target: &Target) -> anyhow::Result<()> {
    let url = target.key_url(0);
    let response = client
        .put(&url)
        .bearer_auth(&target.token)
        .body(vec![0u8; target.value_size])
        .send()
        .await
        .with_context(|| format!("probe PUT {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        bail!("probe PUT {url} answered {status}: {}", preview(&body));
    }
    Ok(())
}

/// Runs one phase with one worker per client.
async fn run_phase(
    target: &Arc<Target>,
    clients: &[Client],
    phase: Phase,
    requests: usize,
) -> anyhow::Result<PhaseStats> {
    let workers = clients.len();
    let budget = Arc::new(Budget {
        next: AtomicUsize::new(0),
        total: requests,
    });
    let error_reported = Arc::new(AtomicBool::new(false));
    // Values are made before the clock starts; ThreadRng cannot cross an await anyway.
    let mut rng = rand::rng();
    let values: Vec<Vec<u8>> = (0..workers)
        .map(|_| {
            let mut value = vec![0u8; target.value_size];
            rng.fill_bytes(&mut value);
            value
        })
        .collect();

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (client, value) in clients.iter().zip(values) {
        tasks.spawn(worker(
            client.clone(),
            Arc::clone(target),
            phase,
            Arc::clone(&budget),
            Arc::clone(&error_reported),
            value,
            requests / workers + 1,
        ));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let samples = joined.context("benchmark worker panicked")?;
        latencies.extend(samples.latencies);
        errors += samples.errors;
    }
    Ok(PhaseStats::from_samples(
        latencies,
        errors,
        started.elapsed(),
    ))
}

async fn worker(
    client: Client,
    target: Arc<Target>,
    phase: Phase,
    budget: Arc<Budget>,
    error_reported: Arc<AtomicBool>,
    mut value: Vec<u8>,
    expected: usize,
) -> WorkerSamples {
    let mut samples = WorkerSamples {
        latencies: Vec::with_capacity(expected),
        errors: 0,
    };
    while let Some(n) = budget.take() {
        let url = target.key_url(n);
        let request = match phase {
            Phase::Put => {
                stamp(&mut value, n);
                client.put(&url).body(Bytes::copy_from_slice(&value))
            }
            Phase::Get => client.get(&url),
        };
        let started = Instant::now();
        // The body is read to the end so that the connection goes back to the pool.
        let outcome = async {
            let response = request.bearer_auth(&target.token).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        samples.latencies.push(started.elapsed());
        let failure = match outcome {
            Ok((status, _)) if status.is_success() => continue,
            Ok((status, body)) => Failure::Status(status, body),
            Err(err) => Failure::Transport(err),
        };
        samples.errors += 1;
        if !error_reported.swap(true, Ordering::Relaxed) {
            eprintln!(
                "kv {} first error: {url}: {}",
                phase.label(),
                failure.describe()
            );
        }
    }
    samples
}

enum Failure {
    Status(StatusCode, Bytes),
    Transport(reqwest::Error),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Status(status, body) => format!("{status}: {}", preview(body)),
            Failure::Transport(err) => format!("{err:#}"),
        }
    }
}

/// Makes each written value differ from the last, so that nothing can skip a write of
/// identical bytes.
fn stamp(value: &mut [u8], n: usize) {
    let tag = (n as u64).to_le_bytes();
    let len = value.len().min(tag.len());
    value[..len].copy_from_slice(&tag[..len]);
}

fn preview(body: &[u8]) -> String {
    let shown = &body[..body.len().min(ERROR_BODY_PREVIEW)];
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if body.len() > shown.len() {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentile_of_nothing_is_zero() {
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn percentile_of_one_sample_is_that_sample() {
        for q in [0.0, 0.5, 0.99, 1.0] {
            assert_eq!(percentile(&[ms(7)], q), ms(7));
        }
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let hundred: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&hundred, 0.0), ms(1));
        assert_eq!(percentile(&hundred, 0.50), ms(50));
        assert_eq!(percentile(&hundred, 0.99), ms(99));
        assert_eq!(percentile(&hundred, 1.0), ms(100));

        let thousand: Vec<Duration> = (1..=1000).map(ms).collect();
        assert_eq!(percentile(&thousand, 0.50), ms(500));
        assert_eq!(percentile(&thousand, 0.99), ms(990));

        // Ranks that fall between samples round up: 0.5 * 3 = 1.5 -> 2nd sample.
        assert_eq!(percentile(&[ms(1), ms(2), ms(3)], 0.5), ms(2));
        // 0.99 * 10 = 9.9 -> 10th sample: with few samples p99 is the maximum.
        let ten: Vec<Duration> = (1..=10).map(ms).collect();
        assert_eq!(percentile(&ten, 0.99), ms(10));
    }

    #[test]
    fn percentile_clamps_out_of_range_quantiles() {
        let samples = [ms(1), ms(2), ms(3)];
        assert_eq!(percentile(&samples, -1.0), ms(1));
        assert_eq!(percentile(&samples, 2.0), ms(3));
    }

    #[test]
    fn phase_stats_sort_merged_samples_and_compute_throughput() {
        // Shuffled merge of two workers' samples: 1..=100 ms.
        let mut latencies: Vec<Duration> = (51..=100).rev().map(ms).collect();
        latencies.extend((1..=50).map(ms));
        let stats = PhaseStats::from_samples(latencies, 3, Duration::from_secs(4));
        assert_eq!(
            stats,
            PhaseStats {
                requests: 100,
                errors: 3,
                ops_per_sec: 25.0,
                p50: ms(50),
                p99: ms(99),
            }
        );
    }

    #[test]
    fn phase_stats_of_an_instant_phase_report_zero_throughput() {
        let stats = PhaseStats::from_samples(Vec::new(), 0, Duration::ZERO);
        assert_eq!(stats.ops_per_sec, 0.0);
        assert_eq!(stats.p99, Duration::ZERO);
    }

    #[test]
    fn summary_line_has_the_documented_shape() {
        let stats = PhaseStats {
            requests: 10,
            errors: 0,
            ops_per_sec: 12345.64,
            p50: Duration::from_micros(123),
            p99: Duration::from_micros(456),
        };
        assert_eq!(
            stats.summary_line(Phase::Put),
            "kv PUT ops_per_sec=12345.6 p50_us=123 p99_us=456 errors=0"
        );
        assert!(stats.summary_line(Phase::Get).starts_with("kv GET "));
    }

    #[test]
    fn keys_wrap_around_the_key_space() {
        let target = Target {
            key_base: "http://h/v1/kv/bench/".into(),
            token: String::new(),
            key_space: 3,
            value_size: 0,
        };
        assert_eq!(target.key_url(0), "http://h/v1/kv/bench/k00000000");
        assert_eq!(target.key_url(4), "http://h/v1/kv/bench/k00000001");
    }

    #[test]
    fn stamp_fits_short_values() {
        let mut empty: [u8; 0] = [];
        stamp(&mut empty, 5);
        let mut short = [0u8; 3];
        stamp(&mut short, 0x0102_0304);
        assert_eq!(short, [4, 3, 2]);
        let mut long = [9u8; 10];
        stamp(&mut long, 1);
        assert_eq!(long, [1, 0, 0, 0, 0, 0, 0, 0, 9, 9]);
    }
}
