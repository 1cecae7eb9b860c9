//! `ferrobase`: the server and CLI that wire Ferrobase's engines to HTTP.
//!
//! Only this crate knows HTTP, reads configuration or the environment; the engines are
//! libraries that take plain config structs.
//!
//! - [`config`]: the documented configuration, merged from a TOML file, `FERROBASE_*` variables
//!   and flags (lowest to highest precedence).
//! - [`server`]: opens the engines, builds [`state::AppState`] and serves until shutdown.
//! - [`routes`]: one router function per API area, composed by [`routes::router`].
//! - [`auth`]: JWT verification and the request identity; [`policies`]: the per-namespace
//!   policy documents the core evaluator reads.
//! - [`error`]: the one mapping from library errors to HTTP statuses and JSON bodies.
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`serving`]: the accept loop both listeners run, with connection timeouts and a per-IP cap.
//! - [`s3`]: the S3 protocol endpoint (its own listener) and its access keys.

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod fn_cli;
pub mod host;
pub mod metrics;
pub mod policies;
pub mod routes;
pub mod s3;
pub mod server;
pub mod serving;
pub mod state;
pub mod trigger_cli;
