//! Presigned URLs (SigV4 query signing) for the HTTP API's `_presign` route.
//!
//! The URL is signed with a per-namespace access key the server keeps for this purpose, after
//! the HTTP API has checked the caller's right to the one object and method; the S3 endpoint
//! then verifies it like any presigned URL from an S3 SDK.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrobase_core::Namespace;
use ferrobase_core::auth::Role;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::access_keys::AccessKeys;

/// SigV4's longest presigned lifetime.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
const REGION: &str = "us-east-1";

/// Signs URLs for the S3 endpoint at `public_url`.
#[derive(Debug)]
pub struct Presigner {
    keys: Arc<AccessKeys>,
    /// e.g. `http://127.0.0.1:9000`, as clients reach the S3 endpoint.
    public_url: String,
}

/// Which request a presigned URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresignMethod {
    Get,
    Put,
}

impl PresignMethod {
    fn as_str(self) -> &'static str {
        match self {
            PresignMethod::Get => "GET",
            PresignMethod::Put => "PUT",
        }
    }
}

/// RFC 3986 encoding as SigV4 wants it; `/` kept in paths.
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Presigner {
    pub fn new(keys: Arc<AccessKeys>, public_url: String) -> Self {
        Presigner {
            keys,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// A URL that allows `method` on `bucket/key` until `now + expires`.
    pub fn presign(
        &self,
        ns: &Namespace,
        method: PresignMethod,
        bucket: &str,
        key: &str,
        expires: Duration,
        now: SystemTime,
    ) -> anyhow::Result<String> {
        let access = self.keys.service_key(ns, Role::Service)?;
        let host = self
            .public_url
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&self.public_url)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let time: chrono::DateTime<chrono::Utc> = now.into();
        let amz_date = time.format("%Y%m%dT%H%M%SZ").to_string();
        let date = time.format("%Y%m%d").to_string();
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let path = format!("/{}/{}", encode(bucket, false), encode(key, true));
        let mut query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
            (
                "X-Amz-Credential",
                format!("{}/{scope}", access.access_key_id),
            ),
            ("X-Amz-Date", amz_date.clone()),
            ("X-Amz-Expires", expires.as_secs().to_string()),
            ("X-Amz-SignedHeaders", "host".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (encode(name, false), encode(&value, false)))
        .collect::<Vec<_>>();
        query.sort();
        let canonical_query = query
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        let canonical = format!(
            "{}\n{path}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD",
            method.as_str()
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut signing_key = hmac(
            format!("AWS4{}", access.secret_access_key).as_bytes(),
            &date,
        );
        for part in [REGION, "s3", "aws4_request"] {
            signing_key = hmac(&signing_key, part);
        }
        let signature = hex::encode(hmac(&signing_key, &to_sign));
        Ok(format!(
            "{}{path}?{canonical_query}&X-Amz-Signature={signature}",
            self.public_url
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_sigv4() {
        assert_eq!(encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(encode("a/b", false), "a%2Fb");
        assert_eq!(encode("ü", false), "%C3%BC");
    }
}
