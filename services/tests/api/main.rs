//! In-process tests of the HTTP API (`ferrobase::routes::router`), driven with
//! `tower::ServiceExt::oneshot` against the in-memory KV engine and a manual clock.
//!
//! - `harness` (`services/tests/support`, shared with the other API suites): the test server,
//!   token minting and request helpers.
//! - `kv`: single-key operations and their events, conditional writes, TTL, listing, limits.
//! - `txn`: transactions, all or nothing.
//! - `auth`: 401s, namespace isolation, scopes, the event stream.
//! - `policies`: the policy API and what policies grant to `user` tokens.
//! - `ops`: health, metrics, CORS, unknown routes.
//! - `listing`: listings name only what the caller may read (objects, prefixes, cursors).
//! - `scopes`: every route × every scope, against the routers' own route list.

mod auth;
#[path = "../support/mod.rs"]
mod harness;
mod kv;
mod listing;
mod ops;
mod policies;
mod scopes;
mod txn;
