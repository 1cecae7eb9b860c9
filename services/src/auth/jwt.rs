//! JWT verification and minting (docs/api.md, "Auth").
//!
//! Three kinds of key are accepted, each only for its own algorithm:
//! - an HS256 shared secret, configured or generated into the data directory on first start;
//!   it is also the key [`TokenVerifier::mint`] signs with (`ferrobase token`);
//! - RS256 and ES256 (P-256) public keys from PEM files;
//! - RS256 and ES256 public keys from a JWKS file, chosen by the token's `kid`.
//!
//! - the built-in auth service's ES256 keys, one ring per namespace, for tokens whose `kid`
//!   starts with `fb1.` (see `accounts::keys`), when an [`AccountTokens`] is attached.
//!
//! The algorithm named in a token's header picks the kind of key, and no key ever serves two
//! algorithms, which is what defeats algorithm confusion (an HS256 token "signed" with a public
//! key, or an HMAC signature presented as RS256). `alg: none` and every other algorithm are
//! refused before any key is touched.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferrobase_core::auth::Claims;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey, Header, Validation};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, MAX_LEEWAY};

/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// Where the generated secret lives, relative to the data directory.
pub const SECRET_FILE: &str = "auth/hs256.secret";

/// Longest token looked at; anything longer is refused unparsed.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Accepted RSA modulus sizes, in bits (the verifier supports up to 4096).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;
/// Longest piece of client input echoed back in an error message.
const MAX_ECHO: usize = 64;

/// Why key material could not be loaded. Meant for operators: names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("invalid auth configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: {reason}", path.display())]
    InvalidKey { path: PathBuf, reason: String },
}

/// Why a token was refused. The messages are safe to return to clients: they never contain key
/// material, and client input is echoed only briefly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token has expired")]
    Expired,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is signed with an unknown key")]
    UnknownKey,
    #[error("unsupported token algorithm {0:?}: expected HS256, RS256 or ES256")]
    UnsupportedAlgorithm(String),
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
}

/// The algorithms Ferrobase accepts; every other one is refused up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    fn parse(name: &str) -> Result<Self, TokenError> {
        match name {
            "HS256" => Ok(Alg::Hs256),
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            other => Err(TokenError::UnsupportedAlgorithm(echo(other))),
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Alg::Hs256 => Algorithm::HS256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
        }
    }
}

/// A public key and the one algorithm it verifies.
#[derive(Debug, Clone)]
struct PublicKey {
    alg: Alg,
    key: DecodingKey,
}

/// Keys from the JWKS file.
#[derive(Debug, Clone, Default)]
struct Jwks {
    by_kid: HashMap<String, PublicKey>,
    /// Keys without a `kid`, tried (with the PEM keys) for tokens without one.
    unnamed: Vec<PublicKey>,
}

/// Verifies the access tokens of the built-in auth service (`accounts`), whose keys live in
/// the record store and rotate, so they are looked up per token rather than loaded here.
#[async_trait::async_trait]
pub trait AccountTokens: Send + Sync + fmt::Debug {
    /// Verifies `token`, whose header names `kid`; the claims are always a `user` token of the
    /// namespace whose key signed it.
    async fn verify(&self, kid: &str, token: &str) -> Result<Claims, TokenError>;
}

/// The key-id prefix of the auth service's tokens.
const ACCOUNT_KID_PREFIX: &str = "fb1.";

/// Verifies bearer tokens and mints HS256 ones. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct TokenVerifier {
    accounts: Option<std::sync::Arc<dyn AccountTokens>>,
    hs256_signing: EncodingKey,
    hs256_verifying: DecodingKey,
    pem_keys: Vec<PublicKey>,
    jwks: Option<Jwks>,
    /// One per accepted algorithm, so that `verify` allocates none.
    validation_hs256: Validation,
    validation_rs256: Validation,
    validation_es256: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self
            .jwks
            .iter()
            .flat_map(|jwks| jwks.by_kid.keys().map(String::as_str))
            .collect();
        kids.sort_unstable();
        f.debug_struct("TokenVerifier")
            .field("hs256_secret", &"[redacted]")
            .field(
                "pem_keys",
                &self.pem_keys.iter().map(|k| k.alg).collect::<Vec<_>>(),
            )
            .field("jwks_kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.validation_hs256.leeway)
            .finish()
    }
}

impl TokenVerifier {
    /// Loads (or, for the HS256 secret, creates) all key material named by `config`.
    pub fn load(config: &AuthConfig, data_dir: &Path) -> Result<Self, AuthSetupError> {
        if config.leeway > MAX_LEEWAY {
            return Err(AuthSetupError::InvalidConfig(format!(
                "leeway is {:?}; at most {:?} is allowed",
                config.leeway, MAX_LEEWAY
            )));
        }
        let secret = match &config.hs256_secret {
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return Err(AuthSetupError::InvalidConfig(format!(
                    "hs256_secret must be at least {MIN_SECRET_LEN} bytes long"
                )));
            }
            Some(secret) => secret.clone(),
            None => load_or_create_secret(&data_dir.join(SECRET_FILE))?,
        };
        let pem_keys = config
            .public_key_files
            .iter()
            .map(|path| load_pem(path))
            .collect::<Result<_, _>>()?;
        let jwks = config.jwks_file.as_deref().map(load_jwks).transpose()?;

        let validation = |alg: Alg| {
            let mut validation = Validation::new(alg.jwt());
            validation.leeway = config.leeway.as_secs();
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp"]);
            if let Some(issuer) = &config.issuer {
                validation.set_issuer(&[issuer]);
                validation.required_spec_claims.insert("iss".to_owned());
            }
            if let Some(audience) = &config.audience {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            validation
        };
        Ok(TokenVerifier {
            accounts: None,
            hs256_signing: EncodingKey::from_secret(secret.as_bytes()),
            hs256_verifying: DecodingKey::from_secret(secret.as_bytes()),
            pem_keys,
            jwks,
            validation_hs256: validation(Alg::Hs256),
            validation_rs256: validation(Alg::Rs256),
            validation_es256: validation(Alg::Es256),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    /// The same verifier also accepting the auth service's tokens.
    pub fn with_account_tokens(mut self, accounts: std::sync::Arc<dyn AccountTokens>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// Like [`Self::verify`], and also accepts the auth service's tokens: what requests use.
    pub async fn verify_request(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        if let Some(accounts) = &self.accounts {
            let header = peek_header(token)?;
            if let Some(kid) = header.kid.filter(|kid| kid.starts_with(ACCOUNT_KID_PREFIX)) {
                if header.alg != "ES256" {
                    return Err(TokenError::UnsupportedAlgorithm(echo(&header.alg)));
                }
                return accounts.verify(&kid, token).await;
            }
        }
        self.verify(token)
    }

    /// Checks the token's signature, expiry and claims, and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let header = peek_header(token)?;
        let alg = Alg::parse(&header.alg)?;
        if header.crit.is_some() {
            return Err(TokenError::Malformed(
                "critical header extensions are not supported".into(),
            ));
        }
        let validation = match alg {
            Alg::Hs256 => &self.validation_hs256,
            Alg::Rs256 => &self.validation_rs256,
            Alg::Es256 => &self.validation_es256,
        };
        let claims = match alg {
            Alg::Hs256 => decode(token, &self.hs256_verifying, validation)?,
            Alg::Rs256 | Alg::Es256 => {
                let candidates = self.public_keys(alg, header.kid.as_deref())?;
                let mut outcome = Err(TokenError::BadSignature);
                for key in candidates {
                    outcome = decode(token, key, validation);
                    if outcome != Err(TokenError::BadSignature) {
                        break;
                    }
                }
                outcome?
            }
        };
        if !claims.is_object() {
            return Err(TokenError::InvalidClaims(
                "the payload is not a JSON object".into(),
            ));
        }
        serde_json::from_value(claims).map_err(|e| TokenError::InvalidClaims(echo(&e.to_string())))
    }

    /// Signs `claims` with the HS256 secret, adding the configured `iss` and `aud` so that the
    /// token passes [`TokenVerifier::verify`].
    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        #[derive(Serialize)]
        struct Minted<'a> {
            #[serde(flatten)]
            claims: &'a Claims,
            #[serde(skip_serializing_if = "Option::is_none")]
            iss: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            aud: Option<&'a str>,
        }
        let minted = Minted {
            claims,
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &minted, &self.hs256_signing)
            .map_err(|e| TokenError::InvalidClaims(format!("cannot sign the claims: {e}")))
    }

    /// The public keys that may have signed a token with `alg` and `kid`. With a JWKS and a
    /// `kid`, that key alone; otherwise every key of the algorithm.
    fn public_keys(&self, alg: Alg, kid: Option<&str>) -> Result<Vec<&DecodingKey>, TokenError> {
        if let (Some(jwks), Some(kid)) = (&self.jwks, kid) {
            return match jwks.by_kid.get(kid) {
                Some(key) if key.alg == alg => Ok(vec![&key.key]),
                _ => Err(TokenError::UnknownKey),
            };
        }
        let jwks_keys = self
            .jwks
            .iter()
            .flat_map(|jwks| jwks.by_kid.values().chain(&jwks.unnamed));
        let keys: Vec<&DecodingKey> = self
            .pem_keys
            .iter()
            .chain(jwks_keys)
            .filter(|key| key.alg == alg)
            .map(|key| &key.key)
            .collect();
        if keys.is_empty() {
            Err(TokenError::UnknownKey)
        } else {
            Ok(keys)
        }
    }
}

/// The header fields looked at before choosing a key.
#[derive(Deserialize)]
struct PeekedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Reads the header without trusting it, so that `alg: none` and its kin get a precise error
/// rather than a parse failure.
fn peek_header(token: &str) -> Result<PeekedHeader, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three base64url parts separated by '.'".into(),
        ));
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed("the header is not base64url".into()))?;
    serde_json::from_slice(&json)
        .map_err(|_| TokenError::Malformed("the header is not a JSON object with an alg".into()))
}

/// Verifies signature and registered claims; the payload comes back as JSON so that an expired
/// token reads as expired even when its other claims are also wrong.
fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<serde_json::Value, TokenError> {
    jsonwebtoken::decode::<serde_json::Value>(token, key, validation)
        .map(|data| data.claims)
        .map_err(token_error)
}

fn token_error(error: JwtError) -> TokenError {
    let claims = |message: String| TokenError::InvalidClaims(message);
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => claims("the token is not valid yet (nbf)".into()),
        ErrorKind::InvalidIssuer => claims("the issuer (iss) is not accepted".into()),
        ErrorKind::InvalidAudience => claims("the audience (aud) is not accepted".into()),
        ErrorKind::InvalidSubject => claims("the subject (sub) is not accepted".into()),
        ErrorKind::MissingRequiredClaim(name) => claims(format!("missing required claim {name}")),
        ErrorKind::InvalidClaimFormat(name) => claims(format!("claim {name} is malformed")),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => TokenError::Malformed("not a well-formed JWT".into()),
        // Keys are checked when loaded, and `verify` matches keys to algorithms, so these mean
        // a key the crypto backend still dislikes: as far as the client is concerned, the
        // signature does not verify.
        other => {
            tracing::warn!(error = ?other, "unexpected JWT verification failure");
            TokenError::BadSignature
        }
    }
}

/// Client input in error messages is cut short, on a character boundary.
fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Reads the generated HS256 secret, creating it first if there is none. The file holds the
/// secret as text, and the text's bytes are the key, exactly as with `hs256_secret`: the file
/// can be copied into the configuration of other nodes.
fn load_or_create_secret(path: &Path) -> Result<String, AuthSetupError> {
    match fs::read_to_string(path) {
        Ok(text) => parse_secret_file(path, &text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            create_secret_file(path)?;
            let text = fs::read_to_string(path).map_err(|source| AuthSetupError::Read {
                path: path.to_owned(),
                source,
            })?;
            parse_secret_file(path, &text)
        }
        Err(source) => Err(AuthSetupError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse_secret_file(path: &Path, text: &str) -> Result<String, AuthSetupError> {
    let secret = text.trim();
    if secret.len() < MIN_SECRET_LEN {
        return Err(AuthSetupError::InvalidKey {
            path: path.to_owned(),
            reason: format!(
                "the secret is shorter than {MIN_SECRET_LEN} bytes; delete the file to have a new \
                 one generated (tokens signed with the old one stop working)"
            ),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "secret file is accessible to other users; chmod 600 it");
        }
    }
    Ok(secret.to_owned())
}

/// Writes a fresh secret to `path` unless one appears there first. The secret is written to a
/// private temporary file and hard-linked into place, which fails if `path` exists: two nodes
/// starting together on one data directory end up sharing whichever secret landed first, and
/// no reader ever sees a half-written file.
fn create_secret_file(path: &Path) -> Result<(), AuthSetupError> {
    let write_error = |source| AuthSetupError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(write_error)?;

    let mut secret = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|e| write_error(io::Error::other(e)))?;
    let mut nonce = [0u8; 8];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| write_error(io::Error::other(e)))?;
    let temp = dir.join(format!(
        ".hs256.secret.{}.tmp",
        URL_SAFE_NO_PAD.encode(nonce)
    ));

    let written = write_private_file(&temp, format!("{}\n", URL_SAFE_NO_PAD.encode(secret)));
    let linked = written.and_then(|()| match fs::hard_link(&temp, path) {
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    // Best effort: the temporary file is no longer needed either way.
    let _ = fs::remove_file(&temp);
    linked.map_err(write_error)?;
    // Make the new directory entry durable before anyone is handed a token signed with it.
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error)?;
    tracing::info!(path = %path.display(), "generated a new HS256 token secret");
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn write_private_file(path: &Path, contents: String) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Loads one RSA or EC P-256 public key from a PEM file.
fn load_pem(path: &Path) -> Result<PublicKey, AuthSetupError> {
    let invalid = |reason: String| AuthSetupError::InvalidKey {
        path: path.to_owned(),
        reason,
    };
    let pem = fs::read(path).map_err(|source| AuthSetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("PRIVATE KEY-----") {
        return Err(invalid(
            "holds a private key; configure the public key instead \
             (openssl pkey -in KEY.pem -pubout)"
                .into(),
        ));
    }
    if text.contains("CERTIFICATE-----") {
        return Err(invalid(
            "holds a certificate; configure its public key instead \
             (openssl x509 -in CERT.pem -pubkey -noout)"
                .into(),
        ));
    }
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .map_err(|e| invalid(format!("not a PEM-encoded RSA or EC public key ({e})")))?;
    // Going through the JWK form validates the key (RSA modulus, EC curve) and shares one set
    // of checks with keys from a JWKS.
    let jwk = Jwk::from_decoding_key(&key, None)
        .map_err(|e| invalid(format!("not a usable RS256 or ES256 public key ({e})")))?;
    public_key(&jwk).map_err(invalid)
}

/// Loads the RS256/ES256 signing keys of a JWKS file. Keys Ferrobase cannot use (encryption
/// keys, other algorithms or curves) are skipped with a warning, as identity providers often
/// publish several kinds; a file with no usable key at all is an error.
fn load_jwks(path: &Path) -> Result<Jwks, AuthSetupError> {
    let invalid = |reason: String| AuthSetupError::InvalidKey {
        path: path.to_owned(),
        reason,
    };
    let json = fs::read(path).map_err(|source| AuthSetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let document: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| invalid(format!("not valid JSON ({e})")))?;
    let Some(keys) = document.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(invalid(
            "expected a JSON object with a \"keys\" array (RFC 7517)".into(),
        ));
    };
    let mut jwks = Jwks::default();
    for (index, raw) in keys.iter().enumerate() {
        let kid = raw.get("kid").and_then(serde_json::Value::as_str);
        let parsed = serde_json::from_value::<Jwk>(raw.clone())
            .map_err(|e| format!("not a valid JWK ({e})"))
            .and_then(|jwk| public_key(&jwk));
        let key = match parsed {
            Ok(key) => key,
            Err(reason) => {
                tracing::warn!(
                    path = %path.display(), index, kid, "skipping JWKS key: {reason}"
                );
                continue;
            }
        };
        match kid {
            Some(kid) => {
                if jwks.by_kid.insert(kid.to_owned(), key).is_some() {
                    return Err(invalid(format!("two keys have kid {kid:?}")));
                }
            }
            None => jwks.unnamed.push(key),
        }
    }
    if jwks.by_kid.is_empty() && jwks.unnamed.is_empty() {
        return Err(invalid("holds no usable RS256 or ES256 signing key".into()));
    }
    Ok(jwks)
}

/// Turns a JWK into a verifying key, refusing anything but RSA (RS256) and EC P-256 (ES256)
/// signature keys. Symmetric keys are refused outright: a JWKS is public material.
fn public_key(jwk: &Jwk) -> Result<PublicKey, String> {
    if let Some(PublicKeyUse::Encryption) = jwk.common.public_key_use {
        return Err("an encryption key (use: enc)".into());
    }
    let declared = jwk.common.key_algorithm;
    let refuse_declared = |expected: KeyAlgorithm| match declared {
        Some(alg) if alg != expected => Err(format!(
            "declared for {alg}; only {expected} is supported for this key type"
        )),
        _ => Ok(()),
    };
    match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            refuse_declared(KeyAlgorithm::RS256)?;
            let key = DecodingKey::from_rsa_components(&params.n, &params.e)
                .map_err(|e| format!("invalid RSA components ({e})"))?;
            let bits = match key.kind() {
                DecodingKeyKind::RsaModulusExponent { n, .. } => bit_length(n),
                DecodingKeyKind::SecretOrDer(_) => 0,
            };
            if !RSA_BITS.contains(&bits) {
                return Err(format!(
                    "RSA key of {bits} bits; {} to {} are supported",
                    RSA_BITS.start(),
                    RSA_BITS.end()
                ));
            }
            Ok(PublicKey {
                alg: Alg::Rs256,
                key,
            })
        }
        AlgorithmParameters::EllipticCurve(params) => {
            if params.curve != EllipticCurve::P256 {
                return Err(format!(
                    "EC key on curve {:?}; only P-256 (ES256) is supported",
                    params.curve
                ));
            }
            refuse_declared(KeyAlgorithm::ES256)?;
            let key = DecodingKey::from_ec_components(&params.x, &params.y)
                .map_err(|e| format!("invalid EC components ({e})"))?;
            // Verifying a dummy signature makes the backend parse the point: an error (rather
            // than a plain "does not verify") means it is not on the curve.
            if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(65)
                || jsonwebtoken::crypto::verify("AA", b"", &key, Algorithm::ES256).is_err()
            {
                return Err("invalid P-256 public key".into());
            }
            Ok(PublicKey {
                alg: Alg::Es256,
                key,
            })
        }
        AlgorithmParameters::OctetKey(_) => {
            Err("a symmetric (oct) key; use hs256_secret for shared secrets".into())
        }
        AlgorithmParameters::OctetKeyPair(_) => {
            Err("an OKP (EdDSA) key; only RS256 and ES256 are supported".into())
        }
        _ => Err("an unsupported key type; only RSA and EC P-256 are supported".into()),
    }
}

fn bit_length(big_endian: &[u8]) -> usize {
    let digits = match big_endian.iter().position(|&byte| byte != 0) {
        Some(first) => &big_endian[first..],
        None => return 0,
    };
    digits.len() * 8 - digits[0].leading_zeros() as usize
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
