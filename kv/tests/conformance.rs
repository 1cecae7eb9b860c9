//! Runs the KV conformance suite against both engines.

use std::sync::Arc;

use ferrobase_core::ManualClock;
use ferrobase_kv::{KvEngine, KvLimits, MemoryEngine, SledEngine};

mod memory {
    use super::*;

    async fn make(clock: Arc<ManualClock>) -> Arc<dyn KvEngine> {
        Arc::new(MemoryEngine::new(clock, KvLimits::default()))
    }

    ferrobase_kv::kv_conformance_tests!(make);
}

mod sled {
    use super::*;

    async fn make(clock: Arc<ManualClock>) -> Arc<dyn KvEngine> {
        // The directory must outlive the engine; it lives under target/ and goes with `cargo clean`.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir")
            .keep();
        Arc::new(SledEngine::open(&dir, clock, KvLimits::default()).expect("sled opens"))
    }

    ferrobase_kv::kv_conformance_tests!(make);
}
