//! `ferrobase`: the server and CLI that wire Ferrobase's engines to HTTP.
//!
//! Only this crate knows HTTP, reads configuration or the environment; the engines are
//! libraries that take plain config structs. Its modules, bottom-up (each names only modules
//! above it in this list; `scripts/module-cycles` checks there is no cycle):
//!
//! - [`error`]: the one mapping from library errors to HTTP statuses and JSON bodies.
//! - [`config`]: the documented configuration, merged from a TOML file, `FERROBASE_*` variables
//!   and flags (lowest to highest precedence). [`serving`]: the accept loop both listeners run,
//!   with connection timeouts and a per-IP cap.
//! - [`policies`]: the per-namespace policy documents the core evaluator reads; [`metrics`]:
//!   Prometheus counters and histograms; [`auth`]: JWT verification, the request identity,
//!   the authoriser, S3 access keys and presigned URLs.
//! - [`state`]: [`state::AppState`], the state handlers share; [`host`]: the services that
//!   functions reach through the SDK.
//! - [`routes`]: one router function per API area, composed by [`routes::router`]; [`s3`]: the
//!   S3 protocol endpoint on its own listener.
//! - [`background`]: the maintenance loops, started in one place, and the order a shutdown
//!   stops them and the services in.
//! - [`server`]: opens the engines, builds the state and serves until shutdown.
//! - [`cli`]: the command line.

pub mod auth;
pub mod background;
pub mod cli;
pub mod config;
pub mod error;
pub mod host;
pub mod metrics;
pub mod policies;
pub mod routes;
pub mod s3;
pub mod server;
pub mod serving;
pub mod state;
