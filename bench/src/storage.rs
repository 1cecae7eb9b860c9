//! `ferrobase-bench storage`: object PUT and GET through the storage HTTP API of a running
//! server, against the disk itself as the ceiling.
//!
//! Phases: 1 KiB objects (ops/s, p50, p99) with many connections, then 1 MiB and 64 MiB
//! objects (MB/s). The ceiling does the same writes straight to a file in the server's data
//! directory, each followed by fsync (what `dd conv=fsync` does), and reads a file back from
//! the page cache. `bench/storage.sh` runs this against a release build and adds `dd`'s own
//! figures.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures::StreamExt;

/// Arguments of `ferrobase-bench storage`.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageBenchArgs {
    /// Base URL of a running server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub url: String,
    /// Bearer token (admin or service for the namespace)
    #[arg(long, env = "FERROBASE_TOKEN")]
    pub token: String,
    /// Namespace the benchmark writes into
    #[arg(long, default_value = "bench")]
    pub ns: String,
    /// A directory on the same disk as the server's data, for the ceiling measurements
    #[arg(long)]
    pub scratch_dir: PathBuf,
    /// Concurrent connections for the 1 KiB phases
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Requests per 1 KiB phase
    #[arg(long, default_value_t = 5000)]
    pub small_requests: usize,
    /// Objects per 1 MiB phase
    #[arg(long, default_value_t = 200)]
    pub medium_objects: usize,
    /// Objects per 64 MiB phase
    #[arg(long, default_value_t = 6)]
    pub large_objects: usize,
}

/// One measured phase.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Phase {
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Phase {
    fn from(latencies: &mut [Duration], elapsed: Duration, bytes_each: usize) -> Phase {
        latencies.sort();
        let at = |q: f64| {
            let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
            latencies[index - 1].as_secs_f64() * 1000.0
        };
        let ops = latencies.len() as f64 / elapsed.as_secs_f64();
        Phase {
            ops_per_sec: ops,
            mb_per_sec: ops * bytes_each as f64 / 1e6,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }
}

/// Ferrobase and ceiling figures for one object size and direction.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Comparison {
    pub ferrobase: Phase,
    pub ceiling: Phase,
    /// Ferrobase throughput over the ceiling's.
    pub ratio: f64,
}

fn compare(ferrobase: Phase, ceiling: Phase) -> Comparison {
    Comparison {
        ferrobase,
        ceiling,
        ratio: ferrobase.ops_per_sec / ceiling.ops_per_sec,
    }
}

/// Runs `requests` calls of `call` over `connections` workers, returning latencies and time.
async fn load<F, Fut>(
    requests: usize,
    connections: usize,
    call: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let call = Arc::new(call);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (next, call) = (next.clone(), call.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= requests {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let start = Instant::now();
                call(index).await?;
                latencies.push(start.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok((all, started.elapsed()))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn put(&self, key: &str, body: reqwest::Body) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/{key}", self.base))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "PUT {key}: {}",
            response.status()
        );
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<usize> {
        let response = self
            .http
            .get(format!("{}/{key}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "GET {key}: {}",
            response.status()
        );
        let mut stream = response.bytes_stream();
        let mut read = 0;
        while let Some(chunk) = stream.next().await {
            read += chunk?.len();
        }
        Ok(read)
    }
}

/// A body of `size` bytes streamed in 1 MiB chunks (never one big buffer).
fn body(size: usize, chunk: &Bytes) -> reqwest::Body {
    if size <= chunk.len() {
        return reqwest::Body::from(chunk.slice(..size));
    }
    let chunk = chunk.clone();
    let count = size / chunk.len();
    reqwest::Body::wrap_stream(
        futures::stream::iter(0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    )
}

/// Object PUT then GET phases of `count` objects of `size` bytes.
async fn object_phases(
    client: &Arc<Client>,
    label: &str,
    size: usize,
    count: usize,
    connections: usize,
) -> anyhow::Result<(Phase, Phase)> {
    let chunk = Bytes::from(vec![0x5au8; size.min(1024 * 1024)]);
    let (mut puts, elapsed) = {
        let client = client.clone();
        let label = label.to_owned();
        load(count, connections, move |i| {
            let client = client.clone();
            let key = format!("{label}/{i}");
            let body = body(size, &chunk);
            async move { client.put(&key, body).await }
        })
        .await?
    };
    let put = Phase::from(&mut puts, elapsed, size);
    let (mut gets, elapsed) = {
        let client = client.clone();
        let label = label.to_owned();
        load(count, connections, move |i| {
            let client = client.clone();
            let key = format!("{label}/{i}");
            async move {
                let read = client.get(&key).await?;
                ensure!(read == size, "GET {key} returned {read} bytes");
                Ok(())
            }
        })
        .await?
    };
    Ok((put, Phase::from(&mut gets, elapsed, size)))
}

/// The disk's ceiling: `count` writes of `size` bytes, each fsynced (like `dd conv=fsync`),
/// then as many reads of a file that is in the page cache.
fn ceiling(dir: &std::path::Path, size: usize, count: usize) -> anyhow::Result<(Phase, Phase)> {
    let block = vec![0x5au8; size.min(1024 * 1024)];
    let mut writes = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let start = Instant::now();
        let path = dir.join(format!("ceiling-{size}-{i}"));
        let mut file = std::fs::File::create(&path)?;
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len());
            file.write_all(&block[..n])?;
            left -= n;
        }
        file.sync_all()?;
        writes.push(start.elapsed());
    }
    let write = Phase::from(&mut writes, started.elapsed(), size);
    let cached = dir.join(format!("ceiling-{size}-0"));
    let mut buffer = vec![0u8; 1024 * 1024];
    let read_once = |buffer: &mut [u8]| -> anyhow::Result<usize> {
        let mut file = std::fs::File::open(&cached)?;
        let mut total = 0;
        loop {
            let n = file.read(buffer)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    };
    read_once(&mut buffer)?;
    let mut reads = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let start = Instant::now();
        ensure!(read_once(&mut buffer)? == size, "short read");
        reads.push(start.elapsed());
    }
    let read = Phase::from(&mut reads, started.elapsed(), size);
    for i in 0..count {
        let _ = std::fs::remove_file(dir.join(format!("ceiling-{size}-{i}")));
    }
    Ok((write, read))
}

/// Everything one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StorageBenchReport {
    pub put_1kib: Comparison,
    pub get_1kib: Comparison,
    pub put_1mib: Comparison,
    pub get_1mib: Comparison,
    pub put_64mib: Comparison,
    pub get_64mib: Comparison,
}

pub async fn run_storage_bench(args: &StorageBenchArgs) -> anyhow::Result<StorageBenchReport> {
    std::fs::create_dir_all(&args.scratch_dir)?;
    let bucket = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let base = format!(
        "{}/v1/storage/{}/{bucket}",
        args.url.trim_end_matches('/'),
        args.ns
    );
    let created = http
        .put(&base)
        .bearer_auth(&args.token)
        .send()
        .await
        .context("creating the bench bucket")?;
    ensure!(
        created.status().is_success(),
        "creating the bucket: {}",
        created.status()
    );
    let client = Arc::new(Client {
        http,
        base,
        token: args.token.clone(),
    });

    let (put_small, get_small) = object_phases(
        &client,
        "small",
        1024,
        args.small_requests,
        args.connections,
    )
    .await?;
    let (put_medium, get_medium) =
        object_phases(&client, "medium", 1024 * 1024, args.medium_objects, 4).await?;
    let (put_large, get_large) =
        object_phases(&client, "large", 64 * 1024 * 1024, args.large_objects, 1).await?;

    let dir = args.scratch_dir.clone();
    let (small_count, medium_count, large_count) = (
        args.small_requests.min(1000),
        args.medium_objects,
        args.large_objects,
    );
    let ceilings = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok((
            ceiling(&dir, 1024, small_count)?,
            ceiling(&dir, 1024 * 1024, medium_count)?,
            ceiling(&dir, 64 * 1024 * 1024, large_count)?,
        ))
    })
    .await??;
    let ((w_small, r_small), (w_medium, r_medium), (w_large, r_large)) = ceilings;
    Ok(StorageBenchReport {
        put_1kib: compare(put_small, w_small),
        get_1kib: compare(get_small, r_small),
        put_1mib: compare(put_medium, w_medium),
        get_1mib: compare(get_medium, r_medium),
        put_64mib: compare(put_large, w_large),
        get_64mib: compare(get_large, r_large),
    })
}

impl StorageBenchReport {
    pub fn print(&self) {
        println!(
            "{:<10} {:>12} {:>10} {:>9} {:>9} | {:>12} {:>10} {:>9} | {:>6}",
            "phase",
            "ops/s",
            "MB/s",
            "p50 ms",
            "p99 ms",
            "disk ops/s",
            "disk MB/s",
            "p99 ms",
            "ratio"
        );
        for (name, c) in [
            ("PUT 1KiB", &self.put_1kib),
            ("GET 1KiB", &self.get_1kib),
            ("PUT 1MiB", &self.put_1mib),
            ("GET 1MiB", &self.get_1mib),
            ("PUT 64MiB", &self.put_64mib),
            ("GET 64MiB", &self.get_64mib),
        ] {
            println!(
                "{:<10} {:>12.1} {:>10.1} {:>9.2} {:>9.2} | {:>12.1} {:>10.1} {:>9.2} | {:>5.2}x",
                name,
                c.ferrobase.ops_per_sec,
                c.ferrobase.mb_per_sec,
                c.ferrobase.p50_ms,
                c.ferrobase.p99_ms,
                c.ceiling.ops_per_sec,
                c.ceiling.mb_per_sec,
                c.ceiling.p99_ms,
                c.ratio
            );
        }
        println!(
            "(disk columns: write+fsync and cached reads in this process, without HTTP or process \
             start; bench/storage.sh adds dd's figures and the targets)"
        );
        println!("{}", serde_json::to_string(self).unwrap_or_default());
    }
}
