//! Per-bucket CORS configuration (S3's CORSConfiguration): the rules a browser's cross-origin
//! request to a bucket is answered by. Kept in the bucket's record, so a deleted bucket takes
//! its rules with it and a new bucket of the same name starts with none.

use ferrobase_core::Namespace;
use serde::{Deserialize, Serialize};

use crate::model::BucketRecord;
use crate::{Storage, StorageError, WRITE_RETRIES, decode, encode, keys};

/// Most rules one configuration holds (S3's limit).
pub const MAX_CORS_RULES: usize = 100;
/// The methods a rule may allow (S3's set).
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One rule: which origins may make which requests, with which headers, and what the browser
/// may read of the response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Origins, each with at most one `*` wildcard (`*` alone allows every origin).
    pub allowed_origins: Vec<String>,
    /// Of GET, PUT, HEAD, POST and DELETE.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for, each with at most one `*` wildcard.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
}

impl CorsRule {
    /// Whether this rule allows a request from `origin` with `method` sending `headers`.
    pub fn allows(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.allowed_origins
            .iter()
            .any(|pattern| wildcard_match(pattern, origin, false))
            && self.allowed_methods.iter().any(|allowed| allowed == method)
            && headers.iter().all(|header| {
                self.allowed_headers
                    .iter()
                    .any(|pattern| wildcard_match(pattern, header, true))
            })
    }

    fn validate(&self) -> Result<(), StorageError> {
        let invalid = |message: String| Err(StorageError::InvalidArgument(message));
        if self.allowed_origins.is_empty() || self.allowed_methods.is_empty() {
            return invalid("every CORS rule needs an AllowedOrigin and an AllowedMethod".into());
        }
        if let Some(method) = self
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return invalid(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            ));
        }
        let wildcards = |value: &String| value.matches('*').count() > 1;
        if let Some(pattern) = self
            .allowed_origins
            .iter()
            .chain(&self.allowed_headers)
            .find(|value| wildcards(value))
        {
            return invalid(format!("{pattern:?} has more than one wildcard"));
        }
        Ok(())
    }
}

/// The first rule of `rules` that allows the request (S3 takes the first match).
pub fn matching_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    rules
        .iter()
        .find(|rule| rule.allows(origin, method, headers))
}

/// `value` against `pattern` with at most one `*` standing for any run of characters.
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (pattern, value) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

impl Storage {
    /// Sets a bucket's CORS rules (replacing any it had), or with `None` removes them.
    pub async fn put_bucket_cors(
        &self,
        ns: &Namespace,
        bucket: &str,
        rules: Option<Vec<CorsRule>>,
    ) -> Result<(), StorageError> {
        if let Some(rules) = &rules {
            if rules.is_empty() || rules.len() > MAX_CORS_RULES {
                return Err(StorageError::InvalidArgument(format!(
                    "a CORS configuration has 1 to {MAX_CORS_RULES} rules"
                )));
            }
            rules.iter().try_for_each(CorsRule::validate)?;
        }
        let key = keys::bucket(bucket);
        for _ in 0..WRITE_RETRIES {
            let Some(current) = self.records.get(ns, &key).await? else {
                return Err(StorageError::NoSuchBucket(bucket.to_owned()));
            };
            let record: BucketRecord = decode(&current.value)?;
            let updated = BucketRecord {
                cors: rules.clone(),
                ..record
            };
            match self
                .write_bucket(ns, &key, current.version, Some(encode(&updated)?))
                .await
            {
                Ok(_) => return Ok(()),
                // Written meanwhile (an object added, a delete begun): read it again.
                Err(ferrobase_core::records::RecordError::ConditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::BucketBusy(bucket.to_owned()))
    }

    /// A bucket's CORS rules, `None` when it has none.
    pub async fn bucket_cors(
        &self,
        ns: &Namespace,
        bucket: &str,
    ) -> Result<Option<Vec<CorsRule>>, StorageError> {
        let Some(current) = self.records.get(ns, &keys::bucket(bucket)).await? else {
            return Err(StorageError::NoSuchBucket(bucket.to_owned()));
        };
        let record: BucketRecord = decode(&current.value)?;
        Ok(record.cors)
    }
}
