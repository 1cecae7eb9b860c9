//! The built-in auth service: per-namespace users, sessions and codes (docs/api.md, "Auth
//! service").
//!
//! Everything lives in the namespace's record space of a [`RecordStore`] (layout in
//! [`model`]), and every change commits its `ferrobase.auth.*` event in the same step, so
//! triggers can react to sign-ups and revocations and the service runs unchanged on any
//! record store. Layout:
//! - [`model`]: records, settings and their bounds, public views;
//! - [`password`]: Argon2id hashing; [`keys`]: the ES256 key ring and JWKS;
//! - [`sessions`]: sign-up, sign-in, refresh-token rotation, sign-out, session listing;
//! - [`users`]: the user's own account, the admin routes, verification and reset codes;
//! - [`limits`]: rate limits; [`error`]: refusals and their HTTP mapping.

mod error;
pub mod keys;
pub mod limits;
pub mod model;
pub mod password;
mod sessions;
mod users;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferrobase_core::auth::{Claims, Role};
use ferrobase_core::records::{EventDraft, RecordCommit, RecordError, RecordOutcome, RecordStore};
use ferrobase_core::{Clock, EventType, Namespace};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use error::AccountError;
pub use model::{AuthSettings, CodeKind, PublicUser, SessionView, TokenAnswer};
pub use sessions::LogoutScope;
pub use users::{AdminUserUpdate, UserPage, UserUpdate, VerifyOutcome};

use crate::auth::{AccountTokens, TokenError};
use model::{CONFIG_KEY, User};

/// Server-wide options of the service (`[auth]` in the config file).
#[derive(Debug, Clone, Copy)]
pub struct AccountsOptions {
    /// How long a rotated refresh token is still accepted (two tabs refreshing at once).
    pub refresh_reuse_grace: Duration,
    pub keys: keys::KeyOptions,
    pub limits: limits::LimitSettings,
}

impl AccountsOptions {
    /// The options `[auth]` in the config file sets.
    pub fn from_config(config: &crate::config::AuthConfig) -> Self {
        AccountsOptions {
            refresh_reuse_grace: config.refresh_reuse_grace,
            keys: keys::KeyOptions {
                rotation: config.signing_key_rotation,
                leeway: config.leeway,
            },
            limits: limits::LimitSettings {
                per_ip_per_minute: std::num::NonZeroU32::new(config.rate_limits.per_ip_per_minute),
                per_account_per_minute: std::num::NonZeroU32::new(
                    config.rate_limits.per_account_per_minute,
                ),
            },
        }
    }
}

/// Who is asking: for rate limits and the session list.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A verified access token of the service, with the session it belongs to.
#[derive(Debug, Clone)]
pub struct AccessSession {
    pub user: String,
    pub sid: String,
}

/// The claims of the access tokens the service signs.
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    sub: String,
    ns: String,
    role: String,
    exp: u64,
    iat: u64,
    sid: String,
    iss: String,
    #[serde(flatten)]
    custom: Map<String, Value>,
}

/// The `iss` of the access tokens of `ns`.
pub fn issuer(ns: &Namespace) -> String {
    format!("ferrobase/{ns}/auth")
}

#[derive(Debug)]
pub struct Accounts {
    records: Arc<dyn RecordStore>,
    clock: Arc<dyn Clock>,
    options: AccountsOptions,
    keys: keys::KeyStore,
    hasher: password::Hasher,
    limits: limits::RateLimits,
    settings: RwLock<HashMap<Namespace, Arc<AuthSettings>>>,
    /// Serialises settings writes with cache fills, as the policy store does.
    fill: tokio::sync::Mutex<()>,
}

fn event(event_type: EventType, subject: String, data: Value) -> EventDraft {
    EventDraft {
        event_type,
        subject,
        data,
        causation: Default::default(),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Option<Bytes>, AccountError> {
    serde_json::to_vec(value)
        .map(|json| Some(Bytes::from(json)))
        .map_err(|e| AccountError::Internal(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, AccountError> {
    serde_json::from_slice(value).map_err(|e| AccountError::Internal(format!("record {key}: {e}")))
}

/// `n` random bytes, base64url.
fn random_token(n: usize) -> Result<String, AccountError> {
    use base64::Engine as _;
    let mut bytes = vec![0u8; n];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| AccountError::Internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Accounts {
    pub fn new(
        records: Arc<dyn RecordStore>,
        clock: Arc<dyn Clock>,
        options: AccountsOptions,
    ) -> Result<Self, AccountError> {
        Ok(Accounts {
            keys: keys::KeyStore::new(records.clone(), clock.clone(), options.keys),
            hasher: password::Hasher::new()?,
            limits: limits::RateLimits::new(options.limits),
            records,
            clock,
            options,
            settings: RwLock::default(),
            fill: tokio::sync::Mutex::new(()),
        })
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    async fn commit(
        &self,
        ns: &Namespace,
        commit: RecordCommit,
    ) -> Result<RecordOutcome, AccountError> {
        self.records
            .commit(ns, commit)
            .await
            .map_err(|error| match error {
                RecordError::ConditionFailed { key, .. } if key.starts_with("auth/emails/") => {
                    AccountError::EmailTaken
                }
                RecordError::ConditionFailed { .. } => AccountError::Contended,
                other => other.into(),
            })
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<(T, u64)>, AccountError> {
        match self.records.get(ns, key).await? {
            Some(record) => Ok(Some((from_json(key, &record.value)?, record.version))),
            None => Ok(None),
        }
    }

    /// The settings of `ns` (the defaults, disabled, until an admin stores some).
    pub async fn settings(&self, ns: &Namespace) -> Result<Arc<AuthSettings>, AccountError> {
        let cached = |this: &Self| {
            this.settings
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(ns)
                .cloned()
        };
        if let Some(settings) = cached(self) {
            return Ok(settings);
        }
        let _fill = self.fill.lock().await;
        if let Some(settings) = cached(self) {
            return Ok(settings);
        }
        let settings = Arc::new(
            self.get::<AuthSettings>(ns, CONFIG_KEY)
                .await?
                .map(|(settings, _)| settings)
                .unwrap_or_default(),
        );
        self.settings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), settings.clone());
        Ok(settings)
    }

    /// Validates and stores the settings of `ns`.
    pub async fn put_settings(
        &self,
        ns: &Namespace,
        settings: AuthSettings,
    ) -> Result<Arc<AuthSettings>, AccountError> {
        settings.validate()?;
        let _fill = self.fill.lock().await;
        self.commit(
            ns,
            RecordCommit {
                conditions: vec![],
                writes: vec![(CONFIG_KEY.to_owned(), to_json(&settings)?)],
                events: vec![event(
                    EventType::AuthConfigUpdated,
                    "config".into(),
                    json!({"enabled": settings.enabled, "anonymous": settings.anonymous}),
                )],
            },
        )
        .await?;
        let settings = Arc::new(settings);
        self.settings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), settings.clone());
        Ok(settings)
    }

    /// The settings of `ns`, or a refusal when its auth service is off.
    async fn enabled(&self, ns: &Namespace) -> Result<Arc<AuthSettings>, AccountError> {
        let settings = self.settings(ns).await?;
        if settings.enabled {
            Ok(settings)
        } else {
            Err(AccountError::NotEnabled(ns.to_string()))
        }
    }

    /// `GET /v1/auth/{ns}/.well-known/jwks.json`.
    pub async fn jwks(&self, ns: &Namespace) -> Result<Value, AccountError> {
        self.enabled(ns).await?;
        self.keys.jwks(ns).await
    }

    /// Replaces the signing key of `ns` now; returns the new key id.
    pub async fn rotate_key(&self, ns: &Namespace) -> Result<String, AccountError> {
        self.enabled(ns).await?;
        self.keys.rotate(ns).await
    }

    /// Signs an access token for `user` in session `sid`; returns it and its expiry (seconds).
    async fn access_token(
        &self,
        ns: &Namespace,
        settings: &AuthSettings,
        user: &User,
        sid: &str,
    ) -> Result<(String, u64), AccountError> {
        let signer = self.keys.signer(ns).await?;
        let iat = self.now() / 1000;
        let exp = iat + settings.access_token_ttl;
        let claims = AccessClaims {
            sub: user.id.clone(),
            ns: ns.to_string(),
            role: Role::User.as_str().to_owned(),
            exp,
            iat,
            sid: sid.to_owned(),
            iss: issuer(ns),
            custom: user.claims.clone(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(signer.kid);
        let token = jsonwebtoken::encode(&header, &claims, &signer.key)
            .map_err(|e| AccountError::Internal(format!("signing an access token: {e}")))?;
        Ok((token, exp))
    }

    async fn answer(
        &self,
        ns: &Namespace,
        settings: &AuthSettings,
        user: &User,
        sid: &str,
        refresh_token: String,
    ) -> Result<TokenAnswer, AccountError> {
        let (access_token, expires_at) = self.access_token(ns, settings, user, sid).await?;
        Ok(TokenAnswer {
            access_token,
            token_type: "bearer".into(),
            expires_in: settings.access_token_ttl,
            expires_at,
            refresh_token,
            user: PublicUser::from(user),
        })
    }

    /// Verifies an access token of `ns`'s auth service: signature by a key of the ring,
    /// expiry, issuer, namespace and role.
    async fn decode_access(&self, ns: &Namespace, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Malformed("not a well-formed JWT".into()))?;
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::UnsupportedAlgorithm(format!(
                "{:?}",
                header.alg
            )));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        if keys::namespace_of_kid(&kid).as_ref() != Some(ns) {
            return Err(TokenError::UnknownKey);
        }
        if !self
            .settings(ns)
            .await
            .is_ok_and(|settings| settings.enabled)
        {
            return Err(TokenError::UnknownKey);
        }
        let key = match self.keys.verifying_key(ns, &kid).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(TokenError::UnknownKey),
            Err(error) => {
                tracing::error!(%error, "loading the auth key ring");
                return Err(TokenError::UnknownKey);
            }
        };
        let mut validation = Validation::new(Algorithm::ES256);
        // Expiry is checked below against the service's clock, which tests control.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[issuer(ns)]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidIssuer => {
                    TokenError::InvalidClaims("the issuer (iss) is not accepted".into())
                }
                _ => TokenError::InvalidClaims("not an access token of this service".into()),
            })?
            .claims;
        if claims.exp + self.options.keys.leeway.as_secs() < self.now() / 1000 {
            return Err(TokenError::Expired);
        }
        if claims.ns != ns.as_str() || claims.role != Role::User.as_str() {
            return Err(TokenError::InvalidClaims(
                "an account token must be a user token of its own namespace".into(),
            ));
        }
        Ok(claims)
    }

    /// The session of a request to the service's own routes: the token must be valid and its
    /// session still live.
    pub async fn access_session(
        &self,
        ns: &Namespace,
        token: &str,
    ) -> Result<AccessSession, AccountError> {
        self.enabled(ns).await?;
        let claims = self
            .decode_access(ns, token)
            .await
            .map_err(|error| AccountError::InvalidAccessToken(error.to_string()))?;
        let key = model::session_key(&claims.sub, &claims.sid);
        if self.records.get(ns, &key).await?.is_none() {
            return Err(AccountError::InvalidAccessToken(
                "the session has ended".into(),
            ));
        }
        Ok(AccessSession {
            user: claims.sub,
            sid: claims.sid,
        })
    }
}

#[async_trait]
impl AccountTokens for Accounts {
    async fn verify(&self, kid: &str, token: &str) -> Result<Claims, TokenError> {
        let ns = keys::namespace_of_kid(kid).ok_or(TokenError::UnknownKey)?;
        let claims = self.decode_access(&ns, token).await?;
        Ok(Claims {
            sub: claims.sub,
            exp: claims.exp,
            iat: Some(claims.iat),
            ns: Some(ns),
            role: Role::User,
            scopes: None,
        })
    }
}

#[cfg(test)]
mod tests;
