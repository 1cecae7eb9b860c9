//! `ferrobase-kv`: the key-value service and the transactional change log beside it.
//!
//! Layout:
//! - [`model`]: keys, entries, transactions and their outcomes: the vocabulary of the trait.
//! - [`engine`]: the [`KvEngine`] trait every backend implements (it is also a
//!   [`ferrobase_core::ChangeLog`], because a change and its event commit together).
//! - [`txn`]: the one implementation of transaction semantics (checks, TTL, versions, events),
//!   written against a small storage view so that every engine shares it.
//! - [`memory`]: an in-memory engine for tests and ephemeral servers.
//! - [`sled_engine`]: the embedded, durable engine on sled; concurrent commits share one sled
//!   transaction and one flush (`sled_batch`), sweeps use group commit ([`group_commit`]).
//! - [`records`]: the core [`ferrobase_core::records::RecordStore`] over any engine, for the
//!   services that keep records and emit events through the KV transaction (storage, queues).
//! - [`conformance`] (feature `test-utils`): the suite every engine must pass.
//!
//! Versions are the namespace log offset (`ferrobaseseq`) of the write that produced them, so
//! they are strictly increasing per namespace and never reused, even after delete and re-create.

pub mod engine;
pub mod error;
pub mod group_commit;
pub mod memory;
pub mod model;
pub mod records;
mod sled_batch;
pub mod sled_engine;
pub mod txn;

#[cfg(feature = "test-utils")]
pub mod conformance;

pub use engine::{KvEngine, Retention};
pub use error::KvError;
pub use memory::MemoryEngine;
pub use model::{
    Check, Entry, EntryMeta, Key, KvLimits, ListPage, ListQuery, Mutation, MutationResult, Txn,
    TxnOutcome,
};
pub use records::KvRecordStore;
pub use sled_engine::SledEngine;
