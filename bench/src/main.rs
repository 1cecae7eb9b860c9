//! The `ferrobase-bench` binary: parses the command line and runs one benchmark.

use std::process::ExitCode;

use clap::Parser;

/// Ferrobase's benchmarks (see bench/README.md).
#[derive(Debug, Parser)]
#[command(name = "ferrobase-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: ferrobase_bench::BenchCommand,
}

/// The server's allocator, so that in-process benchmarks measure what `ferrobase serve` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ferrobase_bench::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
