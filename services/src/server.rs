//! Starting and stopping the server.
//!
//! [`serve`] is what `ferrobase serve` runs: it sets up logging, opens the engines, binds the
//! listener and calls [`run`]. Tests call [`build`] and [`run`] directly with a listener on
//! `127.0.0.1:0` and a shutdown future of their own.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use ferrobase_core::SystemClock;
use ferrobase_kv::{KvEngine, KvLimits, KvRecordStore, MemoryEngine, SledEngine};
use ferrobase_queue::{EmbeddedQueue, JetStreamQueue};
use tokio::net::TcpListener;

use crate::auth::TokenVerifier;
use crate::config::{Config, KvEngineKind, LogFormat};
use crate::state::{AppState, HttpLimits};

/// Opens everything `config` describes and returns the state the routers share.
pub async fn build(config: &Config) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let limits = KvLimits {
        max_value_bytes: config.kv.max_value_bytes,
    };
    let kv: Arc<dyn KvEngine> = match config.kv.engine {
        KvEngineKind::Sled => {
            let dir = config.data_dir.join("kv");
            Arc::new(
                SledEngine::open(&dir, Arc::new(SystemClock), limits)
                    .with_context(|| format!("opening the KV store in {}", dir.display()))?,
            )
        }
        KvEngineKind::Memory => Arc::new(MemoryEngine::new(Arc::new(SystemClock), limits)),
    };
    let accounts = Arc::new(
        crate::auth::accounts::Accounts::new(
            Arc::new(KvRecordStore::new(kv.clone())),
            Arc::new(SystemClock),
            crate::auth::accounts::AccountsOptions::from_config(&config.auth),
        )
        .context("starting the auth service")?,
    );
    let verifier = Arc::new(
        TokenVerifier::load(&config.auth, &config.data_dir)?.with_account_tokens(accounts.clone()),
    );
    let limits = HttpLimits {
        max_value_bytes: config.kv.max_value_bytes,
        max_txn_bytes: config.kv.max_txn_bytes,
    };
    // Queue events reach the change log through the KV engine's record store.
    let queue_records = Arc::new(KvRecordStore::new(kv.clone()));
    let queue: Arc<dyn ferrobase_queue::Queue> = match config.queue.jetstream()? {
        None => {
            let queue_dir = config.data_dir.join("queue");
            Arc::new(
                EmbeddedQueue::open(
                    &queue_dir,
                    Arc::new(SystemClock),
                    config.queue.limits(),
                    queue_records,
                )
                .with_context(|| format!("opening the queue store in {}", queue_dir.display()))?,
            )
        }
        Some(nats) => {
            let url = nats.url.clone();
            Arc::new(
                JetStreamQueue::connect(
                    nats,
                    Arc::new(SystemClock),
                    config.queue.limits(),
                    queue_records,
                )
                .await
                .with_context(|| format!("opening the JetStream queue engine at {url}"))?,
            )
        }
    };
    let storage = Arc::new(
        ferrobase_storage::Storage::new(
            ferrobase_storage::Backend::open(&config.storage.backend_config(&config.data_dir)?)
                .context("opening the object storage backend")?,
            Arc::new(KvRecordStore::new(kv.clone())),
            Arc::new(SystemClock),
        )
        .with_etag_policy(config.storage.etag_policy())
        .with_upload_lifetime(config.storage.upload_lifetime()),
    );
    let fetch = Arc::new(config.functions.fetch_policy()?);
    let host = crate::host::ServiceHost::new(kv.clone(), fetch.clone())
        .with_queue(queue.clone())
        .with_storage(storage.clone());
    let functions = ferrobase_functions::FunctionService::start(
        Arc::new(KvRecordStore::new(kv.clone())),
        Arc::new(host),
        config.functions.runtime_config(fetch),
    )
    .context("starting the function runtime")?;
    let triggers = ferrobase_functions::triggers::TriggerService::start(
        Arc::new(KvRecordStore::new(kv.clone())),
        kv.clone(),
        functions.clone(),
        Some(Arc::new(crate::host::QueueRules::new(queue.clone()))),
        ferrobase_functions::triggers::TriggerConfig::default(),
    )
    .await
    .context("resuming triggers and rules")?;
    Ok(AppState::new(kv, verifier, limits)
        .with_queue(queue)
        .with_functions(functions)
        .with_triggers(triggers)
        .with_storage(storage)
        .with_accounts(accounts))
}

/// Serves the API on `listener` until `shutdown` resolves, then drains: stops accepting, ends
/// event streams, lets in-flight requests finish (up to the configured grace), and flushes.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = crate::routes::router(state.clone(), &config.cors)?;
    let maintenance = tokio::spawn(ferrobase_kv::engine::run_maintenance(
        state.kv.clone(),
        config.kv.maintenance_interval,
        config.events.retention(),
        {
            let state = state.clone();
            async move { state.shutdown_signal().await }
        },
    ));
    let queue_maintenance = state.queue.clone().map(|queue| {
        let state = state.clone();
        tokio::spawn(ferrobase_queue::run_maintenance(
            queue,
            config.queue.maintenance_interval,
            async move { state.shutdown_signal().await },
        ))
    });
    let draining = state.clone();
    let server = crate::serving::serve(
        listener,
        app,
        config.http.clone(),
        crate::serving::ErrorFormat::Json,
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            draining.begin_shutdown();
        },
    );
    let grace = config.shutdown_grace;
    let served = tokio::spawn(server);
    let mut served = std::pin::pin!(served);
    tokio::select! {
        result = &mut served => result.context("server task")?,
        _ = async {
            state.shutdown_signal().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
        }
    }
    maintenance.abort();
    if let Some(task) = queue_maintenance {
        task.abort();
    }
    if let Some(queue) = &state.queue {
        queue.flush().await.context("flushing the queue store")?;
    }
    state.kv.flush().await.context("flushing the KV store")?;
    tracing::info!("stopped");
    Ok(())
}

/// `ferrobase serve`: logs, engines, listener, and shutdown on SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(config.log_format);
    let state = build(&config).await?;
    let (state, s3) = crate::s3::start(state, &config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %config.data_dir.display(), "listening");
    // Printed on stdout so scripts and test harnesses can learn a port chosen by the OS.
    println!("ferrobase listening on http://{address}");
    let result = run(listener, state.clone(), &config, termination_signal()).await;
    // The S3 endpoint drains with the HTTP API (both stop on the same shutdown signal).
    state.begin_shutdown();
    s3.finish(config.shutdown_grace).await;
    result
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROBASE_LOG")
        // s3s logs every client error (a 404, a bad signature) at error level; the S3
        // endpoint logs real failures itself.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves on SIGINT or SIGTERM.
async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
