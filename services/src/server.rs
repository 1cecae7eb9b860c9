//! Starting and stopping the server.
//!
//! [`serve`] is what `ferrobase serve` runs: it sets up logging, opens the engines, binds the
//! listener and calls [`run`]. Tests call [`build`] and [`run`] directly with a listener on
//! `127.0.0.1:0` and a shutdown future of their own.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use ferrobase_core::{Clock, SystemClock};
use ferrobase_kv::{KvEngine, KvLimits, KvRecordStore, MemoryEngine, SledEngine};
use ferrobase_queue::{EmbeddedQueue, JetStreamQueue};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::auth::TokenVerifier;
use crate::background::Background;
use crate::config::{Config, KvEngineKind, Listen, LogFormat};
use crate::state::{AppState, HttpLimits, Services};

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
    let verifier = TokenVerifier::load(&config.auth, &config.data_dir)?;
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
    let foundation = Foundation {
        kv: kv.clone(),
        queue,
        storage,
        clock: Arc::new(SystemClock),
        functions: config
            .functions
            .runtime_config(Arc::new(config.functions.fetch_policy()?)),
        triggers: ferrobase_functions::triggers::TriggerConfig::default(),
        accounts: crate::auth::accounts::AccountsOptions::from_config(&config.auth),
    };
    let services = start_services(foundation).await?;
    let verifier = Arc::new(verifier.with_account_tokens(services.accounts.clone()));
    Ok(AppState::new(kv, verifier, limits, services))
}

/// What the services run on and how they are set up: the engines a server opened from its
/// config, or (in tests and benchmarks) the memory engines.
#[derive(Debug)]
pub struct Foundation {
    pub kv: Arc<dyn KvEngine>,
    pub queue: Arc<dyn ferrobase_queue::Queue>,
    pub storage: Arc<ferrobase_storage::Storage>,
    /// The auth service's clock (the function runtime's is in its settings).
    pub clock: Arc<dyn Clock>,
    /// The function runtime's settings, with the fetch policy its host applies too.
    pub functions: ferrobase_functions::FunctionsConfig,
    pub triggers: ferrobase_functions::triggers::TriggerConfig,
    pub accounts: crate::auth::accounts::AccountsOptions,
}

impl Foundation {
    /// The embedded engines beside `kv`: a queue store in `dir/queue` with `queue_limits` and
    /// objects on the local file system in `dir/objects`, with default settings otherwise. For
    /// tests and benchmarks, which build a whole server without a config file.
    pub fn embedded(
        kv: Arc<dyn KvEngine>,
        dir: &std::path::Path,
        clock: Arc<dyn Clock>,
        queue_limits: ferrobase_queue::QueueLimits,
    ) -> anyhow::Result<Foundation> {
        let records = Arc::new(KvRecordStore::new(kv.clone()));
        let queue = EmbeddedQueue::open(
            &dir.join("queue"),
            clock.clone(),
            queue_limits,
            records.clone(),
        )
        .context("opening the queue store")?;
        let backend = ferrobase_storage::Backend::open(&ferrobase_storage::BackendConfig::Local {
            root: dir.join("objects"),
        })
        .context("opening the object storage backend")?;
        Ok(Foundation {
            queue: Arc::new(queue),
            storage: Arc::new(ferrobase_storage::Storage::new(
                backend,
                records,
                clock.clone(),
            )),
            kv,
            clock,
            functions: ferrobase_functions::FunctionsConfig::default(),
            triggers: ferrobase_functions::triggers::TriggerConfig::default(),
            accounts: crate::auth::accounts::AccountsOptions::from_config(&Default::default()),
        })
    }
}

/// Starts the services on `foundation`, wired to each other as every server runs them:
/// functions reach KV, queues and storage; rules deliver change-log events and queue messages
/// to functions; the auth service keeps its records in the KV engine's record store.
pub async fn start_services(foundation: Foundation) -> anyhow::Result<Services> {
    let Foundation {
        kv,
        queue,
        storage,
        clock,
        functions,
        triggers,
        accounts,
    } = foundation;
    let records = Arc::new(KvRecordStore::new(kv.clone()));
    let accounts = Arc::new(
        crate::auth::accounts::Accounts::new(records.clone(), clock.clone(), accounts)
            .context("starting the auth service")?,
    );
    let host = crate::host::ServiceHost::new(
        kv.clone(),
        queue.clone(),
        storage.clone(),
        functions.fetch.clone(),
    );
    let functions =
        ferrobase_functions::FunctionService::start(records.clone(), Arc::new(host), functions)
            .context("starting the function runtime")?;
    let triggers = ferrobase_functions::triggers::TriggerService::start(
        records,
        kv,
        functions.clone(),
        Some(Arc::new(crate::host::QueueRules::new(queue.clone()))),
        triggers,
    )
    .await
    .context("resuming triggers and rules")?;
    Ok(Services {
        queue,
        storage,
        functions,
        triggers,
        accounts,
    })
}

/// Serves the API on `listener` until `shutdown` resolves, then drains: stops accepting, ends
/// event streams, lets in-flight requests finish, and stops the background work
/// ([`Background::shutdown`]), all within the configured grace.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_endpoints(listener, state, config, shutdown, None).await
}

/// [`run`], also draining the S3 endpoint when there is one.
async fn run_endpoints(
    listener: TcpListener,
    state: AppState,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    s3: Option<crate::s3::S3Endpoint>,
) -> anyhow::Result<()> {
    let app = crate::routes::router(state.clone(), &config.cors)?;
    let background = Background::start(&state, config);
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
    let served = tokio::spawn(server);
    let mut served = std::pin::pin!(served);
    let mut served_done = false;
    tokio::select! {
        result = &mut served => {
            served_done = true;
            result.context("server task")?;
        }
        () = state.shutdown_signal() => {}
    }
    // One deadline for the whole stop: the listeners' drain and every background step.
    let deadline = Instant::now() + config.shutdown_grace;
    if !served_done
        && tokio::time::timeout_at(deadline, &mut served)
            .await
            .is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "in-flight requests did not finish within the grace period");
        served.abort();
    }
    state.begin_shutdown();
    if let Some(s3) = s3 {
        s3.finish_by(deadline).await;
    }
    background.shutdown(deadline).await?;
    tracing::info!("stopped");
    Ok(())
}

/// `ferrobase serve`: logs, engines, listeners, and shutdown on SIGINT or SIGTERM.
///
/// Both listeners are bound and the data directory is locked before anything is written, so
/// a taken port or a second server on the same data leaves no trace and says what to do.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    init_logging(config.log_format);
    let listener = bind(config.listen, "the HTTP API", "--listen", "").await?;
    // OpenWhisk actions' __OW_API_HOST defaults to the address as bound (a port chosen by
    // the OS included).
    let bound = listener.local_addr()?;
    config
        .functions
        .api_host
        .get_or_insert_with(|| format!("http://{bound}"));
    let s3_listener = match config.storage.s3_listen {
        Listen::Off => None,
        Listen::At(address) => Some(
            bind(
                address,
                "the S3 endpoint",
                "--s3-listen",
                ", or turn the S3 endpoint off with --s3-listen off",
            )
            .await?,
        ),
    };
    let _lock = DataDirLock::acquire(&config.data_dir)?;
    let state = build(&config).await?;
    let (state, s3) = match s3_listener {
        Some(s3_listener) => {
            let (state, s3) = crate::s3::start(state, &config, s3_listener).await?;
            (state, Some(s3))
        }
        None => (state, None),
    };
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %config.data_dir.display(), "listening");
    // Printed on stdout so scripts and test harnesses can learn a port chosen by the OS.
    println!("ferrobase listening on http://{address}");
    println!("{}", banner(&config));
    run_endpoints(listener, state, &config, termination_signal(), s3).await
}

/// Binds `address` for `what`; a taken port is explained with the flag that moves it.
async fn bind(
    address: std::net::SocketAddr,
    what: &str,
    flag: &str,
    alternative: &str,
) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(listener),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            let other = std::net::SocketAddr::new(address.ip(), address.port().wrapping_add(100));
            anyhow::bail!(
                "{what} cannot listen on {address}: another program already uses that port. \
                 Stop it, or choose another address with {flag} (for example {flag} {other}){alternative}. \
                 Nothing was written."
            )
        }
        Err(error) => {
            Err(error).with_context(|| format!("{what} cannot listen on {address} ({flag})"))
        }
    }
}

/// What `serve` prints under its address: where things are and how to begin.
fn banner(config: &Config) -> String {
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let kv = match config.kv.engine {
        KvEngineKind::Sled => "sled",
        KvEngineKind::Memory => "memory",
    };
    let queue = match config.queue.engine {
        crate::config::QueueEngineKind::Embedded => "embedded",
        crate::config::QueueEngineKind::JetStream => "jetstream",
    };
    let storage = match config.storage.backend {
        crate::config::StorageBackendKind::Local => "local files",
        crate::config::StorageBackendKind::S3 => "s3",
    };
    let s3 = match config.storage.s3_listen {
        Listen::Off => "off (--s3-listen off)".to_owned(),
        Listen::At(_) => "see the line above".to_owned(),
    };
    format!(
        "  data directory  {data}\n  engines         kv {kv}, queue {queue}, storage {storage}\n  s3 endpoint     {s3}\n  a token         ferrobase token --role admin --ns NAMESPACE --data-dir {data}\n  stop            Ctrl-C or SIGTERM (in-flight work finishes within {grace:?})",
        data = data_dir.display(),
        grace = config.shutdown_grace,
    )
}

/// An exclusive lock on the data directory for the life of the server, so that a second server
/// on the same data fails at once with a clear message instead of inside an engine.
#[derive(Debug)]
struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    const FILE: &str = "ferrobase.lock";

    fn acquire(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        use std::io::{Read, Seek, Write};
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let path = data_dir.join(Self::FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another ferrobase process".to_owned()
                } else {
                    format!("another ferrobase process (pid {holder})")
                };
                anyhow::bail!(
                    "the data directory {} is in use by {who}. Stop that server, or give this one \
                     its own directory with --data-dir.",
                    data_dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("locking {}", path.display()));
            }
        }
        // The holder's pid, for the message above; the lock itself is what counts.
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        Ok(DataDirLock { _file: file })
    }
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
