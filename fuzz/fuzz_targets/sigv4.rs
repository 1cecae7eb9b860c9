//! SigV4 as our code speaks it: presigned URLs (services/src/auth/presign.rs) and the bearer
//! token taken from `Authorization` or `?access_token=` (services/src/auth/mod.rs). Verifying
//! SigV4 signatures on the S3 endpoint is s3s's work, not ours.
//!
//! Invariants: never panics; a presigned URL is deterministic, starts with the public URL, its
//! path decodes to exactly `/bucket/key`, and its query holds the six SigV4 parameters, sorted,
//! with the expiry, date and credential scope it was asked for and a 64-hex-digit signature.
//! A bearer token is returned only from a `Bearer` header (any case) or a GET query.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use ferrobase::auth::access_keys::AccessKeys;
use ferrobase::auth::bearer_token;
use ferrobase::auth::presign::{MAX_EXPIRY, PresignMethod, Presigner};
use ferrobase_core::Namespace;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

const PUBLIC_URL: &str = "http://127.0.0.1:9000";
/// 9999-12-31T23:59:59Z: SigV4 dates have four-digit years.
const LAST_SECOND: u64 = 253_402_300_799;

#[derive(Debug, Arbitrary)]
struct Input {
    put: bool,
    bucket: String,
    key: String,
    expires_s: u64,
    now_s: u64,
    header: Option<Vec<u8>>,
    get: bool,
    query: String,
}

fn presigner() -> &'static (tempfile::TempDir, Presigner) {
    static PRESIGNER: OnceLock<(tempfile::TempDir, Presigner)> = OnceLock::new();
    PRESIGNER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let keys = std::sync::Arc::new(AccessKeys::new(dir.path()));
        let presigner = Presigner::new(keys, format!("{PUBLIC_URL}/"));
        (dir, presigner)
    })
}

fn check_presign(input: &Input) {
    let ns = Namespace::parse("fuzz").expect("a valid namespace");
    let method = if input.put {
        PresignMethod::Put
    } else {
        PresignMethod::Get
    };
    let expires = Duration::from_secs(input.expires_s % (MAX_EXPIRY.as_secs() + 1));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(input.now_s % (LAST_SECOND + 1));
    let (_, presigner) = presigner();
    let url = presigner
        .presign(&ns, method, &input.bucket, &input.key, expires, now)
        .expect("presigning succeeds");
    let again = presigner
        .presign(&ns, method, &input.bucket, &input.key, expires, now)
        .expect("presigning succeeds");
    assert_eq!(url, again, "presigning is deterministic");

    let rest = url
        .strip_prefix(PUBLIC_URL)
        .expect("the URL starts with the public URL");
    let (path, query) = rest.split_once('?').expect("a presigned URL has a query");
    let path = percent_decode_str(path)
        .decode_utf8()
        .expect("the path decodes");
    assert_eq!(
        path,
        format!("/{}/{}", input.bucket, input.key),
        "the path names the object"
    );

    let params: Vec<(String, String)> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("each parameter has a value");
            let decode = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .expect("decodes")
                    .into_owned()
            };
            (decode(name), decode(value))
        })
        .collect();
    let names: Vec<&str> = params.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature"
        ]
    );
    let value = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
    assert_eq!(
        value("X-Amz-Expires"),
        Some(expires.as_secs().to_string().as_str())
    );
    assert_eq!(value("X-Amz-SignedHeaders"), Some("host"));
    let date = value("X-Amz-Date").expect("a date");
    let time: chrono::DateTime<chrono::Utc> = now.into();
    assert_eq!(date, time.format("%Y%m%dT%H%M%SZ").to_string());
    let credential = value("X-Amz-Credential").expect("a credential");
    let scope = format!("/{}/us-east-1/s3/aws4_request", &date[..8]);
    assert!(
        credential.ends_with(&scope),
        "credential {credential:?} lacks scope {scope:?}"
    );
    let signature = value("X-Amz-Signature").expect("a signature");
    assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()));
}

fn check_bearer(input: &Input) {
    let mut request = http::Request::builder().method(if input.get { "GET" } else { "POST" });
    if let Ok(uri) = format!("/v1/kv/fuzz/k?{}", input.query).parse::<http::Uri>() {
        request = request.uri(uri);
    }
    let header = input
        .header
        .as_deref()
        .and_then(|raw| http::HeaderValue::from_bytes(raw).ok());
    if let Some(header) = &header {
        request = request.header(http::header::AUTHORIZATION, header.clone());
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let Some(token) = bearer_token(&parts) else {
        return;
    };
    match &header {
        Some(header) => {
            let text = header.to_str().expect("a token came from a text header");
            let (scheme, rest) = text.split_once(' ').expect("a scheme and a token");
            assert!(
                scheme.eq_ignore_ascii_case("bearer"),
                "not a bearer header: {text:?}"
            );
            assert_eq!(token, rest.trim());
        }
        None => {
            assert_eq!(
                parts.method,
                http::Method::GET,
                "a query token on a non-GET request"
            );
            let query = parts.uri.query().expect("a token came from the query");
            assert!(
                query
                    .split('&')
                    .any(|pair| pair == format!("access_token={token}"))
            );
        }
    }
}

fuzz_target!(|input: Input| {
    check_bearer(&input);
    check_presign(&input);
});
