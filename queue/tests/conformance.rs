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

mod jetstream {
    use super::*;
    use async_trait::async_trait;
    use ferrobase_core::Namespace;
    use ferrobase_queue::engine::MaintenanceReport;
    use ferrobase_queue::jetstream::NatsServer;
    use ferrobase_queue::{
        DeadLetterPage, DeadLetterSelection, Delivery, GroupName, JetStreamConfig, JetStreamQueue,
        MessageId, Nack, NewMessage, PullRequest, QueueConfig, QueueError, QueueInfo, QueueName,
        Receipt, SettleOutcome,
    };

    /// The engine with the server it talks to: each test gets its own server, stopped when the
    /// test drops its engine.
    #[derive(Debug)]
    struct WithServer {
        queue: JetStreamQueue,
        _server: NatsServer,
    }

    async fn make(clock: Arc<ManualClock>, records: Arc<dyn RecordStore>) -> Arc<dyn Queue> {
        let server = NatsServer::start();
        let config = JetStreamConfig {
            url: server.url().to_owned(),
            ..JetStreamConfig::default()
        };
        let queue = JetStreamQueue::connect(config, clock, QueueLimits::default(), records)
            .await
            .expect("engine connects");
        Arc::new(WithServer {
            queue,
            _server: server,
        })
    }

    ferrobase_queue::queue_conformance_tests!(make);

    #[async_trait]
    impl Queue for WithServer {
        async fn configure(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            config: QueueConfig,
        ) -> Result<QueueConfig, QueueError> {
            self.queue.configure(ns, queue, config).await
        }

        async fn list(
            &self,
            ns: &Namespace,
            after: Option<&QueueName>,
            max: usize,
        ) -> Result<Vec<QueueName>, QueueError> {
            self.queue.list(ns, after, max).await
        }

        async fn info(
            &self,
            ns: &Namespace,
            queue: &QueueName,
        ) -> Result<Option<QueueInfo>, QueueError> {
            self.queue.info(ns, queue).await
        }

        async fn publish(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            messages: Vec<NewMessage>,
        ) -> Result<Vec<MessageId>, QueueError> {
            self.queue.publish(ns, queue, messages).await
        }

        async fn pull(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            request: &PullRequest,
        ) -> Result<Vec<Delivery>, QueueError> {
            self.queue.pull(ns, queue, request).await
        }

        async fn ack(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            receipts: &[Receipt],
        ) -> Result<SettleOutcome, QueueError> {
            self.queue.ack(ns, queue, receipts).await
        }

        async fn nack(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            receipts: &[Receipt],
            nack: &Nack,
        ) -> Result<SettleOutcome, QueueError> {
            self.queue.nack(ns, queue, receipts, nack).await
        }

        async fn dead_letters(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            group: &GroupName,
            after: Option<MessageId>,
            limit: usize,
        ) -> Result<DeadLetterPage, QueueError> {
            self.queue
                .dead_letters(ns, queue, group, after, limit)
                .await
        }

        async fn replay_dead_letters(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            group: &GroupName,
            selection: &DeadLetterSelection,
        ) -> Result<u64, QueueError> {
            self.queue
                .replay_dead_letters(ns, queue, group, selection)
                .await
        }

        async fn purge_dead_letters(
            &self,
            ns: &Namespace,
            queue: &QueueName,
            group: &GroupName,
            selection: &DeadLetterSelection,
        ) -> Result<u64, QueueError> {
            self.queue
                .purge_dead_letters(ns, queue, group, selection)
                .await
        }

        async fn maintain(&self) -> Result<MaintenanceReport, QueueError> {
            self.queue.maintain().await
        }

        async fn flush(&self) -> Result<(), QueueError> {
            self.queue.flush().await
        }
    }
}
