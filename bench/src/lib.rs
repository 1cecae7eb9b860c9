//! `ferrobase-bench`: Ferrobase's load generators and in-process benchmarks.
//!
//! A crate of its own so that the server carries none of the benchmarks' code or
//! dependencies (async-nats for the plain-NATS comparison, temporary directories). Each module
//! is one `ferrobase-bench <area>` command; the shell scripts beside this crate (`bench/*.sh`)
//! start the servers they compare with and call these commands. `bench/README.md` has the
//! figures and how to read them.
//!
//! - [`kv`]: KV GET and durable PUT over HTTP against a running server.
//! - [`functions`]: invocation latency, throughput, cold start and memory, beside `node -e`.
//! - [`triggers`]: change event to function start through a rule, and the highest sustained rate.
//! - [`queue`]: publish→ack throughput and latency, in-process and over HTTP; [`queue_nats`]
//!   compares the JetStream engine with plain async-nats on the same server.
//! - [`storage`]: object PUT and GET through the storage API against the disk's own speed.

pub mod functions;
pub mod kv;
pub mod queue;
pub mod queue_nats;
pub mod storage;
pub mod triggers;

pub use kv::percentile;

/// The `ferrobase-bench` commands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// KV GET and durable PUT throughput and latency over HTTP.
    Kv(kv::KvBenchArgs),
    /// Function invocation latency, throughput, cold start and memory, beside `node -e`.
    Functions(functions::FunctionsBenchArgs),
    /// Change-event to function-start latency through a rule, and the highest sustained rate.
    Triggers(triggers::TriggersBenchArgs),
    /// Queue publish→ack throughput and end-to-end latency, in-process and over HTTP.
    Queue(queue::QueueBenchArgs),
    /// Object PUT/GET through the storage API against the disk's own speed.
    Storage(storage::StorageBenchArgs),
}

/// Runs one command and prints its report.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Triggers(args) => triggers::run_triggers_bench(&args).await,
        BenchCommand::Functions(args) => functions::run_functions_bench(&args).await,
        BenchCommand::Kv(args) => {
            kv::run_kv_bench(&args).await?.print();
            Ok(())
        }
        BenchCommand::Queue(args) => queue::run_queue_bench(&args).await,
        BenchCommand::Storage(args) => {
            storage::run_storage_bench(&args).await?.print();
            Ok(())
        }
    }
}
