//! `ferrobase-core`: the vocabulary every Ferrobase crate shares, with no I/O of its own.
//!
//! - [`event`]: the CloudEvents 1.0 envelope written to each namespace's change log, and the
//!   [`event::ChangeLog`] trait through which consumers (the events API, triggers) read it.
//! - [`namespace`]: validated tenant names.
//! - [`error`]: the error codes of the public API contract, shared so that every library maps
//!   its typed errors onto the same small set.
//! - [`auth`]: token claims and roles; [`policy`]: the declarative per-namespace policy and
//!   its evaluator, used alike by KV, storage, queues and functions.
//! - [`records`]: the record store with an outbox, through which storage and queues keep their
//!   state and emit events atomically.
//! - [`clock`]: injectable time, so that TTLs, retention and retries are testable.
//! - [`wire`]: the HTTP API's JSON documents, shared by the server, the Rust SDK and the CLI.

pub mod auth;
pub mod clock;
pub mod error;
pub mod event;
pub mod namespace;
pub mod policy;
pub mod records;
pub mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ErrorCode;
pub use event::{ChangeLog, Event, EventQuery, EventType};
pub use namespace::Namespace;
