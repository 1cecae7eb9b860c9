//! `ferrobase-functions`: stateless JavaScript functions in pooled QuickJS isolates.
//!
//! - [`engine`]: the one boundary around QuickJS-ng (rquickjs): isolates, limits, the
//!   in-isolate SDK (`import { kv, fetch } from "ferrobase"`).
//! - [`pool`]: executor threads (one per core), each owning its isolates: warm isolates per
//!   function version, pre-warmed stem cells, eviction by idle time and memory budget; and
//!   the supervisor that answers deadlines itself and replaces threads stuck past them.
//! - [`store`]: deployed functions and their immutable versions, kept as records.
//! - [`activations`]: the durable activation records, written in batches.
//! - [`service`]: [`FunctionService`], what the HTTP layer calls: deploy, invoke, records.
//! - [`triggers`]: triggers, rules, at-least-once delivery with retries and dead letters.
//! - [`host`]: the [`HostApi`] trait through which functions reach the services.
//! - [`fetch`]: [`FetchPolicy`], the one rule for which URLs and addresses `fetch` may reach.
//! - [`model`]: specs, versions, outcomes, records.
//! - [`web`]: what a web action's result may become on the wire.

pub mod activations;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod host;
pub mod model;
pub mod pool;
pub mod service;
pub mod store;
pub mod triggers;
pub mod web;

pub use error::FunctionError;
pub use fetch::{FetchPolicy, FetchRefused, PrivateAddresses};
pub use host::{BodyEncoding, HostApi, HostContext, HostError, HostOp};
pub use model::{ActivationRecord, FunctionSpec, FunctionVersion, OutcomeKind, StartKind};
pub use service::{FunctionService, FunctionsConfig, Invocation};
