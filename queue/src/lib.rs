//! `ferrobase-queue`: durable work queues for Ferrobase.
//!
//! This crate will hold the `Queue` trait, the embedded engine on sled, the NATS JetStream
//! engine and their shared conformance suite (see the queue issue and DESIGN.md). It has no
//! code yet: the server exposes no queue routes until it does.
