//! Errors of the storage service.

use ferrobase_core::ErrorCode;
use ferrobase_core::records::RecordError;

/// What went wrong with a storage operation. Every variant maps to one public error code;
/// the S3 endpoint maps them to S3 error codes of the same name.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucketName { name: String, reason: &'static str },
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    #[error("object key is {len} bytes long; the limit is {max}")]
    KeyTooLong { len: usize, max: usize },
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("object {key:?} does not exist in bucket {bucket:?}")]
    NoSuchKey { bucket: String, key: String },
    #[error("multipart upload {0:?} does not exist")]
    NoSuchUpload(String),
    #[error("bucket {0:?} already exists")]
    BucketAlreadyExists(String),
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    /// A conflicting operation (a delete of the bucket) is in progress; try again.
    #[error("bucket {0:?} is being deleted")]
    BucketBusy(String),
    /// A conditional request's precondition did not hold; nothing was written.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// A conditional read found the object unchanged (HTTP 304).
    #[error("not modified")]
    NotModified { etag: String, last_modified_ms: u64 },
    /// The requested range does not overlap the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    /// The body does not match the Content-MD5 the client sent.
    #[error("the body does not match its Content-MD5")]
    BadDigest,
    /// The body does not match the additional checksum the client sent.
    #[error("the body does not match its x-amz-checksum-{algorithm} value")]
    BadChecksum { algorithm: String },
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("parts must be listed in ascending order of part number")]
    InvalidPartOrder,
    #[error("part {part_number} is {size} bytes; every part but the last needs at least {min}")]
    EntityTooSmall {
        part_number: u32,
        size: u64,
        min: u64,
    },
    /// The client's body ended early or failed while it was being read.
    #[error("incomplete body: {0}")]
    IncompleteBody(String),
    /// The object backend failed; details are for logs, not clients.
    #[error("object backend failure: {0}")]
    Backend(String),
    /// The metadata store failed; details are for logs, not clients.
    #[error("metadata store failure: {0}")]
    Records(String),
}

impl StorageError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StorageError::InvalidBucketName { .. }
            | StorageError::InvalidKey(_)
            | StorageError::KeyTooLong { .. }
            | StorageError::InvalidArgument(_)
            | StorageError::InvalidRange { .. }
            | StorageError::BadDigest
            | StorageError::BadChecksum { .. }
            | StorageError::InvalidPart(_)
            | StorageError::InvalidPartOrder
            | StorageError::EntityTooSmall { .. }
            | StorageError::IncompleteBody(_) => ErrorCode::InvalidArgument,
            StorageError::NoSuchBucket(_)
            | StorageError::NoSuchKey { .. }
            | StorageError::NoSuchUpload(_) => ErrorCode::NotFound,
            StorageError::BucketAlreadyExists(_)
            | StorageError::BucketNotEmpty(_)
            | StorageError::BucketBusy(_) => ErrorCode::Conflict,
            StorageError::PreconditionFailed(_) | StorageError::NotModified { .. } => {
                ErrorCode::PreconditionFailed
            }
            StorageError::Backend(_) | StorageError::Records(_) => ErrorCode::Internal,
        }
    }
}

impl From<object_store::Error> for StorageError {
    fn from(error: object_store::Error) -> Self {
        StorageError::Backend(error.to_string())
    }
}

impl From<RecordError> for StorageError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::ConditionFailed { key, reason } => {
                StorageError::PreconditionFailed(format!("{key}: {reason}"))
            }
            RecordError::Invalid(message) => StorageError::InvalidArgument(message),
            RecordError::Storage(message) => StorageError::Records(message),
        }
    }
}
