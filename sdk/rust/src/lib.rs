//! `ferrobase-sdk`: a typed client for Ferrobase's HTTP API, for Rust programs and tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferrobase_sdk::Error> {
//! let client = ferrobase_sdk::Client::new("http://127.0.0.1:8080", "TOKEN");
//! let stored = client.kv_put("shop", "orders/42", b"{\"total\":3}".to_vec(), &Default::default()).await?;
//! let value = client.kv_get("shop", "orders/42").await?.expect("just written");
//! assert_eq!(value.version, stored.version);
//! # Ok(()) }
//! ```
//!
//! Errors from the server arrive as [`Error::Api`] with the status and the contract's error
//! code, so callers can match on `precondition_failed`, `not_found` and so on.
//!
//! The answers are the server's own types (`ferrobase_core::wire`). Laid out by service:
//! KV and events here, functions, activations, triggers and rules in `functions`, queues and
//! buckets in `queue`.

mod functions;
mod queue;
mod sse;

pub use ferrobase_core::wire;
pub use queue::{NewMessage, Pull};

use bytes::Bytes;
use ferrobase_core::wire::ErrorDocument;
use ferrobase_core::{ErrorCode, Event};
use futures::Stream;
use reqwest::{Method, RequestBuilder, StatusCode, header};

/// What can go wrong talking to Ferrobase.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error document.
    #[error("{status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: ErrorCode,
        message: String,
        /// What some errors add beside the message: the `line` and `column` of a syntax
        /// error, the `activation_id` of a failed invoke, the valid fields of an unknown one.
        details: serde_json::Map<String, serde_json::Value>,
    },
    /// An error status without the API's error document (a proxy in between answered).
    #[error("{status}: {body}")]
    Unexpected { status: StatusCode, body: String },
    /// The request did not complete (connection refused, reset, timeout).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something this client cannot read.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl Error {
    /// The contract's error code (`not_found`, `precondition_failed`, ...), for API errors.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(*code),
            Error::Unexpected { .. } | Error::Transport(_) | Error::Decode(_) => None,
        }
    }
}

/// Options of a KV put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    /// Seconds until the entry expires.
    pub ttl_secs: Option<u64>,
    /// Only write if the current version is this (`If-Match`).
    pub if_version: Option<u64>,
    /// Only write if the key does not exist (`If-None-Match: *`).
    pub if_absent: bool,
}

/// The answer to a put.
pub type Stored = ferrobase_core::wire::KvStored;

/// A value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub bytes: Bytes,
    pub content_type: String,
    pub version: u64,
}

/// One key of a listing.
pub type ListedKey = ferrobase_core::wire::KvListItem;

/// A page of keys; `next` continues the listing.
pub type KeyPage = ferrobase_core::wire::Page<ListedKey>;

/// A page of change events; pass `next_after` as `after` to continue.
pub use ferrobase_core::wire::EventPage;

/// A client bound to one server and one token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Client {
            base: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends `request`, turning error statuses into [`Error::Api`].
    async fn send(request: RequestBuilder) -> Result<reqwest::Response, Error> {
        let response = request.send().await?;
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await?;
        match serde_json::from_slice::<ErrorDocument>(&body) {
            Ok(document) => Err(Error::Api {
                status,
                code: document.error.code,
                message: document.error.message,
                details: document.error.details,
            }),
            // Not the contract's error document: a proxy or load balancer answered.
            Err(_) => Err(Error::Unexpected {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(request: RequestBuilder) -> Result<T, Error> {
        let response = Self::send(request).await?;
        let body = response.bytes().await?;
        serde_json::from_slice(&body).map_err(|error| Error::Decode(error.to_string()))
    }

    /// `PUT /v1/kv/{ns}/{key}`: stores `value` durably.
    pub async fn kv_put(
        &self,
        ns: &str,
        key: &str,
        value: impl Into<Bytes>,
        options: &PutOptions,
    ) -> Result<Stored, Error> {
        let mut request = self
            .request(Method::PUT, &kv_path(ns, key))
            .body(value.into());
        if let Some(content_type) = &options.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(ttl) = options.ttl_secs {
            request = request.query(&[("ttl", ttl)]);
        }
        if let Some(version) = options.if_version {
            request = request.header(header::IF_MATCH, format!("\"{version}\""));
        }
        if options.if_absent {
            request = request.header(header::IF_NONE_MATCH, "*");
        }
        Self::json(request).await
    }

    /// `GET /v1/kv/{ns}/{key}`; `None` when the key does not exist.
    pub async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Value>, Error> {
        let response = match Self::send(self.request(Method::GET, &kv_path(ns, key))).await {
            Ok(response) => response,
            Err(Error::Api {
                status: StatusCode::NOT_FOUND,
                ..
            }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let headers = response.headers();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let version = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse().ok())
            .ok_or_else(|| Error::Decode("GET without a version ETag".into()))?;
        Ok(Some(Value {
            bytes: response.bytes().await?,
            content_type,
            version,
        }))
    }

    /// `DELETE /v1/kv/{ns}/{key}`; `false` when there was nothing to delete.
    pub async fn kv_delete(&self, ns: &str, key: &str) -> Result<bool, Error> {
        match Self::send(self.request(Method::DELETE, &kv_path(ns, key))).await {
            Ok(_) => Ok(true),
            Err(Error::Api {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `GET /v1/kv/{ns}?prefix=&after=&limit=`.
    pub async fn kv_list(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, Error> {
        let mut query = vec![("prefix", prefix.to_owned()), ("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        Self::json(
            self.request(Method::GET, &format!("/v1/kv/{ns}"))
                .query(&query),
        )
        .await
    }

    /// `POST /v1/kv/{ns}/_txn` with a transaction document (see the API docs for its shape).
    pub async fn kv_txn(
        &self,
        ns: &str,
        txn: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        Self::json(
            self.request(Method::POST, &format!("/v1/kv/{ns}/_txn"))
                .json(txn),
        )
        .await
    }

    /// `GET /v1/events/{ns}?after=&limit=`.
    pub async fn events(&self, ns: &str, after: u64, limit: usize) -> Result<EventPage, Error> {
        let query = [("after", after.to_string()), ("limit", limit.to_string())];
        Self::json(
            self.request(Method::GET, &format!("/v1/events/{ns}"))
                .query(&query),
        )
        .await
    }

    /// `GET /v1/events/{ns}/stream?after=`: the change log as a stream of events, live.
    pub async fn event_stream(
        &self,
        ns: &str,
        after: u64,
    ) -> Result<impl Stream<Item = Result<Event, Error>> + use<>, Error> {
        let request = self
            .request(Method::GET, &format!("/v1/events/{ns}/stream"))
            .query(&[("after", after)]);
        let response = Self::send(request).await?;
        Ok(sse::events(response.bytes_stream()))
    }
}

/// Adds the paging parameters every listing takes.
fn paged(request: RequestBuilder, after: Option<&str>, limit: usize) -> RequestBuilder {
    let request = request.query(&[("limit", limit)]);
    match after {
        Some(after) => request.query(&[("after", after)]),
        None => request,
    }
}

/// The path of a key; keys may contain `/`, so each segment is percent-encoded on its own.
fn kv_path(ns: &str, key: &str) -> String {
    let encoded: Vec<String> = key.split('/').map(percent_encode).collect();
    format!("/v1/kv/{ns}/{}", encoded.join("/"))
}

fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_keep_slashes_and_encode_the_rest() {
        assert_eq!(kv_path("shop", "orders/42"), "/v1/kv/shop/orders/42");
        assert_eq!(kv_path("shop", "a b/ü?"), "/v1/kv/shop/a%20b/%C3%BC%3F");
    }
}
