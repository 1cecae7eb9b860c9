//! Sign-up, sign-in, refresh and sign-out.
//!
//! A refresh token is `{user}.{session}.{secret}`; the session record keeps only the
//! SHA-256 of the live secret. Each refresh replaces the secret with
//! `HMAC-SHA256(old secret, nonce)` for a fresh random nonce stored in the session, and
//! remembers the old hash. Presenting the old token again within the grace window derives
//! the same successor, so two tabs refreshing at once get the same new token and neither is
//! signed out; presenting it later, or any older token of the family, is taken as theft and
//! ends the session. A token that matches nothing (a guess at a known session id) is refused
//! without touching the session.

use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use ferrobase_core::records::{RecordCommit, RecordCondition};
use ferrobase_core::{EventType, Namespace};

use super::limits::Operation;
use super::model::{
    self, CodeKind, MAX_RETIRED, MAX_SESSIONS_PER_USER, Session, SessionView, User,
};
use super::{
    AccessSession, AccountError, Accounts, AuthSettings, ClientInfo, TokenAnswer, event,
    random_token, to_json,
};

/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 256;

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn same_hash(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn successor(secret: &str, nonce: &str) -> String {
    use base64::Engine as _;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(nonce.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The parts of a refresh token.
struct RefreshToken<'a> {
    user: &'a str,
    sid: &'a str,
    secret: &'a str,
}

fn parse_refresh(token: &str) -> Result<RefreshToken<'_>, AccountError> {
    let mut parts = token.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(user), Some(sid), Some(secret))
            if ulid::Ulid::from_string(user).is_ok()
                && ulid::Ulid::from_string(sid).is_ok()
                && (20..=100).contains(&secret.len()) =>
        {
            Ok(RefreshToken { user, sid, secret })
        }
        _ => Err(AccountError::InvalidRefreshToken),
    }
}

/// Which sessions `POST /logout` ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogoutScope {
    /// This session only.
    #[default]
    Local,
    /// Every session of the user but this one.
    Others,
    /// Every session of the user.
    Global,
}

impl Accounts {
    pub(super) fn check_password(
        &self,
        settings: &AuthSettings,
        password: &str,
    ) -> Result<(), AccountError> {
        let chars = password.chars().count();
        if chars < settings.min_password_length {
            return Err(AccountError::Invalid(format!(
                "password must be at least {} characters",
                settings.min_password_length
            )));
        }
        if password.len() > super::password::MAX_PASSWORD_BYTES {
            return Err(AccountError::Invalid(format!(
                "password must be at most {} bytes",
                super::password::MAX_PASSWORD_BYTES
            )));
        }
        Ok(())
    }

    /// A new session for `user`: its record, the ends of the oldest sessions beyond the cap,
    /// and the token answer.
    pub(super) async fn new_session(
        &self,
        ns: &Namespace,
        user: &User,
        client: &ClientInfo,
        commit: &mut RecordCommit,
    ) -> Result<(String, String), AccountError> {
        let now = self.now();
        let sid = ulid::Ulid::from_datetime(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(now),
        )
        .to_string();
        let secret = random_token(32)?;
        let session = Session {
            id: sid.clone(),
            user: user.id.clone(),
            created_at: now,
            refreshed_at: now,
            current: sha256_hex(&secret),
            previous: None,
            nonce: None,
            retired: Vec::new(),
            user_agent: client
                .user_agent
                .as_deref()
                .map(|agent| agent.chars().take(MAX_USER_AGENT).collect()),
            ip: client.ip.map(|ip| ip.to_string()),
        };
        let existing = self.user_sessions(ns, &user.id).await?;
        let excess = (existing.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
        for old in existing.iter().take(excess) {
            commit
                .writes
                .push((model::session_key(&user.id, &old.id), None));
            commit.events.push(event(
                EventType::AuthSessionRevoked,
                format!("users/{}", user.id),
                json!({"user": user.id, "session": old.id, "reason": "session_limit"}),
            ));
        }
        commit
            .conditions
            .push((model::session_key(&user.id, &sid), RecordCondition::Absent));
        commit
            .writes
            .push((model::session_key(&user.id, &sid), to_json(&session)?));
        commit.events.push(event(
            EventType::AuthSignedIn,
            format!("users/{}", user.id),
            json!({"user": user.id, "session": sid}),
        ));
        Ok((sid.clone(), format!("{}.{sid}.{secret}", user.id)))
    }

    /// Live sessions of `user`, oldest first.
    pub(super) async fn user_sessions(
        &self,
        ns: &Namespace,
        user: &str,
    ) -> Result<Vec<Session>, AccountError> {
        let prefix = model::sessions_prefix(user);
        let records = self
            .records
            .scan(ns, &prefix, None, MAX_SESSIONS_PER_USER * 2)
            .await?;
        let mut sessions = records
            .iter()
            .map(|(key, record)| super::from_json::<Session>(key, &record.value))
            .collect::<Result<Vec<_>, _>>()?;
        sessions.sort_by_key(|session| session.created_at);
        Ok(sessions)
    }

    /// `POST /signup`: `email` and `password`, or neither for an anonymous user.
    pub async fn sign_up(
        &self,
        ns: &Namespace,
        email: Option<&str>,
        password: Option<&str>,
        client: &ClientInfo,
    ) -> Result<TokenAnswer, AccountError> {
        let settings = self.enabled(ns).await?;
        let credentials = match (email, password) {
            (Some(email), Some(password)) => {
                let email = model::normalize_email(email)?;
                self.check_password(&settings, password)?;
                Some((email, password))
            }
            (None, None) => {
                if !settings.anonymous {
                    return Err(AccountError::AnonymousNotAllowed);
                }
                None
            }
            _ => {
                return Err(AccountError::Invalid(
                    "sign-up takes both email and password, or neither (anonymous)".into(),
                ));
            }
        };
        self.limits.check(
            Operation::SignUp,
            client.ip,
            credentials.as_ref().map(|(email, _)| email.as_str()),
        )?;
        if let Some((email, _)) = &credentials
            && self
                .records
                .get(ns, &model::email_key(email))
                .await?
                .is_some()
        {
            return Err(AccountError::EmailTaken);
        }
        let password_hash = match &credentials {
            Some((_, password)) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let now = self.now();
        let user = User {
            id: ulid::Ulid::new().to_string(),
            email: credentials.as_ref().map(|(email, _)| email.clone()),
            email_verified: false,
            anonymous: credentials.is_none(),
            password_hash,
            disabled: false,
            claims: Default::default(),
            created_at: now,
            updated_at: now,
            last_sign_in_at: Some(now),
        };
        let mut commit = RecordCommit::default();
        commit
            .conditions
            .push((model::user_key(&user.id), RecordCondition::Absent));
        commit
            .writes
            .push((model::user_key(&user.id), to_json(&user)?));
        commit.events.push(event(
            EventType::AuthUserCreated,
            format!("users/{}", user.id),
            json!({"user": user.id, "email": user.email, "anonymous": user.anonymous}),
        ));
        if let Some(email) = &user.email {
            let index = model::email_key(email);
            commit
                .conditions
                .push((index.clone(), RecordCondition::Absent));
            commit
                .writes
                .push((index, to_json(&json!({"user": user.id}))?));
            self.code_request(&settings, &user, CodeKind::Signup, &mut commit)?;
        }
        let (sid, refresh_token) = self.new_session(ns, &user, client, &mut commit).await?;
        self.commit(ns, commit).await?;
        self.answer(ns, &settings, &user, &sid, refresh_token).await
    }

    /// The user with `email`, and its record version.
    pub(super) async fn user_by_email(
        &self,
        ns: &Namespace,
        email: &str,
    ) -> Result<Option<(User, u64)>, AccountError> {
        #[derive(Deserialize)]
        struct Index {
            user: String,
        }
        let Some((index, _)) = self.get::<Index>(ns, &model::email_key(email)).await? else {
            return Ok(None);
        };
        self.get::<User>(ns, &model::user_key(&index.user)).await
    }

    /// `POST /token?grant_type=password`.
    pub async fn sign_in(
        &self,
        ns: &Namespace,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<TokenAnswer, AccountError> {
        let settings = self.enabled(ns).await?;
        // A malformed email is no account: the same answer as any unknown one.
        let email = model::normalize_email(email).map_err(|_| AccountError::InvalidCredentials)?;
        self.limits
            .check(Operation::SignIn, client.ip, Some(&email))?;
        if password.len() > super::password::MAX_PASSWORD_BYTES {
            return Err(AccountError::InvalidCredentials);
        }
        let found = self.user_by_email(ns, &email).await?;
        let stored = found
            .as_ref()
            .and_then(|(user, _)| user.password_hash.as_deref());
        if !self.hasher.verify(stored, password).await? {
            return Err(AccountError::InvalidCredentials);
        }
        let Some((mut user, version)) = found else {
            return Err(AccountError::InvalidCredentials);
        };
        if user.disabled {
            return Err(AccountError::UserDisabled);
        }
        user.last_sign_in_at = Some(self.now());
        let mut commit = RecordCommit::default();
        commit
            .conditions
            .push((model::user_key(&user.id), RecordCondition::Version(version)));
        commit
            .writes
            .push((model::user_key(&user.id), to_json(&user)?));
        let (sid, refresh_token) = self.new_session(ns, &user, client, &mut commit).await?;
        self.commit(ns, commit).await?;
        self.answer(ns, &settings, &user, &sid, refresh_token).await
    }

    /// `POST /token?grant_type=refresh_token`.
    pub async fn refresh(
        &self,
        ns: &Namespace,
        token: &str,
        client: &ClientInfo,
    ) -> Result<TokenAnswer, AccountError> {
        let settings = self.enabled(ns).await?;
        let parsed = parse_refresh(token)?;
        self.limits.check(
            Operation::Refresh,
            client.ip,
            Some(&format!("{ns}/{}", parsed.sid)),
        )?;
        // Two concurrent refreshes of one token: the loser of the write race sees the
        // winner's rotation on its second pass and takes the grace path.
        for _ in 0..3 {
            match self.refresh_once(ns, &settings, &parsed).await {
                Err(AccountError::Contended) => continue,
                other => return other,
            }
        }
        Err(AccountError::Contended)
    }

    async fn refresh_once(
        &self,
        ns: &Namespace,
        settings: &AuthSettings,
        token: &RefreshToken<'_>,
    ) -> Result<TokenAnswer, AccountError> {
        let key = model::session_key(token.user, token.sid);
        let Some((mut session, version)) = self.get::<Session>(ns, &key).await? else {
            return Err(AccountError::InvalidRefreshToken);
        };
        let now = self.now();
        if now.saturating_sub(session.refreshed_at) > settings.session_ttl * 1000 {
            return Err(AccountError::InvalidRefreshToken);
        }
        let Some((user, _)) = self.get::<User>(ns, &model::user_key(token.user)).await? else {
            return Err(AccountError::InvalidRefreshToken);
        };
        if user.disabled {
            return Err(AccountError::UserDisabled);
        }
        let presented = sha256_hex(token.secret);
        let grace = u64::try_from(self.options.refresh_reuse_grace.as_millis()).unwrap_or(u64::MAX);
        if same_hash(&presented, &session.current) {
            let nonce = random_token(16)?;
            let next = successor(token.secret, &nonce);
            if let Some(previous) = session.previous.take() {
                session.retired.push(previous);
                let excess = session.retired.len().saturating_sub(MAX_RETIRED);
                session.retired.drain(..excess);
            }
            session.previous = Some(std::mem::replace(&mut session.current, sha256_hex(&next)));
            session.nonce = Some(nonce);
            session.refreshed_at = now;
            let commit = RecordCommit {
                conditions: vec![(key.clone(), RecordCondition::Version(version))],
                writes: vec![(key, to_json(&session)?)],
                events: vec![event(
                    EventType::AuthTokenRefreshed,
                    format!("users/{}", user.id),
                    json!({"user": user.id, "session": session.id}),
                )],
            };
            self.commit(ns, commit).await?;
            let refresh_token = format!("{}.{}.{next}", user.id, session.id);
            return self
                .answer(ns, settings, &user, &session.id, refresh_token)
                .await;
        }
        let is_previous = session
            .previous
            .as_deref()
            .is_some_and(|previous| same_hash(&presented, previous));
        if is_previous && now.saturating_sub(session.refreshed_at) <= grace {
            let next = successor(token.secret, session.nonce.as_deref().unwrap_or_default());
            if same_hash(&sha256_hex(&next), &session.current) {
                let refresh_token = format!("{}.{}.{next}", user.id, session.id);
                return self
                    .answer(ns, settings, &user, &session.id, refresh_token)
                    .await;
            }
        }
        let reused = is_previous || session.retired.iter().any(|old| same_hash(&presented, old));
        if !reused {
            return Err(AccountError::InvalidRefreshToken);
        }
        tracing::warn!(%ns, user = %user.id, session = %session.id, "refresh token reused: session revoked");
        let commit = RecordCommit {
            conditions: vec![(key.clone(), RecordCondition::Version(version))],
            writes: vec![(key, None)],
            events: vec![event(
                EventType::AuthSessionRevoked,
                format!("users/{}", user.id),
                json!({"user": user.id, "session": session.id, "reason": "refresh_token_reused"}),
            )],
        };
        self.commit(ns, commit).await?;
        Err(AccountError::RefreshTokenReused)
    }

    /// Ends sessions of `user` (all, or all but `keep`) with `reason`, into `commit`.
    pub(super) async fn end_sessions(
        &self,
        ns: &Namespace,
        user: &str,
        keep: Option<&str>,
        reason: &str,
        commit: &mut RecordCommit,
    ) -> Result<(), AccountError> {
        for session in self.user_sessions(ns, user).await? {
            if Some(session.id.as_str()) == keep {
                continue;
            }
            commit
                .writes
                .push((model::session_key(user, &session.id), None));
            commit.events.push(event(
                EventType::AuthSessionRevoked,
                format!("users/{user}"),
                json!({"user": user, "session": session.id, "reason": reason}),
            ));
        }
        Ok(())
    }

    /// `POST /logout?scope=local|others|global`.
    pub async fn logout(
        &self,
        ns: &Namespace,
        session: &AccessSession,
        scope: LogoutScope,
    ) -> Result<(), AccountError> {
        let mut commit = RecordCommit::default();
        match scope {
            LogoutScope::Local => {
                return self.revoke_session(ns, session, &session.sid).await;
            }
            LogoutScope::Others => {
                self.end_sessions(ns, &session.user, Some(&session.sid), "logout", &mut commit)
                    .await?
            }
            LogoutScope::Global => {
                self.end_sessions(ns, &session.user, None, "logout", &mut commit)
                    .await?
            }
        }
        self.commit(ns, commit).await?;
        Ok(())
    }

    /// `GET /sessions`.
    pub async fn sessions(
        &self,
        ns: &Namespace,
        session: &AccessSession,
    ) -> Result<Vec<SessionView>, AccountError> {
        Ok(self
            .user_sessions(ns, &session.user)
            .await?
            .into_iter()
            .map(|live| SessionView {
                current: live.id == session.sid,
                id: live.id,
                created_at: model::rfc3339(live.created_at),
                refreshed_at: model::rfc3339(live.refreshed_at),
                user_agent: live.user_agent,
                ip: live.ip,
            })
            .collect())
    }

    /// `DELETE /sessions/{id}` (and `POST /logout`): ends one session of the caller.
    pub async fn revoke_session(
        &self,
        ns: &Namespace,
        session: &AccessSession,
        sid: &str,
    ) -> Result<(), AccountError> {
        let key = model::session_key(&session.user, sid);
        if ulid::Ulid::from_string(sid).is_err() || self.records.get(ns, &key).await?.is_none() {
            return Err(AccountError::NotFound("no such session".into()));
        }
        let commit = RecordCommit {
            conditions: vec![(key.clone(), RecordCondition::Exists)],
            writes: vec![(key, None)],
            events: vec![event(
                EventType::AuthSessionRevoked,
                format!("users/{}", session.user),
                json!({"user": session.user, "session": sid, "reason": "logout"}),
            )],
        };
        self.commit(ns, commit).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_depend_on_secret_and_nonce() {
        assert_eq!(successor("a", "n"), successor("a", "n"));
        assert_ne!(successor("a", "n"), successor("b", "n"));
        assert_ne!(successor("a", "n"), successor("a", "m"));
        assert!(parse_refresh("x.y.z").is_err());
        let user = ulid::Ulid::new().to_string();
        let token = format!("{user}.{user}.{}", "s".repeat(43));
        assert!(parse_refresh(&token).is_ok());
    }
}
