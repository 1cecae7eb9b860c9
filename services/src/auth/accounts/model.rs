//! The records the auth service keeps in a namespace's record space, and their public views.
//!
//! Keys: `auth/config` (settings), `auth/keys` (the signing key ring), `auth/users/{id}`,
//! `auth/emails/{sha256 of the lowercased email}` (the uniqueness index, naming the user),
//! `auth/sessions/{user}/{sid}` and `auth/codes/{kind}/{user}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::AccountError;

pub const CONFIG_KEY: &str = "auth/config";
pub const KEYS_KEY: &str = "auth/keys";
pub const USERS_PREFIX: &str = "auth/users/";

pub fn user_key(id: &str) -> String {
    format!("{USERS_PREFIX}{id}")
}

pub fn email_key(email: &str) -> String {
    format!(
        "auth/emails/{}",
        hex::encode(Sha256::digest(email.as_bytes()))
    )
}

pub fn sessions_prefix(user: &str) -> String {
    format!("auth/sessions/{user}/")
}

pub fn session_key(user: &str, sid: &str) -> String {
    format!("auth/sessions/{user}/{sid}")
}

pub fn code_key(kind: CodeKind, user: &str) -> String {
    format!("auth/codes/{}/{user}", kind.as_str())
}

/// Bounds of the per-namespace settings.
pub const MIN_PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 6..=128;
pub const ACCESS_TOKEN_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=86_400;
pub const SESSION_TTL_SECS: std::ops::RangeInclusive<u64> = 3_600..=365 * 86_400;
pub const CODE_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=86_400;
/// Largest `custom` settings object and largest custom claims object, as JSON.
pub const MAX_CUSTOM_BYTES: usize = 16 * 1024;
pub const MAX_CLAIMS_BYTES: usize = 4 * 1024;
/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Most live sessions per user; signing in beyond it ends the oldest.
pub const MAX_SESSIONS_PER_USER: usize = 50;
/// Wrong tries a code survives; the next wrong one deletes it.
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Claims the server sets itself, which custom claims may not name.
pub const RESERVED_CLAIMS: [&str; 11] = [
    "sub", "ns", "role", "exp", "iat", "nbf", "sid", "iss", "aud", "jti", "scopes",
];

/// A namespace's auth settings (`PUT /v1/auth/{ns}/config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Whether the namespace's auth routes answer at all. Default false.
    pub enabled: bool,
    /// Whether `POST /signup` with `{}` creates an anonymous user. Default false.
    pub anonymous: bool,
    /// Shortest password, in characters. Default 8; 6 to 128.
    pub min_password_length: usize,
    /// Lifetime of access tokens, in seconds. Default 3600; 60 to 86400.
    pub access_token_ttl: u64,
    /// A session not refreshed for this many seconds ends. Default 30 days; 1 h to 365 days.
    pub session_ttl: u64,
    /// Lifetime of verification and password-reset codes, in seconds. Default 3600; 60 to 86400.
    pub code_ttl: u64,
    /// Free-form settings for the namespace's own code (a JSON object, at most 16 KiB).
    pub custom: Map<String, Value>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            anonymous: false,
            min_password_length: 8,
            access_token_ttl: 3_600,
            session_ttl: 30 * 86_400,
            code_ttl: 3_600,
            custom: Map::new(),
        }
    }
}

impl AuthSettings {
    pub fn validate(&self) -> Result<(), AccountError> {
        let bound = |name: &str, range: String| {
            Err(AccountError::Invalid(format!(
                "{name} must be between {range}"
            )))
        };
        if !MIN_PASSWORD_LENGTH.contains(&self.min_password_length) {
            return bound("min_password_length", "6 and 128".into());
        }
        if !ACCESS_TOKEN_TTL_SECS.contains(&self.access_token_ttl) {
            return bound("access_token_ttl", "60 and 86400 seconds".into());
        }
        if !SESSION_TTL_SECS.contains(&self.session_ttl) {
            return bound("session_ttl", "3600 and 31536000 seconds".into());
        }
        if !CODE_TTL_SECS.contains(&self.code_ttl) {
            return bound("code_ttl", "60 and 86400 seconds".into());
        }
        if json_len(&self.custom) > MAX_CUSTOM_BYTES {
            return Err(AccountError::Invalid(format!(
                "custom must be at most {MAX_CUSTOM_BYTES} bytes of JSON"
            )));
        }
        Ok(())
    }
}

pub fn json_len(value: &Map<String, Value>) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |json| json.len())
}

/// Checks an admin's custom claims: an object of at most [`MAX_CLAIMS_BYTES`] naming no
/// reserved claim.
pub fn validate_claims(claims: &Map<String, Value>) -> Result<(), AccountError> {
    if let Some(name) = claims
        .keys()
        .find(|name| RESERVED_CLAIMS.contains(&name.as_str()))
    {
        return Err(AccountError::Invalid(format!(
            "claim {:?} is set by the server and cannot be customised",
            crate::error::bounded(name)
        )));
    }
    if json_len(claims) > MAX_CLAIMS_BYTES {
        return Err(AccountError::Invalid(format!(
            "claims must be at most {MAX_CLAIMS_BYTES} bytes of JSON"
        )));
    }
    Ok(())
}

/// An email as stored and compared: trimmed and lowercased, checked for shape.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim().to_lowercase();
    let invalid = || AccountError::Invalid("email must be an address like name@example.com".into());
    if email.len() > MAX_EMAIL_LEN {
        return Err(AccountError::Invalid(format!(
            "email must be at most {MAX_EMAIL_LEN} characters"
        )));
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let well_formed = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if well_formed {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub anonymous: bool,
    /// Argon2id PHC string; `None` for anonymous users.
    pub password_hash: Option<String>,
    pub disabled: bool,
    /// Custom claims an admin set: copied into every access token.
    pub claims: Map<String, Value>,
    pub created_at: u64,
    pub updated_at: u64,
    pub last_sign_in_at: Option<u64>,
}

/// What clients see of a user: never the password hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicUser {
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub anonymous: bool,
    pub disabled: bool,
    pub claims: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    pub last_sign_in_at: Option<String>,
}

impl From<&User> for PublicUser {
    fn from(user: &User) -> Self {
        PublicUser {
            id: user.id.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            anonymous: user.anonymous,
            disabled: user.disabled,
            claims: user.claims.clone(),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            last_sign_in_at: user.last_sign_in_at.map(rfc3339),
        }
    }
}

pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// One signed-in device: a family of refresh tokens, each replacing the one before.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub created_at: u64,
    pub refreshed_at: u64,
    /// SHA-256 (hex) of the live refresh token's secret.
    pub current: String,
    /// The token `current` replaced, accepted again within the grace window.
    pub previous: Option<String>,
    /// The nonce that derived `current` from `previous` (see `refresh`).
    pub nonce: Option<String>,
    /// Hashes of older tokens of the family: presenting one revokes the session.
    pub retired: Vec<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Hashes of retired tokens kept per session.
pub const MAX_RETIRED: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionView {
    pub id: String,
    pub created_at: String,
    pub refreshed_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the token asking.
    pub current: bool,
}

/// Single-use codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// Proves the user owns the email address.
    Signup,
    /// Lets the owner of the email address set a new password.
    Recovery,
}

impl CodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::Signup => "signup",
            CodeKind::Recovery => "recovery",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Code {
    /// SHA-256 (hex) of the code.
    pub hash: String,
    pub expires_at: u64,
    pub attempts: u32,
}

/// What sign-up, sign-in and refresh answer (the shape Supabase's auth server uses).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub expires_at: u64,
    pub refresh_token: String,
    pub user: PublicUser,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.d",
            "ada@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn settings_bounds_and_reserved_claims() {
        AuthSettings::default().validate().unwrap();
        let short = AuthSettings {
            min_password_length: 5,
            ..AuthSettings::default()
        };
        assert!(short.validate().is_err());
        let ttl = AuthSettings {
            access_token_ttl: 59,
            ..AuthSettings::default()
        };
        assert!(ttl.validate().is_err());
        let mut claims = Map::new();
        claims.insert("plan".into(), Value::from("pro"));
        validate_claims(&claims).unwrap();
        claims.insert("role".into(), Value::from("admin"));
        assert!(validate_claims(&claims).is_err());
    }
}
