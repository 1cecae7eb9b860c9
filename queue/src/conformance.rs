//! The conformance suite every [`Queue`] engine must pass (feature `test-utils`).
//!
//! Each check is a plain async function over a [`Harness`]; [`queue_conformance_tests!`](crate::queue_conformance_tests)
//! expands them into one `#[tokio::test]` per check for a given engine constructor. Time is a
//! [`ManualClock`] the checks move forward; only long polling waits on real time, and nothing
//! sleeps to wait for something: checks poll with a deadline.

mod checks;
mod records;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrobase_core::{ManualClock, Namespace};

pub use checks::*;
pub use records::MemoryRecordStore;

use crate::{
    Delivery, GroupName, MessageId, NewMessage, PullRequest, Queue, QueueConfig, QueueName, Receipt,
};

/// An engine under test, the clock it was built with and the record store its events go to.
#[derive(Debug)]
pub struct Harness {
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<ManualClock>,
    pub records: Arc<MemoryRecordStore>,
}

/// How long a check waits for something asynchronous (a relay, a woken pull) at most.
const DEADLINE: Duration = Duration::from_secs(20);

fn ns() -> Namespace {
    Namespace::parse("conformance").expect("valid namespace")
}

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).expect("valid queue name")
}

fn group(name: &str) -> GroupName {
    GroupName::parse(name).expect("valid group name")
}

impl Harness {
    async fn configure(&self, name: &str, config: QueueConfig) {
        self.queue
            .configure(&ns(), &queue(name), config)
            .await
            .expect("queue configures");
    }

    async fn create(&self, name: &str) {
        self.configure(name, QueueConfig::default()).await;
    }

    async fn publish(&self, name: &str, messages: Vec<NewMessage>) -> Vec<MessageId> {
        self.queue
            .publish(&ns(), &queue(name), messages)
            .await
            .expect("publish succeeds")
    }

    async fn publish_texts(&self, name: &str, bodies: &[&str]) -> Vec<MessageId> {
        let messages = bodies
            .iter()
            .map(|b| NewMessage::new(b.to_string()))
            .collect();
        self.publish(name, messages).await
    }

    async fn pull_as(&self, name: &str, group_name: &str, max: usize) -> Vec<Delivery> {
        let request = PullRequest {
            group: group(group_name),
            max,
            wait: Duration::ZERO,
            lease: Duration::from_secs(30),
        };
        self.queue
            .pull(&ns(), &queue(name), &request)
            .await
            .expect("pull succeeds")
    }

    async fn pull(&self, name: &str, max: usize) -> Vec<Delivery> {
        self.pull_as(name, "default", max).await
    }

    async fn ack(&self, name: &str, deliveries: &[Delivery]) -> usize {
        let receipts: Vec<Receipt> = deliveries.iter().map(|d| d.receipt.clone()).collect();
        let outcome = self
            .queue
            .ack(&ns(), &queue(name), &receipts)
            .await
            .expect("ack succeeds");
        outcome.settled
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

fn texts(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8(d.body.to_vec()).expect("utf-8 body"))
        .collect()
}

/// Polls `check` until it returns `Some`, failing after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh engine built by
/// `$make`, an expression of type
/// `fn(Arc<ManualClock>, Arc<dyn RecordStore>) -> impl Future<Output = Arc<dyn Queue>>`.
#[macro_export]
macro_rules! queue_conformance_tests {
    ($make:expr) => {
        $crate::queue_conformance_tests!(@tests $make;
            publish_pull_ack, unknown_queues_and_invalid_requests, batch_is_all_or_nothing,
            delayed_messages_wait, dedup_within_window, lease_expiry_redelivers,
            nack_with_delay_and_error, max_deliver_dead_letters_replay_and_purge,
            same_key_in_order_one_at_a_time, key_order_under_concurrent_consumers,
            groups_are_independent, retention_by_count_and_age, consumed_messages_are_reclaimed,
            long_poll_wakes_on_publish, events_only_when_configured,
            configuration_is_stored_and_replaced, queues_list_by_name_within_their_namespace);
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let clock = ::ferrobase_core::ManualClock::starting_now();
                let records = ::std::sync::Arc::new($crate::conformance::MemoryRecordStore::default());
                let queue = ($make)(clock.clone(), records.clone()).await;
                $crate::conformance::$name($crate::conformance::Harness { queue, clock, records })
                    .await;
            }
        )*
    };
}
