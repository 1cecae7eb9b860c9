//! `ferrobase-functions`: stateless JavaScript functions for Ferrobase.
//!
//! This crate will hold the JS engine boundary (QuickJS-ng through rquickjs), the isolate pool,
//! limits, activation records, the in-isolate SDK, triggers, rules and sequences, talking to the
//! services only through a `HostApi` trait of its own (see the functions issue and DESIGN.md).
//! It has no code yet: the server exposes no function routes until it does.
