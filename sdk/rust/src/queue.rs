//! Queues: publish, pull, settle, inspect; the buckets of object storage; and the
//! namespace's policy.

use ferrobase_core::policy::Policy;
use ferrobase_core::wire::Page;
use ferrobase_core::wire::queue::{
    Acked, Nacked, Published, Pulled, QueueConfigDocument, QueueConfigured, QueueInfo, QueueSummary,
};
use ferrobase_core::wire::storage::BucketSummary;
use reqwest::Method;
use serde_json::json;

use crate::{Client, Error, paged};

/// One message to publish.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMessage {
    /// Any JSON value.
    pub body: serde_json::Value,
    /// Messages with the same key are delivered in order, one at a time.
    pub key: Option<String>,
    /// Held back this long before it can be pulled.
    pub delay_ms: u64,
    /// A second publish with the same id within the queue's window is dropped.
    pub dedup_id: Option<String>,
}

/// What a pull asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub max: usize,
    /// How long to wait for a first message; 0 answers at once.
    pub wait_ms: u64,
    /// How long the caller holds each message before it is delivered again.
    pub lease_ms: u64,
    /// The consumer group (`default` when `None`).
    pub group: Option<String>,
}

impl Default for Pull {
    fn default() -> Self {
        Pull {
            max: 10,
            wait_ms: 0,
            lease_ms: 30_000,
            group: None,
        }
    }
}

impl Client {
    /// `POST /v1/queues/{ns}/{queue}/messages`: all or none, in order.
    pub async fn publish(
        &self,
        ns: &str,
        queue: &str,
        messages: &[NewMessage],
    ) -> Result<Published, Error> {
        let messages: Vec<_> = messages
            .iter()
            .map(|m| {
                let mut message = json!({"body": m.body, "delay_ms": m.delay_ms});
                if let Some(key) = &m.key {
                    message["key"] = json!(key);
                }
                if let Some(dedup_id) = &m.dedup_id {
                    message["dedup_id"] = json!(dedup_id);
                }
                message
            })
            .collect();
        let path = format!("/v1/queues/{ns}/{queue}/messages");
        let body = json!({ "messages": messages });
        Self::json(self.request(Method::POST, &path).json(&body)).await
    }

    /// `POST /v1/queues/{ns}/{queue}/pull`: leases up to `pull.max` messages.
    pub async fn pull(&self, ns: &str, queue: &str, pull: &Pull) -> Result<Pulled, Error> {
        let mut body = json!({"max": pull.max, "wait_ms": pull.wait_ms, "lease_ms": pull.lease_ms});
        if let Some(group) = &pull.group {
            body["group"] = json!(group);
        }
        let path = format!("/v1/queues/{ns}/{queue}/pull");
        Self::json(self.request(Method::POST, &path).json(&body)).await
    }

    /// `POST /v1/queues/{ns}/{queue}/ack`: settles the messages of `receipts`.
    pub async fn ack(&self, ns: &str, queue: &str, receipts: &[String]) -> Result<Acked, Error> {
        let path = format!("/v1/queues/{ns}/{queue}/ack");
        let body = json!({ "receipts": receipts });
        Self::json(self.request(Method::POST, &path).json(&body)).await
    }

    /// `POST /v1/queues/{ns}/{queue}/nack`: hands messages back, after `delay_ms`.
    pub async fn nack(
        &self,
        ns: &str,
        queue: &str,
        receipts: &[String],
        delay_ms: u64,
        error: Option<&str>,
    ) -> Result<Nacked, Error> {
        let path = format!("/v1/queues/{ns}/{queue}/nack");
        let mut body = json!({ "receipts": receipts, "delay_ms": delay_ms });
        if let Some(error) = error {
            body["error"] = json!(error);
        }
        Self::json(self.request(Method::POST, &path).json(&body)).await
    }

    /// `PUT /v1/queues/{ns}/{queue}`: creates the queue or changes its configuration.
    pub async fn configure_queue(
        &self,
        ns: &str,
        queue: &str,
        config: &QueueConfigDocument,
    ) -> Result<QueueConfigured, Error> {
        let path = format!("/v1/queues/{ns}/{queue}");
        Self::json(self.request(Method::PUT, &path).json(config)).await
    }

    /// `GET /v1/queues/{ns}`: the queues the caller may read, by name, with their depth.
    pub async fn queues(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<QueueSummary>, Error> {
        let request = self.request(Method::GET, &format!("/v1/queues/{ns}"));
        Self::json(paged(request, after, limit)).await
    }

    /// `GET /v1/queues/{ns}/{queue}`: configuration, depth and consumer groups.
    pub async fn queue_info(&self, ns: &str, queue: &str) -> Result<QueueInfo, Error> {
        let path = format!("/v1/queues/{ns}/{queue}");
        Self::json(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/storage/{ns}`: the namespace's buckets by name.
    pub async fn buckets(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<BucketSummary>, Error> {
        let request = self.request(Method::GET, &format!("/v1/storage/{ns}"));
        Self::json(paged(request, after, limit)).await
    }

    /// `GET /v1/policies/{ns}`: what the namespace's `user` tokens may do.
    pub async fn policy(&self, ns: &str) -> Result<Policy, Error> {
        Self::json(self.request(Method::GET, &format!("/v1/policies/{ns}"))).await
    }

    /// `PUT /v1/policies/{ns}`: replaces the namespace's policy.
    pub async fn put_policy(&self, ns: &str, policy: &Policy) -> Result<Policy, Error> {
        let path = format!("/v1/policies/{ns}");
        Self::json(self.request(Method::PUT, &path).json(policy)).await
    }
}
