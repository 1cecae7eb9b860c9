//! The JetStream runs of `ferrobase-bench queue`: the JetStream queue engine beside plain
//! async-nats, on the same NATS server and with the same closed workload as the other runs.
//!
//! - **engine**: [`JetStreamQueue`] called in-process (no HTTP), with its maintenance running.
//! - **plain**: what an application would write against JetStream directly: each message
//!   published with `Nats-Msg-Id`-less JetStream publishes (all of a batch in flight at once,
//!   answered when every publish ack arrived), consumed through a durable pull consumer's
//!   message stream (up to `batch` of the messages already received per pull), and acked with
//!   `+ACK` (fire and forget, flushed per batch).
//!
//! Rounds alternate engine and plain, each on fresh streams under a prefix of its own that is
//! deleted afterwards; the summary gives the median of each figure over the rounds and the
//! engine/plain ratios.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use ferrobase_core::SystemClock;
use ferrobase_kv::{KvLimits, KvRecordStore, MemoryEngine};
use ferrobase_queue::{JetStreamConfig, JetStreamQueue, Queue, QueueLimits};
use futures::{FutureExt, StreamExt};

use crate::queue::{BenchQueue, QueueBenchArgs, QueueRunStats, run, run_engine};

/// The engine's figures beside plain async-nats's, medians over the rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct JetStreamComparison {
    pub engine: QueueRunStats,
    pub plain: QueueRunStats,
}

impl JetStreamComparison {
    /// Engine over plain: throughput ratios (higher is better for the engine) and latency
    /// ratios (lower is better).
    pub fn lines(&self, rounds: usize, batch: usize) -> Vec<String> {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let latency = |a: Duration, b: Duration| ratio(a.as_secs_f64(), b.as_secs_f64());
        vec![
            self.engine
                .line(&format!("jetstream-engine rounds={rounds}"), batch),
            self.plain
                .line(&format!("jetstream-plain rounds={rounds}"), batch),
            format!(
                "queue jetstream engine/plain consumed_per_sec={:.2} published_per_sec={:.2} \
                 e2e_p50={:.2} e2e_p99={:.2} (throughput target >= 0.70)",
                ratio(self.engine.consumed_per_sec, self.plain.consumed_per_sec),
                ratio(self.engine.published_per_sec, self.plain.published_per_sec),
                latency(self.engine.p50, self.plain.p50),
                latency(self.engine.p99, self.plain.p99),
            ),
        ]
    }
}

/// Runs `rounds` rounds of engine then plain against the server at `url`.
pub async fn compare(
    url: &str,
    args: &QueueBenchArgs,
    rounds: usize,
    messages: usize,
) -> anyhow::Result<JetStreamComparison> {
    let mut engine_runs = Vec::new();
    let mut plain_runs = Vec::new();
    for round in 0..rounds {
        // The random tail of a ULID: unique enough, and short enough for a prefix.
        let ulid = ulid::Ulid::new().to_string().to_lowercase();
        let prefix = format!("bench{round}-{}", &ulid[16..]);
        let engine = engine_run(url, &prefix, args, messages).await;
        cleanup(url, &prefix).await;
        let engine = engine?;
        println!(
            "{}",
            engine.line(&format!("jetstream-engine round={round}"), args.batch)
        );
        engine_runs.push(engine);
        let plain = plain_run(url, &prefix, args, messages).await;
        cleanup(url, &prefix).await;
        let plain = plain?;
        println!(
            "{}",
            plain.line(&format!("jetstream-plain round={round}"), args.batch)
        );
        plain_runs.push(plain);
    }
    Ok(JetStreamComparison {
        engine: median(&engine_runs),
        plain: median(&plain_runs),
    })
}

async fn engine_run(
    url: &str,
    prefix: &str,
    args: &QueueBenchArgs,
    messages: usize,
) -> anyhow::Result<QueueRunStats> {
    let clock = Arc::new(SystemClock);
    // The bench queue emits no events; the record store is only there to satisfy the engine.
    let kv = Arc::new(MemoryEngine::new(clock.clone(), KvLimits::default()));
    let config = JetStreamConfig {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        replicas: 1,
    };
    let engine: Arc<dyn Queue> = Arc::new(
        JetStreamQueue::connect(
            config,
            clock,
            QueueLimits::default(),
            Arc::new(KvRecordStore::new(kv)),
        )
        .await
        .with_context(|| format!("connecting the JetStream engine to {url}"))?,
    );
    run_engine(engine, args, messages).await
}

/// Plain async-nats: one stream, one durable pull consumer, a message stream per consumer task.
struct Plain {
    client: async_nats::Client,
    js: jetstream::Context,
    subject: String,
    streams: Vec<tokio::sync::Mutex<consumer::pull::Stream>>,
}

async fn plain_run(
    url: &str,
    prefix: &str,
    args: &QueueBenchArgs,
    messages: usize,
) -> anyhow::Result<QueueRunStats> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let js = jetstream::new(client.clone());
    let subject = format!("{prefix}.plain");
    let stream = js
        .create_stream(stream::Config {
            name: format!("{prefix}_plain"),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .context("creating the plain stream")?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(300),
            max_ack_pending: 1_000_000,
            ..Default::default()
        })
        .await
        .context("creating the plain pull consumer")?;
    let mut streams = Vec::with_capacity(args.consumers);
    for _ in 0..args.consumers {
        let messages = consumer
            .stream()
            .max_messages_per_batch(args.batch.max(1))
            .messages()
            .await
            .context("opening a pull consumer stream")?;
        streams.push(tokio::sync::Mutex::new(messages));
    }
    let target = Arc::new(Plain {
        client,
        js,
        subject,
        streams,
    });
    run(target, args, messages).await
}

#[async_trait]
impl BenchQueue for Plain {
    async fn publish(&self, bodies: Vec<Bytes>) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(bodies.len());
        for body in bodies {
            acks.push(self.js.publish(self.subject.clone(), body).await?);
        }
        for ack in acks {
            ack.await?;
        }
        Ok(())
    }

    async fn pull(&self, max: usize) -> anyhow::Result<Vec<(Bytes, String)>> {
        // One stream per consumer task: take whichever is free.
        let mut messages = loop {
            if let Some(free) = self.streams.iter().find_map(|s| s.try_lock().ok()) {
                break free;
            }
            tokio::task::yield_now().await;
        };
        let first = match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => bail!("the pull consumer stream ended"),
            Ok(Some(message)) => message?,
        };
        let mut got = vec![first];
        while got.len() < max {
            match messages.next().now_or_never() {
                Some(Some(message)) => got.push(message?),
                _ => break,
            }
        }
        got.into_iter()
            .map(|message| {
                let reply = message
                    .reply
                    .as_ref()
                    .context("a JetStream message without its ack subject")?
                    .to_string();
                Ok((message.payload.clone(), reply))
            })
            .collect()
    }

    async fn ack(&self, receipts: Vec<String>) -> anyhow::Result<()> {
        for reply in receipts {
            self.client
                .publish(reply, Bytes::from_static(b"+ACK"))
                .await?;
        }
        self.client.flush().await?;
        Ok(())
    }
}

/// Deletes every stream whose name starts with `prefix` (buckets are streams too).
async fn cleanup(url: &str, prefix: &str) {
    let Ok(client) = async_nats::connect(url).await else {
        return;
    };
    let js = jetstream::new(client);
    let mut names = js.stream_names();
    let mut doomed = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        if name.starts_with(prefix) || name.starts_with(&format!("KV_{prefix}")) {
            doomed.push(name);
        }
    }
    for name in doomed {
        if let Err(error) = js.delete_stream(&name).await {
            tracing::warn!(%error, name, "could not delete a bench stream");
        }
    }
}

/// The median of each figure over `runs` (not one run's figures).
fn median(runs: &[QueueRunStats]) -> QueueRunStats {
    fn mid<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
        values.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
        values[values.len() / 2]
    }
    QueueRunStats {
        messages: runs.first().map_or(0, |r| r.messages),
        published_per_sec: mid(runs.iter().map(|r| r.published_per_sec).collect()),
        consumed_per_sec: mid(runs.iter().map(|r| r.consumed_per_sec).collect()),
        p50: mid(runs.iter().map(|r| r.p50).collect()),
        p99: mid(runs.iter().map(|r| r.p99).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueBenchTarget;
    use ferrobase_queue::jetstream::NatsServer;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_comparison_completes_and_cleans_up() {
        let nats = NatsServer::start();
        let args = QueueBenchArgs {
            target: QueueBenchTarget::JetStream,
            messages: 0,
            http_messages: 0,
            batch: 20,
            publishers: 2,
            consumers: 2,
            window: 100,
            message_size: 128,
            dir: std::env::temp_dir(),
            url: None,
            token: None,
            nats_url: Some(nats.url().to_owned()),
            jetstream_messages: 300,
            rounds: 1,
        };
        let comparison = compare(nats.url(), &args, 1, 300).await.unwrap();
        assert_eq!(comparison.engine.messages, 300);
        assert_eq!(comparison.plain.messages, 300);
        assert!(comparison.plain.consumed_per_sec > 0.0);
        assert!(comparison.lines(1, 20)[2].contains("engine/plain"));
        let client = async_nats::connect(nats.url()).await.unwrap();
        let left: Vec<String> = jetstream::new(client)
            .stream_names()
            .filter_map(|name| async move { name.ok() })
            .collect()
            .await;
        assert!(left.is_empty(), "bench streams left behind: {left:?}");
    }
}
