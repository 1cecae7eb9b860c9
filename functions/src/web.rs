//! What a web action's result may become on the wire.
//!
//! A web action (a function deployed with `"web": true`, reached at `/web/{ns}/{name}`) answers
//! the HTTP request with its result. A result that is an object with only `status`, `headers`
//! and `body` keys is an HTTP response; any other value is sent as a JSON 200.
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

use serde_json::Value;

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

/// Turns a web action's result (JSON text) into the response to send, or says why it cannot
/// be sent.
pub fn shape(result_json: &str) -> Result<WebResponse, String> {
    let value: Value = serde_json::from_str(result_json)
        .map_err(|error| format!("the result is not JSON: {error}"))?;
    let Some(object) = value.as_object().filter(|object| {
        !object.is_empty()
            && object
                .keys()
                .all(|k| matches!(k.as_str(), "status" | "headers" | "body"))
    }) else {
        return Ok(WebResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: result_json.as_bytes().to_vec(),
        });
    };
    let status = match object.get("status") {
        None | Some(Value::Null) => 200,
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
            })?,
        Some(other) => {
            return Err(format!(
                "status must be a number, not {}",
                bounded(&other.to_string())
            ));
        }
    };
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
        shape(&value.to_string())
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
