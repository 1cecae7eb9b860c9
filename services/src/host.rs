//! The [`HostApi`] functions call: their SDK's KV operations on the function's own namespace
//! (with the activation as the cause of the events they write) and allow-listed `fetch`.
//!
//! `fetch` sends the `Url` the engine checked, with an HTTP client that applies the same
//! [`FetchPolicy`] where the engine cannot: its resolver drops the addresses the policy
//! refuses (a name is checked on what it resolves to, at every connection), and its redirect
//! policy checks every hop. The client uses no proxy, since a proxy would resolve names itself.

use ferrobase_core::ErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use bytes::Bytes;
use ferrobase_functions::fetch::Url;
use ferrobase_functions::{
    BodyEncoding, FetchPolicy, FetchRefused, HostApi, HostContext, HostError, HostOp,
};
use ferrobase_kv::{Check, Key, KvEngine, KvError, ListQuery, MutationResult, Txn};
use serde_json::{Value, json};

use crate::routes::extract::bounded;

/// Most bytes of a fetched body handed to a function.
const MAX_FETCH_BODY_BYTES: usize = 6 * 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_LIST_LIMIT: usize = 1000;

#[derive(Debug)]
pub struct ServiceHost {
    kv: Arc<dyn KvEngine>,
    queue: Arc<dyn ferrobase_queue::Queue>,
    storage: Arc<ferrobase_storage::Storage>,
    fetch: Arc<FetchPolicy>,
    http: reqwest::Client,
}

/// Resolves names for `fetch`, keeping only the addresses the policy allows.
#[derive(Debug)]
struct PolicyResolver {
    policy: Arc<FetchPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is the URL's: the client replaces this 0.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = policy.filter_addresses(&host, resolved)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of `fetch`: addresses and redirect hops go through `policy`.
fn fetch_client(policy: &Arc<FetchPolicy>) -> reqwest::Client {
    let redirects = policy.clone();
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .no_proxy()
        .dns_resolver(PolicyResolver {
            policy: policy.clone(),
        })
        .redirect(reqwest::redirect::Policy::custom(
            move |attempt| match redirects.check_redirect(attempt.previous().len(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            },
        ))
        .build()
        .expect("an HTTP client without TLS options builds")
}

/// The policy's refusal behind a failed request (a resolved address or a redirect hop).
fn refusal(error: &reqwest::Error) -> Option<&FetchRefused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(refused) = error.downcast_ref::<FetchRefused>() {
            return Some(refused);
        }
        cause = error.source();
    }
    None
}

impl ServiceHost {
    /// Functions reach `kv`, publish to `queue` and read and write `storage`; their fetches
    /// are limited by `fetch`, the policy the engine checks them with.
    pub fn new(
        kv: Arc<dyn KvEngine>,
        queue: Arc<dyn ferrobase_queue::Queue>,
        storage: Arc<ferrobase_storage::Storage>,
        fetch: Arc<FetchPolicy>,
    ) -> Self {
        ServiceHost {
            kv,
            queue,
            storage,
            http: fetch_client(&fetch),
            fetch,
        }
    }

    async fn fetch(
        &self,
        url: Url,
        method: String,
        headers: BTreeMap<String, String>,
        body: Option<String>,
        encoding: BodyEncoding,
    ) -> Result<Value, HostError> {
        // The engine checked this URL already; checking here too keeps the host safe on its
        // own, and covers IP-literal hosts, which the client connects to without resolving.
        self.fetch.check(&url)?;
        let method =
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                HostError::new(
                    ErrorCode::InvalidArgument,
                    format!("invalid method {:?}", bounded(&method)),
                )
            })?;
        let shown = bounded(url.as_str());
        let mut request = self.http.request(method, url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(decode_body(body, encoding)?);
        }
        let response = request
            .send()
            .await
            .map_err(|error| match refusal(&error) {
                Some(refused) => HostError::from(refused.clone()),
                None => HostError::new(
                    ErrorCode::Unavailable,
                    format!("fetch {shown} failed: {}", error.without_url()),
                ),
            })?;
        let status = response.status().as_u16();
        let status_text = response.status().canonical_reason().unwrap_or("");
        // Pairs, not a map: a response may repeat a header (`set-cookie`).
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        let bytes = response.bytes().await.map_err(|error| {
            HostError::new(
                ErrorCode::Unavailable,
                format!("reading {shown} failed: {}", error.without_url()),
            )
        })?;
        if bytes.len() > MAX_FETCH_BODY_BYTES {
            return Err(HostError::new(
                ErrorCode::TooLarge,
                format!("the response of {shown} is larger than {MAX_FETCH_BODY_BYTES} bytes"),
            ));
        }
        let body = match encoding {
            BodyEncoding::Text => String::from_utf8_lossy(&bytes).into_owned(),
            BodyEncoding::Base64 => BASE64_STANDARD.encode(&bytes),
        };
        Ok(json!({
            "status": status,
            "status_text": status_text,
            "headers": headers,
            "body": body,
            "encoding": encoding,
        }))
    }
}

/// A body from the isolate, as the bytes it stands for.
fn decode_body(body: String, encoding: BodyEncoding) -> Result<Bytes, HostError> {
    match encoding {
        BodyEncoding::Text => Ok(Bytes::from(body)),
        BodyEncoding::Base64 => BASE64_STANDARD
            .decode(body)
            .map(Bytes::from)
            .map_err(|error| {
                HostError::new(
                    ErrorCode::InvalidArgument,
                    format!("the body is not valid base64: {error}"),
                )
            }),
    }
}

fn queue_error(error: ferrobase_queue::QueueError) -> HostError {
    HostError::new(error.code(), error.to_string())
}

fn storage_error(error: ferrobase_storage::StorageError) -> HostError {
    HostError::new(error.code(), error.to_string())
}

fn kv_error(error: KvError) -> HostError {
    HostError::new(error.code(), error.to_string())
}

fn key(raw: &str) -> Result<Key, HostError> {
    Key::parse(raw).map_err(kv_error)
}

#[async_trait]
impl HostApi for ServiceHost {
    async fn call(&self, context: &HostContext, op: HostOp) -> Result<Value, HostError> {
        let ns = &context.namespace;
        match op {
            HostOp::KvGet { key: raw } => {
                let entry = self.kv.get(ns, &key(&raw)?).await.map_err(kv_error)?;
                Ok(entry.map_or(Value::Null, |entry| {
                    json!({
                        "value": String::from_utf8_lossy(&entry.value),
                        "version": entry.meta.version,
                        "content_type": entry.meta.content_type,
                    })
                }))
            }
            HostOp::KvPut {
                key: raw,
                value,
                content_type,
                ttl,
                if_version,
                if_absent,
            } => {
                let key = key(&raw)?;
                let mut txn = Txn::put(key.clone(), Bytes::from(value), content_type);
                if let Some(seconds) = ttl {
                    txn = txn.with_ttl(Duration::from_secs(seconds));
                }
                if let Some(version) = if_version {
                    txn = txn.with_check(Check::Version {
                        key: key.clone(),
                        version,
                    });
                }
                if if_absent {
                    txn = txn.with_check(Check::Absent { key: key.clone() });
                }
                txn.causation = context.causation.clone();
                let version = match self.kv.commit(ns, txn).await {
                    Ok(outcome) => match outcome.results.first() {
                        Some(MutationResult::Put { version, .. }) => *version,
                        _ => {
                            return Err(HostError::new(
                                ErrorCode::Internal,
                                "put committed without a result",
                            ));
                        }
                    },
                    // A repeat of a write that already happened (the engine checks the
                    // causation's write key): answer, don't apply.
                    Err(KvError::AlreadyApplied(_)) => {
                        let current = self.kv.get(ns, &key).await.map_err(kv_error)?;
                        current.map_or(0, |entry| entry.meta.version)
                    }
                    Err(error) => return Err(kv_error(error)),
                };
                Ok(json!({"key": raw, "version": version}))
            }
            HostOp::KvDelete {
                key: raw,
                if_version,
            } => {
                let key = key(&raw)?;
                let mut txn = Txn::delete(key.clone());
                if let Some(version) = if_version {
                    txn = txn.with_check(Check::Version { key, version });
                }
                txn.causation = context.causation.clone();
                match self.kv.commit(ns, txn).await {
                    Ok(outcome) => Ok(json!(matches!(
                        outcome.results.first(),
                        Some(MutationResult::Delete { existed: true, .. })
                    ))),
                    Err(KvError::AlreadyApplied(_)) => Ok(json!(true)),
                    Err(error) => Err(kv_error(error)),
                }
            }
            HostOp::KvList {
                prefix,
                after,
                limit,
            } => {
                let limit = limit.unwrap_or(100).clamp(1, MAX_LIST_LIMIT);
                let page = self
                    .kv
                    .list(
                        ns,
                        &ListQuery {
                            prefix,
                            after,
                            limit,
                        },
                    )
                    .await
                    .map_err(kv_error)?;
                let items: Vec<Value> = page
                    .entries
                    .into_iter()
                    .map(|(key, meta)| {
                        json!({"key": key, "version": meta.version, "size": meta.size,
                               "content_type": meta.content_type})
                    })
                    .collect();
                Ok(json!({"items": items, "next": page.next}))
            }
            HostOp::QueuePublish { queue, messages } => {
                let name = ferrobase_queue::QueueName::parse(&queue).map_err(queue_error)?;
                // A publish made while handling an event is recorded once it is accepted, so
                // that a retry long after the queue's dedup window has passed still publishes
                // nothing. The dedup ids below cover a crash between publish and record.
                let mark = context
                    .causation
                    .write_key
                    .as_deref()
                    .and_then(ferrobase_kv::txn::mark_key);
                if let Some(mark) = &mark
                    && let Some(entry) = self.kv.get(ns, mark).await.map_err(kv_error)?
                {
                    let ids: Value = serde_json::from_slice(&entry.value)
                        .map_err(|e| HostError::new(ErrorCode::Internal, e.to_string()))?;
                    return Ok(json!({ "ids": ids }));
                }
                let mut batch = Vec::with_capacity(messages.len());
                for (index, message) in messages.into_iter().enumerate() {
                    let mut new =
                        ferrobase_queue::NewMessage::new(Bytes::from(message.body.to_string()));
                    new.key = message.key;
                    new.delay = Duration::from_millis(message.delay_ms.unwrap_or(0));
                    // While handling an event, a retry's publish repeats the same dedup id and
                    // is accepted once (within the queue's dedup window).
                    new.dedup_id = message.dedup_id.or_else(|| {
                        context
                            .causation
                            .write_key
                            .as_ref()
                            .map(|write| format!("{write}/{index}"))
                    });
                    batch.push(new);
                }
                let ids = self
                    .queue
                    .publish(ns, &name, batch)
                    .await
                    .map_err(queue_error)?;
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                if let Some(mark) = mark {
                    let recorded = Bytes::from(json!(ids).to_string());
                    let txn = Txn::put(mark, recorded, "application/json".to_owned())
                        .with_ttl(ferrobase_kv::txn::MARK_LIFETIME);
                    if let Err(error) = self.kv.commit(ns, txn).await {
                        // The queue's dedup window still covers a prompt retry.
                        tracing::warn!(%error, %ns, "cannot record a published write's idempotency mark");
                    }
                }
                Ok(json!({ "ids": ids }))
            }
            HostOp::StorageGet {
                bucket,
                key,
                encoding,
            } => {
                let options = ferrobase_storage::GetOptions::default();
                match self.storage.get_object(ns, &bucket, &key, &options).await {
                    Ok(object) => {
                        use futures::TryStreamExt;
                        let chunks: Vec<Bytes> =
                            object.body.try_collect().await.map_err(|e| {
                                HostError::new(ErrorCode::Unavailable, e.to_string())
                            })?;
                        let body: Vec<u8> = chunks.concat();
                        if body.len() > MAX_FETCH_BODY_BYTES {
                            return Err(HostError::new(
                                ErrorCode::TooLarge,
                                format!(
                                    "objects read by functions are limited to {MAX_FETCH_BODY_BYTES} bytes"
                                ),
                            ));
                        }
                        let body = match encoding {
                            BodyEncoding::Text => String::from_utf8_lossy(&body).into_owned(),
                            BodyEncoding::Base64 => BASE64_STANDARD.encode(&body),
                        };
                        Ok(json!({
                            "body": body,
                            "content_type": object.info.content_type,
                            "etag": object.info.etag,
                            "size": object.info.size,
                        }))
                    }
                    Err(ferrobase_storage::StorageError::NoSuchKey { .. }) => Ok(Value::Null),
                    Err(error) => Err(storage_error(error)),
                }
            }
            HostOp::StoragePut {
                bucket,
                key,
                body,
                encoding,
                content_type,
            } => {
                let body = decode_body(body, encoding)?;
                let options = ferrobase_storage::PutOptions {
                    content_type: Some(content_type),
                    checks: ferrobase_storage::BodyChecks {
                        content_length: Some(body.len() as u64),
                        ..Default::default()
                    },
                    causation: context.causation.clone(),
                    ..ferrobase_storage::PutOptions::default()
                };
                let stream: ferrobase_storage::ByteStream =
                    Box::pin(futures::stream::once(async move { Ok(body) }));
                let info = self
                    .storage
                    .put_object(ns, &bucket, &key, stream, options)
                    .await
                    .map_err(storage_error)?;
                Ok(json!({"etag": info.etag, "size": info.size}))
            }
            HostOp::StorageDelete { bucket, key } => {
                let existed = self
                    .storage
                    .delete_object(ns, &bucket, &key, context.causation.clone())
                    .await
                    .map_err(storage_error)?;
                Ok(json!(existed))
            }
            HostOp::StorageList {
                bucket,
                prefix,
                delimiter,
                after,
                limit,
            } => {
                let query = ferrobase_storage::ListQuery {
                    prefix,
                    delimiter,
                    after,
                    max_keys: limit.unwrap_or(100).clamp(1, 1000),
                };
                let page = self
                    .storage
                    .list_objects(ns, &bucket, &query)
                    .await
                    .map_err(storage_error)?;
                let objects: Vec<Value> = page
                    .objects
                    .iter()
                    .map(|o| json!({"key": o.key, "size": o.size, "etag": o.etag, "content_type": o.content_type}))
                    .collect();
                Ok(json!({"objects": objects, "prefixes": page.common_prefixes, "next": page.next}))
            }
            HostOp::Fetch {
                url,
                method,
                headers,
                body,
                encoding,
            } => self.fetch(url, method, headers, body, encoding).await,
        }
    }
}

/// The queue service as rules with a queue source consume it.
#[derive(Debug)]
pub struct QueueRules {
    queue: Arc<dyn ferrobase_queue::Queue>,
}

impl QueueRules {
    pub fn new(queue: Arc<dyn ferrobase_queue::Queue>) -> Self {
        QueueRules { queue }
    }
}

fn queue_name(queue: &str) -> Result<ferrobase_queue::QueueName, String> {
    ferrobase_queue::QueueName::parse(queue).map_err(|e| e.to_string())
}

#[async_trait]
impl ferrobase_functions::triggers::QueueConsumer for QueueRules {
    async fn pull(
        &self,
        ns: &ferrobase_core::Namespace,
        queue: &str,
        group: &str,
        max: usize,
        wait: Duration,
        lease: Duration,
    ) -> Result<Vec<ferrobase_functions::triggers::QueuedMessage>, String> {
        let request = ferrobase_queue::PullRequest {
            group: ferrobase_queue::GroupName::parse(group).map_err(|e| e.to_string())?,
            max,
            wait,
            lease,
        };
        let deliveries = self
            .queue
            .pull(ns, &queue_name(queue)?, &request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(deliveries
            .into_iter()
            .map(|delivery| ferrobase_functions::triggers::QueuedMessage {
                id: delivery.id.to_string(),
                receipt: delivery.receipt.to_string(),
                body: serde_json::from_slice(&delivery.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&delivery.body).into_owned())
                }),
                attempt: delivery.attempt,
                key: delivery.key,
            })
            .collect())
    }

    async fn ack(
        &self,
        ns: &ferrobase_core::Namespace,
        queue: &str,
        receipt: &str,
    ) -> Result<(), String> {
        let receipts = [ferrobase_queue::Receipt::from_text(receipt)];
        self.queue
            .ack(ns, &queue_name(queue)?, &receipts)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn nack(
        &self,
        ns: &ferrobase_core::Namespace,
        queue: &str,
        receipt: &str,
        error: &str,
    ) -> Result<(), String> {
        let receipts = [ferrobase_queue::Receipt::from_text(receipt)];
        let nack = ferrobase_queue::Nack {
            delay: Duration::ZERO,
            error: Some(error.to_owned()),
        };
        self.queue
            .nack(ns, &queue_name(queue)?, &receipts, &nack)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
