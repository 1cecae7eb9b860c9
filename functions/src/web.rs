//! Web actions: what an HTTP request becomes for the function ([`event`]) and what its result
//! may become on the wire ([`shape`]).
//!
//! A web action (a function deployed with `"web": true`, reached at `/web/{ns}/{name}`)
//! answers the HTTP request with its result. The name may end in an extension choosing the
//! response type, as on OpenWhisk ([`ResponseType`]): `.json` sends the result as JSON,
//! `.html` and `.text` send its `html` or `text` field, `.http` (the default) reads the result
//! as a response. What a response is depends on the function's [`Contract`]:
//!
//! - `ferrobase`: an object with only `status`, `headers` and `body` keys is a response; any
//!   other value is sent as a JSON 200. The event is `{method, path, query, headers, body,
//!   json, auth}`.
//! - `openwhisk`: an object's `statusCode` (or `status`), `headers` and `body` are the
//!   response (other keys are ignored; no body is a 204); a string body with a binary
//!   `content-type` is base64 and is sent decoded; a string body without one is `text/html`.
//!   The params are the query parameters, merged with a JSON object or form body, plus
//!   `__ow_method` (lower case), `__ow_headers`, `__ow_path`, `__ow_query` (the raw query),
//!   `__ow_body` (the body as text, base64 when binary) and `__ow_user` (a valid token's
//!   subject).
//!
//! Credentials stay out of both: the `authorization` and `cookie` headers and the
//! `access_token` query parameter are removed before the function sees the request.
//!
//! The function controls the status, its own headers and the body, never the framing: the
//! server computes `content-length` (or chunking) itself, so headers that frame the message or
//! manage the connection are dropped ([`FRAMING_HEADERS`]). Otherwise a function could declare
//! a shorter length than its body and let a pipelined client read the rest as a forged second
//! response. A result that cannot be sent faithfully — a status outside 200–599, a header that
//! is not a valid name or value, a body on a status that has none — makes the activation an
//! error, recorded as such, rather than a response that differs from what the function said.
//!
//! [`shape`] is the one place these rules live; the HTTP layer only copies a [`WebResponse`]
//! into its own types.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::model::Contract;
pub use ferrobase_core::wire::functions::ResponseType;

/// Headers a web action may not set: they frame the message or belong to one connection
/// (RFC 9110 §7.6.1 and RFC 9112 §6–7), and the server sets them itself. They are dropped.
pub const FRAMING_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The statuses a web action may answer with. 1xx are interim responses that only the server
/// may send (101 would switch protocols on a connection the function does not own).
pub const STATUS_RANGE: std::ops::RangeInclusive<u16> = 200..=599;

/// How much of a rejected name or value an error message repeats.
const ECHO_LIMIT: usize = 64;

/// A web action's response, checked: ready to be copied onto the wire as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResponse {
    pub status: u16,
    /// Lower-cased names in the order the function gave them; a name given as an array of
    /// values appears once per value (`set-cookie`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A web request as the HTTP layer read it.
#[derive(Debug, Clone)]
pub struct WebRequest<'a> {
    pub method: &'a str,
    /// The path after the action's name, from `/`.
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// Names in lower case, in request order.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    /// The claims of a token valid for the action's namespace, if the caller sent one.
    pub auth: Option<Value>,
}

/// Headers and query parameters that carry credentials, never shown to a function.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie"];
const CREDENTIAL_PARAMETER: &str = "access_token";

/// The event (Ferrobase) or params (OpenWhisk) a web request becomes.
pub fn event(request: &WebRequest<'_>, contract: Contract) -> Value {
    let query_pairs: Vec<(String, String)> = url::form_urlencoded::parse(request.query.as_bytes())
        .filter(|(name, _)| name != CREDENTIAL_PARAMETER)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let headers: Map<String, Value> = request
        .headers
        .iter()
        .filter(|(name, _)| !CREDENTIAL_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    let content_type = headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match contract {
        Contract::Ferrobase => {
            let query: Map<String, Value> = query_pairs
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            json!({
                "method": request.method,
                "path": request.path,
                "query": query,
                "headers": headers,
                "body": String::from_utf8_lossy(request.body),
                "json": serde_json::from_slice::<Value>(request.body).ok(),
                "auth": request.auth,
            })
        }
        Contract::OpenWhisk => {
            let mut params = Map::new();
            for (name, value) in &query_pairs {
                params.insert(name.clone(), Value::String(value.clone()));
            }
            let media = media_type(&content_type);
            if media == "application/json" {
                if let Ok(Value::Object(fields)) = serde_json::from_slice(request.body) {
                    params.extend(fields);
                }
            } else if media == "application/x-www-form-urlencoded" {
                for (name, value) in url::form_urlencoded::parse(request.body) {
                    params.insert(name.into_owned(), Value::String(value.into_owned()));
                }
            }
            let raw_query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&query_pairs)
                .finish();
            params.insert(
                "__ow_method".into(),
                Value::String(request.method.to_ascii_lowercase()),
            );
            params.insert("__ow_headers".into(), Value::Object(headers));
            params.insert("__ow_path".into(), Value::String(request.path.to_owned()));
            params.insert("__ow_query".into(), Value::String(raw_query));
            let body = match std::str::from_utf8(request.body) {
                Ok(text) if !is_binary(&content_type) => text.to_owned(),
                _ => BASE64.encode(request.body),
            };
            params.insert("__ow_body".into(), Value::String(body));
            if let Some(sub) = request.auth.as_ref().and_then(|auth| auth.get("sub")) {
                params.insert("__ow_user".into(), sub.clone());
            }
            Value::Object(params)
        }
    }
}

/// The media type of a `content-type` value, lower case, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a body of this content type is bytes rather than text (and so travels as base64).
/// No content type is text.
pub fn is_binary(content_type: &str) -> bool {
    let media = media_type(content_type);
    if media.is_empty() || media.starts_with("text/") {
        return false;
    }
    let textual = [
        "application/json",
        "application/javascript",
        "application/ecmascript",
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "image/svg+xml",
    ];
    !(textual.contains(&media.as_str()) || media.ends_with("+json") || media.ends_with("+xml"))
}

/// Turns a web action's result (JSON text) into the response to send for the function's
/// contract and the requested response type, or says why it cannot be sent.
pub fn shape(
    result_json: &str,
    contract: Contract,
    response_type: ResponseType,
) -> Result<WebResponse, String> {
    let value: Value = serde_json::from_str(result_json)
        .map_err(|error| format!("the result is not JSON: {error}"))?;
    let field = |name: &str, content_type: &str| match value.get(name) {
        Some(Value::String(text)) => Ok(WebResponse {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: text.as_bytes().to_vec(),
        }),
        _ => Err(format!(
            "a .{name} response needs a string `{name}` field in the result"
        )),
    };
    match (response_type, contract) {
        (ResponseType::Json, _) => Ok(json_response(result_json)),
        (ResponseType::Html, _) => field("html", "text/html; charset=utf-8"),
        (ResponseType::Text, _) => field("text", "text/plain; charset=utf-8"),
        (ResponseType::Http, Contract::Ferrobase) => shape_ferrobase(value, result_json),
        (ResponseType::Http, Contract::OpenWhisk) => shape_openwhisk(value),
    }
}

fn json_response(result_json: &str) -> WebResponse {
    WebResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: result_json.as_bytes().to_vec(),
    }
}

/// An OpenWhisk `.http` result: `statusCode` (or `status`), `headers`, `body`.
fn shape_openwhisk(value: Value) -> Result<WebResponse, String> {
    let Value::Object(object) = value else {
        return Err(format!(
            "an OpenWhisk web action answers with an object, not {}",
            bounded(&value.to_string())
        ));
    };
    let mut headers = headers(&object)?;
    let content_type = headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map(|(_, value)| value.clone());
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => match &content_type {
            Some(content_type) if is_binary(content_type) => BASE64
                .decode(text.trim())
                .map_err(|_| format!("the body of a {content_type} response must be base64"))?,
            Some(_) => text.as_bytes().to_vec(),
            None => {
                headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
                text.as_bytes().to_vec()
            }
        },
        Some(other) => {
            if content_type.is_none() {
                headers.push(("content-type".into(), "application/json".into()));
            }
            other.to_string().into_bytes()
        }
    };
    let default = if body.is_empty() { 204 } else { 200 };
    let code = object.get("statusCode").or_else(|| object.get("status"));
    let status = status(code, default)?;
    if matches!(status, 204 | 304) && !body.is_empty() {
        return Err(format!("a {status} response cannot have a body"));
    }
    Ok(WebResponse {
        status,
        headers,
        body,
    })
}

/// A Ferrobase result: a response when it has only `status`, `headers` and `body`.
fn shape_ferrobase(value: Value, result_json: &str) -> Result<WebResponse, String> {
    let Some(object) = value.as_object().filter(|object| {
        !object.is_empty()
            && object
                .keys()
                .all(|k| matches!(k.as_str(), "status" | "headers" | "body"))
    }) else {
        return Ok(json_response(result_json));
    };
    let status = status(object.get("status"), 200)?;
    let mut headers = headers(object)?;
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text.as_bytes().to_vec(),
        Some(other) => {
            if !headers.iter().any(|(name, _)| name == "content-type") {
                headers.push(("content-type".into(), "application/json".into()));
            }
            other.to_string().into_bytes()
        }
    };
    // 204 and 304 never have a body (RFC 9110 §15.3.5, §15.4.5).
    if matches!(status, 204 | 304) && !body.is_empty() {
        return Err(format!("a {status} response cannot have a body"));
    }
    Ok(WebResponse {
        status,
        headers,
        body,
    })
}

/// The status a result names, or `default`; only [`STATUS_RANGE`] may be answered.
fn status(value: Option<&Value>, default: u16) -> Result<u16, String> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| STATUS_RANGE.contains(s))
            .ok_or_else(|| {
                format!(
                    "status {} is not allowed; a web action answers with {}-{}",
                    bounded(&n.to_string()),
                    STATUS_RANGE.start(),
                    STATUS_RANGE.end()
                )
            }),
        Some(other) => Err(format!(
            "status must be a number, not {}",
            bounded(&other.to_string())
        )),
    }
}

/// A result's `headers`, checked, lower-cased, framing headers dropped; a name given an array
/// of values appears once per value.
fn headers(object: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    match object.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let name = name.to_ascii_lowercase();
                if !is_token(&name) {
                    return Err(format!("invalid header name {:?}", bounded(&name)));
                }
                let values = match value {
                    Value::Array(values) => values.iter().collect(),
                    single => vec![single],
                };
                for value in values {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        Value::Number(_) | Value::Bool(_) => value.to_string(),
                        other => {
                            return Err(format!(
                                "header {name:?} must be a string, number or boolean, not {}",
                                bounded(&other.to_string())
                            ));
                        }
                    };
                    if !is_field_value(&text) {
                        return Err(format!(
                            "header {name:?} has an invalid value {:?} (control characters are not allowed)",
                            bounded(&text)
                        ));
                    }
                    if !FRAMING_HEADERS.contains(&name.as_str()) {
                        headers.push((name.clone(), text));
                    }
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "headers must be an object, not {}",
                bounded(&other.to_string())
            ));
        }
    }
    Ok(headers)
}

/// An HTTP field name: one or more `tchar` (RFC 9110 §5.6.2).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP field value: visible characters, spaces and tabs, no CR, LF, NUL or other control
/// characters (RFC 9110 §5.5), and no surrounding whitespace.
fn is_field_value(text: &str) -> bool {
    text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        && text.trim_matches([' ', '\t']).len() == text.len()
}

fn bounded(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shaped(value: Value) -> Result<WebResponse, String> {
        shape(&value.to_string(), Contract::Ferrobase, ResponseType::Http)
    }

    #[test]
    fn other_values_are_a_json_200() {
        let response = shaped(json!({"echoed": 1})).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.headers,
            vec![("content-type".into(), "application/json".into())]
        );
        assert_eq!(response.body, br#"{"echoed":1}"#);
        assert_eq!(shaped(json!([1])).unwrap().body, b"[1]");
        assert_eq!(shaped(json!({})).unwrap().body, b"{}");
    }

    #[test]
    fn framing_and_connection_headers_are_dropped() {
        let smuggle =
            "x".to_owned() + "HTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n{\"smuggled\":true}";
        let response = shaped(json!({
            "status": 200,
            "headers": {
                "Content-Length": "1", "transfer-encoding": "chunked", "connection": "close",
                "upgrade": "websocket", "keep-alive": "timeout=5", "te": "trailers",
                "trailer": "x", "proxy-connection": "keep-alive", "x-kept": "yes"
            },
            "body": smuggle,
        }))
        .unwrap();
        assert_eq!(response.headers, vec![("x-kept".into(), "yes".into())]);
        assert_eq!(response.body, smuggle.as_bytes());
    }

    #[test]
    fn statuses_outside_200_to_599_are_errors() {
        for status in [
            json!(101),
            json!(100),
            json!(199),
            json!(600),
            json!(99999),
            json!(-1),
        ] {
            let error = shaped(json!({"status": status})).unwrap_err();
            assert!(error.contains("not allowed"), "{status}: {error}");
        }
        assert!(shaped(json!({"status": "200"})).is_err());
        assert!(shaped(json!({"status": 200.5})).is_err());
        for status in [200, 302, 404, 599] {
            assert_eq!(shaped(json!({"status": status})).unwrap().status, status);
        }
    }

    #[test]
    fn bodies_on_204_and_304_are_errors() {
        assert!(shaped(json!({"status": 204, "body": "x"})).is_err());
        assert!(shaped(json!({"status": 304, "body": {"a": 1}})).is_err());
        assert!(shaped(json!({"status": 204})).unwrap().body.is_empty());
        assert!(shaped(json!({"status": 204, "body": ""})).is_ok());
    }

    #[test]
    fn invalid_header_names_and_values_are_errors() {
        assert!(shaped(json!({"headers": {"x\r\ny": "1"}})).is_err());
        assert!(shaped(json!({"headers": {"": "1"}})).is_err());
        assert!(shaped(json!({"headers": {"x-a": "1\r\nset-cookie: a=b"}})).is_err());
        assert!(shaped(json!({"headers": {"x-a": "nul\u{0}"}})).is_err());
        assert!(shaped(json!({"headers": {"x-a": {"nested": 1}}})).is_err());
        assert!(shaped(json!({"headers": "x"})).is_err());
        let long = "y".repeat(100_000);
        let error = shaped(json!({"headers": {"x-a": format!("{long}\n")}})).unwrap_err();
        assert!(
            error.len() < 300,
            "the echo is bounded: {} bytes",
            error.len()
        );
    }

    #[test]
    fn header_values_may_be_numbers_booleans_or_lists() {
        let response = shaped(json!({
            "headers": {"X-Count": 3, "x-flag": true, "set-cookie": ["a=1", "b=2"]},
            "body": {"ok": true},
        }))
        .unwrap();
        let mut headers = response.headers.clone();
        headers.sort();
        assert_eq!(
            headers,
            vec![
                ("content-type".into(), "application/json".into()),
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
                ("x-count".into(), "3".into()),
                ("x-flag".into(), "true".into()),
            ]
        );
        assert_eq!(response.body, br#"{"ok":true}"#);
    }
}
