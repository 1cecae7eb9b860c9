//! The function runtime end to end inside one process: real QuickJS isolates on executor
//! threads, records in a real (in-memory) KV engine, and a small host at the `HostApi`
//! boundary that keeps values in a map and can hold calls open to test concurrency.
//!
//! - `harness`: the test host, the fixture and shared helpers.
//! - `bundle`, `code`, `deadlines`, `forms`, `intl`, `limits`, `pool`, `records`, `sdk`, `streams`, `subtle`, `web`: the tests, by concept.

mod bundle;
mod code;
mod deadlines;
mod forms;
mod harness;
mod intl;
mod limits;
mod pool;
mod records;
mod sdk;
mod streams;
mod subtle;
mod web;
