//! Runs the queue conformance suite against the embedded engine.

use std::sync::Arc;

use ferrobase_core::ManualClock;
use ferrobase_core::records::RecordStore;
use ferrobase_queue::{EmbeddedQueue, Queue, QueueLimits};

mod embedded {
    use super::*;

    async fn make(clock: Arc<ManualClock>, records: Arc<dyn RecordStore>) -> Arc<dyn Queue> {
        // The directory must outlive the engine; it lives under target/ and goes with `cargo clean`.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir")
            .keep();
        Arc::new(
            EmbeddedQueue::open(&dir, clock, QueueLimits::default(), records).expect("queue opens"),
        )
    }

    ferrobase_queue::queue_conformance_tests!(make);
}
