//! The JSON documents of the HTTP API (docs/api.md), written by the server's routes and read
//! by the Rust SDK and the CLI, so that both sides of the contract are one type and a change
//! to a field is a compile error on both.
//!
//! One module per service (`functions`, `triggers`, `queue`, `storage`); the KV and error
//! documents and the listing page are here. The function and trigger documents are also what
//! the functions crate stores and checks (it re-exports them and adds the checks), so a field
//! added to a deploy document is one change. Object listings carry the storage crate's object
//! metadata as their items and are not (yet) typed here.

pub mod functions;
pub mod queue;
pub mod storage;
pub mod triggers;

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
pub use crate::event::EventPage;

/// Every error answer of the API: `{"error": {"code": ..., "message": ..., ...details}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDocument {
    pub error: ErrorBody,
}

/// The inside of an [`ErrorDocument`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Fields some errors add beside `code` and `message` (for example the valid fields of an
    /// unknown one, or the activation id of a failed invoke).
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// The answer to a KV put: the key and the version it now has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStored {
    pub key: String,
    pub version: u64,
}

/// One key of a KV listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvListItem {
    pub key: String,
    pub version: u64,
    pub size: u64,
    pub content_type: String,
    /// RFC 3339, milliseconds, UTC.
    pub updated_at: String,
    /// When the entry expires (RFC 3339), for entries with a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A page of a listing; `next` is the opaque cursor to pass as `after`, absent at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The answer to an asynchronous invoke (`?blocking=false`, 202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationAccepted {
    pub activation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_sit_beside_code_and_message() {
        let text = r#"{"error":{"code":"invalid_argument","message":"bad","valid":["a"]}}"#;
        let document: ErrorDocument = serde_json::from_str(text).unwrap();
        assert_eq!(document.error.code, ErrorCode::InvalidArgument);
        assert_eq!(document.error.details["valid"], serde_json::json!(["a"]));
        assert_eq!(serde_json::to_string(&document).unwrap(), text);
    }

    #[test]
    fn absent_expiry_is_left_out() {
        let item = KvListItem {
            key: "k".into(),
            version: 1,
            size: 2,
            content_type: "text/plain".into(),
            updated_at: "2026-12-03T00:00:00.000Z".into(),
            expires_at: None,
        };
        let text = serde_json::to_string(&item).unwrap();
        assert!(!text.contains("expires_at"), "{text}");
        assert_eq!(serde_json::from_str::<KvListItem>(&text).unwrap(), item);
    }
}
