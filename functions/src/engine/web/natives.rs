//! The Rust half of the web platform globals: WHATWG URL parsing (the `url` crate), UTF-8,
//! base64, hashes and HMAC (RustCrypto) and randomness (`rand`'s CSPRNG). The JS glue in
//! this folder gives them their class shapes.
//!
//! Bytes cross from JS as "binary strings" (one char per byte, 0–255) because reading a typed
//! array's memory from Rust needs `unsafe`; text crosses as text. Every function taking data
//! has a `binary` flag saying which of the two it got. Bytes come back as `ArrayBuffer`s.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{KeyInit, Mac};
use rand::RngCore;
use rquickjs::function::Opt;
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, Value};
use sha2::Digest;

/// Most bytes one `getRandomValues` call fills (the Web Crypto limit).
pub const MAX_RANDOM_BYTES: usize = 65_536;

/// The natives object handed to the JS glue (never to the function's code).
pub fn natives<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    let natives = Object::new(ctx.clone())?;
    natives.set("utf8Encode", Function::new(ctx.clone(), utf8_encode)?)?;
    natives.set("utf8Decode", Function::new(ctx.clone(), utf8_decode)?)?;
    natives.set("base64Encode", Function::new(ctx.clone(), base64_encode)?)?;
    natives.set("base64Decode", Function::new(ctx.clone(), base64_decode)?)?;
    natives.set("randomBytes", Function::new(ctx.clone(), random_bytes)?)?;
    natives.set("randomUUID", Function::new(ctx.clone(), random_uuid)?)?;
    natives.set("digest", Function::new(ctx.clone(), digest)?)?;
    natives.set("hmac", Function::new(ctx.clone(), hmac)?)?;
    natives.set("urlParse", Function::new(ctx.clone(), url_parse)?)?;
    natives.set("urlSet", Function::new(ctx.clone(), url_set)?)?;
    natives.set("formParse", Function::new(ctx.clone(), form_parse)?)?;
    natives.set("formSerialize", Function::new(ctx.clone(), form_serialize)?)?;
    super::keys::install(ctx, &natives)?;
    super::multipart::install(ctx, &natives)?;
    super::intl::install(ctx, &natives)?;
    Ok(natives)
}

/// The bytes of `data`: a binary string's chars as bytes, or text as UTF-8.
pub(super) fn bytes(data: String, binary: bool) -> Vec<u8> {
    if binary {
        // The glue only builds binary strings from bytes, so every char is below 256.
        data.chars().map(|c| c as u32 as u8).collect()
    } else {
        data.into_bytes()
    }
}

fn buffer<'js>(ctx: &Ctx<'js>, bytes: Vec<u8>) -> rquickjs::Result<ArrayBuffer<'js>> {
    ArrayBuffer::new(ctx.clone(), bytes)
}

fn utf8_encode<'js>(ctx: Ctx<'js>, text: String) -> rquickjs::Result<ArrayBuffer<'js>> {
    buffer(&ctx, text.into_bytes())
}

/// UTF-8 to text: a BOM is dropped unless `ignore_bom`; invalid bytes are U+FFFD, or a
/// TypeError when `fatal` (the WHATWG decoder's replacement rules, as `from_utf8_lossy`).
fn utf8_decode(
    ctx: Ctx<'_>,
    data: String,
    fatal: bool,
    ignore_bom: bool,
) -> rquickjs::Result<String> {
    let bytes = bytes(data, true);
    let body = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) if !ignore_bom => rest,
        _ => bytes.as_slice(),
    };
    if fatal {
        match std::str::from_utf8(body) {
            Ok(text) => Ok(text.to_owned()),
            Err(error) => Err(Exception::throw_type(
                &ctx,
                &format!(
                    "The encoded data is not valid UTF-8 (at byte {})",
                    error.valid_up_to()
                ),
            )),
        }
    } else {
        Ok(String::from_utf8_lossy(body).into_owned())
    }
}

const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Base64 of `data`; `url` picks the URL-safe alphabet without padding (Node's "base64url").
fn base64_encode(data: String, binary: bool, url: bool) -> String {
    let bytes = bytes(data, binary);
    if url {
        general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    } else {
        general_purpose::STANDARD.encode(bytes)
    }
}

/// Bytes of base64 `text` (ASCII whitespace ignored, padding optional, either alphabet), or
/// `null` when it is not base64: the glue turns that into its own error.
fn base64_decode<'js>(ctx: Ctx<'js>, text: String) -> rquickjs::Result<Value<'js>> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\x0C' | '\r'))
        .collect();
    let decoded = if compact.contains(['-', '_']) {
        URL_SAFE_LENIENT.decode(&compact)
    } else {
        STANDARD_LENIENT.decode(&compact)
    };
    match decoded {
        Ok(bytes) => Ok(buffer(&ctx, bytes)?.into_value()),
        Err(_) => Ok(Value::new_null(ctx)),
    }
}

fn random_bytes(ctx: Ctx<'_>, length: usize) -> rquickjs::Result<ArrayBuffer<'_>> {
    if length > MAX_RANDOM_BYTES {
        return Err(Exception::throw_range(
            &ctx,
            &format!("at most {MAX_RANDOM_BYTES} random bytes per call"),
        ));
    }
    let mut bytes = vec![0; length];
    rand::rng().fill_bytes(&mut bytes);
    buffer(&ctx, bytes)
}

/// A version 4 (random) UUID in its lowercase hyphenated form.
fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A hash algorithm by its Web Crypto or Node name.
#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn parse(ctx: &Ctx<'_>, name: &str) -> rquickjs::Result<Algorithm> {
        match name.to_ascii_lowercase().replace('-', "").as_str() {
            "md5" => Ok(Algorithm::Md5),
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            "sha384" => Ok(Algorithm::Sha384),
            "sha512" => Ok(Algorithm::Sha512),
            _ => Err(Exception::throw_dom(
                ctx,
                "NotSupportedError",
                &format!(
                    "unsupported hash algorithm {:?} (MD5, SHA-1, SHA-256, SHA-384, SHA-512)",
                    name.chars().take(32).collect::<String>()
                ),
            )),
        }
    }
}

fn digest<'js>(
    ctx: Ctx<'js>,
    algorithm: String,
    data: String,
    binary: bool,
) -> rquickjs::Result<ArrayBuffer<'js>> {
    let data = bytes(data, binary);
    let out = match Algorithm::parse(&ctx, &algorithm)? {
        Algorithm::Md5 => <md5::Md5 as md5::Digest>::digest(&data).to_vec(),
        Algorithm::Sha1 => sha1::Sha1::digest(&data).to_vec(),
        Algorithm::Sha256 => sha2::Sha256::digest(&data).to_vec(),
        Algorithm::Sha384 => sha2::Sha384::digest(&data).to_vec(),
        Algorithm::Sha512 => sha2::Sha512::digest(&data).to_vec(),
    };
    buffer(&ctx, out)
}

fn mac<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hmac<'js>(
    ctx: Ctx<'js>,
    algorithm: String,
    key: String,
    data: String,
    binary: bool,
) -> rquickjs::Result<ArrayBuffer<'js>> {
    let key = bytes(key, true);
    let data = bytes(data, binary);
    let out = match Algorithm::parse(&ctx, &algorithm)? {
        Algorithm::Md5 => {
            return Err(Exception::throw_dom(
                &ctx,
                "NotSupportedError",
                "HMAC with MD5 is not supported",
            ));
        }
        Algorithm::Sha1 => mac::<hmac::Hmac<sha1::Sha1>>(&key, &data),
        Algorithm::Sha256 => mac::<hmac::Hmac<sha2::Sha256>>(&key, &data),
        Algorithm::Sha384 => mac::<hmac::Hmac<sha2::Sha384>>(&key, &data),
        Algorithm::Sha512 => mac::<hmac::Hmac<sha2::Sha512>>(&key, &data),
    };
    buffer(&ctx, out)
}

/// A URL's parts, in the order the glue's `URL` reads them.
fn components(url: &url::Url) -> Vec<String> {
    use url::quirks;
    vec![
        quirks::href(url).to_owned(),
        quirks::origin(url),
        quirks::protocol(url).to_owned(),
        quirks::username(url).to_owned(),
        quirks::password(url).to_owned(),
        quirks::host(url).to_owned(),
        quirks::hostname(url).to_owned(),
        quirks::port(url).to_owned(),
        quirks::pathname(url).to_owned(),
        quirks::search(url).to_owned(),
        quirks::hash(url).to_owned(),
    ]
}

/// The parts of `input` parsed against `base` (WHATWG URL), or `null` when either fails.
fn url_parse<'js>(ctx: Ctx<'js>, input: String, base: Opt<String>) -> rquickjs::Result<Value<'js>> {
    let parsed = match base.0 {
        Some(base) => url::Url::parse(&base).and_then(|base| base.join(&input)),
        None => url::Url::parse(&input),
    };
    match parsed {
        Ok(url) => rquickjs::IntoJs::into_js(components(&url), &ctx),
        Err(_) => Ok(Value::new_null(ctx)),
    }
}

/// The parts of `href` after setting one part the way the `URL` setters do (an invalid value
/// leaves the URL as it was); `null` when `href` itself is set to something unparsable.
fn url_set<'js>(
    ctx: Ctx<'js>,
    href: String,
    part: String,
    value: String,
) -> rquickjs::Result<Value<'js>> {
    use url::quirks;
    let Ok(mut url) = url::Url::parse(&href) else {
        return Ok(Value::new_null(ctx));
    };
    // The setters' own failures are ignored, as the URL standard says.
    match part.as_str() {
        "href" => {
            if quirks::set_href(&mut url, &value).is_err() {
                return Ok(Value::new_null(ctx));
            }
        }
        "protocol" => drop(quirks::set_protocol(&mut url, &value)),
        "username" => drop(quirks::set_username(&mut url, &value)),
        "password" => drop(quirks::set_password(&mut url, &value)),
        "host" => drop(quirks::set_host(&mut url, &value)),
        "hostname" => drop(quirks::set_hostname(&mut url, &value)),
        "port" => drop(quirks::set_port(&mut url, &value)),
        "pathname" => quirks::set_pathname(&mut url, &value),
        "search" => quirks::set_search(&mut url, &value),
        "hash" => quirks::set_hash(&mut url, &value),
        _ => return Err(Exception::throw_type(&ctx, "unknown URL part")),
    }
    rquickjs::IntoJs::into_js(components(&url), &ctx)
}

/// `application/x-www-form-urlencoded` text as a flat `[name, value, name, value, ...]`.
fn form_parse(text: String) -> Vec<String> {
    let text = text.strip_prefix('?').unwrap_or(&text);
    url::form_urlencoded::parse(text.as_bytes())
        .flat_map(|(name, value)| [name.into_owned(), value.into_owned()])
        .collect()
}

/// A flat `[name, value, ...]` as `application/x-www-form-urlencoded` text.
fn form_serialize(pairs: Vec<String>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for pair in pairs.chunks(2) {
        if let [name, value] = pair {
            out.append_pair(name, value);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_variant_1() {
        let id = random_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn binary_strings_are_bytes() {
        assert_eq!(bytes("\u{ff}\u{0}a".into(), true), vec![0xFF, 0, b'a']);
        assert_eq!(bytes("é".into(), false), vec![0xC3, 0xA9]);
    }
}
