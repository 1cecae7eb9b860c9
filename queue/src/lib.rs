//! `ferrobase-queue`: durable work queues for Ferrobase.
//!
//! Layout:
//! - [`model`]: names, configuration, messages, deliveries, receipts and dead letters: the
//!   vocabulary of the trait, with the validation every engine shares.
//! - [`engine`]: the [`Queue`] trait (its doc states the semantics) and the maintenance loop.
//! - `delivery` (private): the delivery rules of a consumer group, written once for both
//!   engines over a small `PendingStore` trait: pending states, admission (delay, key order),
//!   leases and attempts, lease expiry and max-deliver dead-lettering, ack and nack, replay,
//!   and the checks of an ack or nack. No I/O; each engine keeps only its storage and record
//!   encodings.
//! - [`embedded`]: the durable engine on sled, the default on one machine.
//! - [`jetstream`]: the engine on NATS JetStream (through `async-nats`), for clusters of
//!   Ferrobase nodes sharing one NATS server or cluster.
//! - [`conformance`] (feature `test-utils`): the suite every engine must pass, and an in-memory
//!   record store to run it with.
//!
//! Queue events (`ferrobase.queue.message`, when a queue has them on) reach the namespace
//! change log through [`ferrobase_core::records::RecordStore`]; this crate depends on no other
//! Ferrobase crate than `core`.

mod delivery;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod jetstream;
pub mod model;

#[cfg(feature = "test-utils")]
pub mod conformance;

pub use embedded::EmbeddedQueue;
pub use engine::{MaintenanceReport, Queue, run_maintenance};
pub use error::QueueError;
pub use jetstream::{JetStreamConfig, JetStreamQueue};
pub use model::{
    DeadLetter, DeadLetterPage, DeadLetterSelection, Delivery, EventEmission, GroupInfo, GroupName,
    MessageId, Nack, NewMessage, PullRequest, QueueConfig, QueueInfo, QueueLimits, QueueName,
    Receipt, Retention, SettleOutcome,
};
