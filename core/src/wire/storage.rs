//! Storage over HTTP (`/v1/storage/{ns}/...`): buckets, object listings and presigned links.
//! Object listings carry the storage crate's object metadata as their items.

use serde::{Deserialize, Serialize};

/// `PUT /v1/storage/{ns}/{bucket}`: the bucket now exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCreated {
    pub bucket: String,
}

/// One bucket of `GET /v1/storage/{ns}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSummary {
    pub name: String,
    /// RFC 3339, milliseconds, UTC.
    pub created_at: String,
}

/// `POST /v1/storage/{ns}/{bucket}/_presign`: a URL anyone holding it may use with `method`
/// until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presigned {
    pub url: String,
    pub method: String,
    /// RFC 3339, milliseconds, UTC.
    pub expires_at: String,
}

/// `GET /v1/storage/{ns}/{bucket}?prefix=&delimiter=`: objects (the storage crate's object
/// metadata) and, with a delimiter, the common prefixes rolled up from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPage<T> {
    pub items: Vec<T>,
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}
