//! Triggers and rules in process: events from the change log drive functions at least once,
//! with retries, dead letters, replay, fan-out, manual and completion triggers, and loop
//! protection, on a real (in-memory) KV engine and real isolates.
//!
//! - `app`: the test application and shared setup.
//! - `sources`, `delivery`, `cron`: the tests, by concept.

mod app;
mod cron;
mod delivery;
mod sources;
#[path = "../support/mod.rs"]
mod support;
