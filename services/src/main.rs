//! The `ferrobase` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use ferrobase::cli::{Cli, Command, KeysCommand};

/// Profiles of durable KV writes spent about a fifth of the server's CPU in glibc's malloc
/// and free (sled copies and drops tree nodes on every write, hyper and serde allocate per
/// request); mimalloc's thread-local free lists make those calls cheap.
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => ferrobase::server::serve(args.config()?).await,
            Command::Fn(command) => ferrobase::cli::functions::run(command).await,
            Command::Trigger(command) => ferrobase::cli::triggers::run_trigger(command).await,
            Command::Rule(command) => ferrobase::cli::triggers::run_rule(command).await,
            Command::Dlq(command) => ferrobase::cli::triggers::run_dlq(command).await,
            Command::Token(args) => {
                let token = ferrobase::cli::mint_token(&args)?;
                println!("{token}");
                Ok(())
            }
            Command::Keys(KeysCommand::Create(args)) => {
                println!("{}", ferrobase::cli::create_key_command(&args)?);
                Ok(())
            }
            Command::Keys(KeysCommand::List(args)) => {
                for line in ferrobase::cli::list_keys_command(&args)? {
                    println!("{line}");
                }
                Ok(())
            }
            Command::Keys(KeysCommand::Revoke(args)) => {
                ferrobase::cli::revoke_key_command(&args)?;
                println!("revoked {}", args.access_key_id);
                Ok(())
            }
            Command::Kv(command) => ferrobase::cli::data::run_kv(command).await,
            Command::Queue(command) => ferrobase::cli::data::run_queue(command).await,
            Command::Storage(command) => ferrobase::cli::data::run_storage(command).await,
            Command::Policy(command) => ferrobase::cli::data::run_policy(command).await,
            Command::Completions(args) => {
                ferrobase::cli::print_completions(&args);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
