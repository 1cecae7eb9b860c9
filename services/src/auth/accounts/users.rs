//! The user's own account (`GET/PUT /user`), the admin routes, and single-use codes.
//!
//! Codes are 6 digits, stored as their SHA-256 under `auth/codes/{kind}/{user}` (one live code
//! per kind and user: a new request replaces it), expire after the namespace's `code_ttl`,
//! are deleted when used, and survive [`MAX_CODE_ATTEMPTS`] wrong tries. The code itself
//! travels only in the `ferrobase.auth.verification_requested` or
//! `ferrobase.auth.password_reset_requested` event, for a rule and function to mail.

use ferrobase_core::records::{RecordCommit, RecordCondition};
use ferrobase_core::{EventType, Namespace};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::limits::Operation;
use super::model::{self, Code, CodeKind, MAX_CODE_ATTEMPTS, PublicUser, User};
use super::{
    AccessSession, AccountError, Accounts, AuthSettings, ClientInfo, TokenAnswer, event, to_json,
};

/// Most users per admin listing page.
pub const MAX_PAGE: usize = 1000;

/// `PUT /user`: any of a new email and a new password. Setting both links an anonymous user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub password: Option<String>,
}

/// `PUT /admin/users/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUserUpdate {
    pub disabled: Option<bool>,
    pub claims: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserPage {
    pub users: Vec<PublicUser>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

fn user_event(
    event_type: EventType,
    user: &User,
    data: Value,
) -> ferrobase_core::records::EventDraft {
    event(event_type, format!("users/{}", user.id), data)
}

impl Accounts {
    /// Adds a fresh code for `user` and its request event to `commit`.
    pub(super) fn code_request(
        &self,
        settings: &AuthSettings,
        user: &User,
        kind: CodeKind,
        commit: &mut RecordCommit,
    ) -> Result<(), AccountError> {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let expires_at = self.now() + settings.code_ttl * 1000;
        let stored = Code {
            hash: code_hash(&code),
            expires_at,
            attempts: 0,
        };
        commit
            .writes
            .push((model::code_key(kind, &user.id), to_json(&stored)?));
        let event_type = match kind {
            CodeKind::Signup => EventType::AuthVerificationRequested,
            CodeKind::Recovery => EventType::AuthPasswordResetRequested,
        };
        commit.events.push(user_event(
            event_type,
            user,
            json!({
                "user": user.id, "email": user.email, "code": code,
                "expires_at": model::rfc3339(expires_at),
            }),
        ));
        Ok(())
    }

    async fn user_record(&self, ns: &Namespace, id: &str) -> Result<(User, u64), AccountError> {
        if ulid::Ulid::from_string(id).is_err() {
            return Err(AccountError::NotFound("no such user".into()));
        }
        self.get::<User>(ns, &model::user_key(id))
            .await?
            .ok_or_else(|| AccountError::NotFound("no such user".into()))
    }

    /// `GET /user`.
    pub async fn user(
        &self,
        ns: &Namespace,
        session: &AccessSession,
    ) -> Result<PublicUser, AccountError> {
        let (user, _) = self.user_record(ns, &session.user).await?;
        Ok(PublicUser::from(&user))
    }

    /// `PUT /user`: a new email (unverified, with a verification code) and/or a new password
    /// (which ends the user's other sessions). An anonymous user needs both, and becomes a
    /// regular one.
    pub async fn update_user(
        &self,
        ns: &Namespace,
        session: &AccessSession,
        update: UserUpdate,
    ) -> Result<PublicUser, AccountError> {
        let settings = self.enabled(ns).await?;
        let (mut user, version) = self.user_record(ns, &session.user).await?;
        if update.email.is_none() && update.password.is_none() {
            return Err(AccountError::Invalid(
                "give an email, a password or both".into(),
            ));
        }
        if user.anonymous && (update.email.is_none() || update.password.is_none()) {
            return Err(AccountError::Invalid(
                "an anonymous user is linked with both an email and a password".into(),
            ));
        }
        let email = update
            .email
            .as_deref()
            .map(model::normalize_email)
            .transpose()?;
        if let Some(password) = &update.password {
            self.check_password(&settings, password)?;
        }
        let mut commit = RecordCommit::default();
        commit
            .conditions
            .push((model::user_key(&user.id), RecordCondition::Version(version)));
        let mut changes = Vec::new();
        if let Some(email) = email.filter(|email| user.email.as_ref() != Some(email)) {
            let index = model::email_key(&email);
            if self.records.get(ns, &index).await?.is_some() {
                return Err(AccountError::EmailTaken);
            }
            commit
                .conditions
                .push((index.clone(), RecordCondition::Absent));
            commit
                .writes
                .push((index, to_json(&json!({"user": user.id}))?));
            if let Some(old) = &user.email {
                commit.writes.push((model::email_key(old), None));
            }
            user.email = Some(email);
            user.email_verified = false;
            changes.push("email");
        }
        if let Some(password) = &update.password {
            user.password_hash = Some(self.hasher.hash(password).await?);
            self.end_sessions(
                ns,
                &user.id,
                Some(&session.sid),
                "password_changed",
                &mut commit,
            )
            .await?;
            changes.push("password");
        }
        if user.anonymous {
            user.anonymous = false;
            changes.push("linked");
        }
        if changes.is_empty() {
            return Ok(PublicUser::from(&user));
        }
        user.updated_at = self.now();
        if changes.contains(&"email") {
            self.code_request(&settings, &user, CodeKind::Signup, &mut commit)?;
        }
        commit
            .writes
            .push((model::user_key(&user.id), to_json(&user)?));
        commit.events.push(user_event(
            EventType::AuthUserUpdated,
            &user,
            json!({"user": user.id, "email": user.email, "changes": changes}),
        ));
        self.commit(ns, commit).await?;
        Ok(PublicUser::from(&user))
    }

    /// `POST /recover` and `POST /resend`: a code for the owner of `email`. The answer is the
    /// same whether or not the address is registered.
    pub async fn request_code(
        &self,
        ns: &Namespace,
        kind: CodeKind,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        let settings = self.enabled(ns).await?;
        let email = model::normalize_email(email)?;
        self.limits
            .check(Operation::CodeCheck, client.ip, Some(&email))?;
        let Some((user, version)) = self.user_by_email(ns, &email).await? else {
            return Ok(());
        };
        if user.disabled || (kind == CodeKind::Signup && user.email_verified) {
            return Ok(());
        }
        let mut commit = RecordCommit::default();
        commit
            .conditions
            .push((model::user_key(&user.id), RecordCondition::Version(version)));
        self.code_request(&settings, &user, kind, &mut commit)?;
        self.commit(ns, commit).await?;
        Ok(())
    }

    /// `POST /verify`: checks and uses up a code. A sign-up code marks the email verified and
    /// answers the user; a recovery code sets `password`, ends every session and answers a
    /// new one.
    pub async fn verify_code(
        &self,
        ns: &Namespace,
        kind: CodeKind,
        email: &str,
        code: &str,
        password: Option<&str>,
        client: &ClientInfo,
    ) -> Result<VerifyOutcome, AccountError> {
        let settings = self.enabled(ns).await?;
        let email = model::normalize_email(email).map_err(|_| AccountError::InvalidCode)?;
        self.limits
            .check(Operation::CodeCheck, client.ip, Some(&email))?;
        match (kind, password) {
            (CodeKind::Recovery, Some(password)) => self.check_password(&settings, password)?,
            (CodeKind::Recovery, None) => {
                return Err(AccountError::Invalid(
                    "a recovery code needs the new password".into(),
                ));
            }
            (CodeKind::Signup, Some(_)) => {
                return Err(AccountError::Invalid(
                    "a sign-up code takes no password".into(),
                ));
            }
            (CodeKind::Signup, None) => {}
        }
        let Some((mut user, user_version)) = self.user_by_email(ns, &email).await? else {
            return Err(AccountError::InvalidCode);
        };
        let key = model::code_key(kind, &user.id);
        let Some((mut stored, code_version)) = self.get::<Code>(ns, &key).await? else {
            return Err(AccountError::InvalidCode);
        };
        let mut commit = RecordCommit::default();
        commit
            .conditions
            .push((key.clone(), RecordCondition::Version(code_version)));
        let matches: bool = code_hash(code.trim())
            .as_bytes()
            .ct_eq(stored.hash.as_bytes())
            .into();
        if stored.expires_at < self.now() || !matches {
            stored.attempts += 1;
            let keep = stored.expires_at >= self.now() && stored.attempts < MAX_CODE_ATTEMPTS;
            commit
                .writes
                .push((key, if keep { to_json(&stored)? } else { None }));
            // Counting the attempt may race with another; the answer is the same either way.
            let _ = self.records.commit(ns, commit).await;
            return Err(AccountError::InvalidCode);
        }
        commit.writes.push((key, None));
        commit.conditions.push((
            model::user_key(&user.id),
            RecordCondition::Version(user_version),
        ));
        user.updated_at = self.now();
        user.email_verified = true;
        let outcome = match kind {
            CodeKind::Signup => {
                commit
                    .writes
                    .push((model::user_key(&user.id), to_json(&user)?));
                commit.events.push(user_event(
                    EventType::AuthUserUpdated,
                    &user,
                    json!({"user": user.id, "email": user.email, "changes": ["email_verified"]}),
                ));
                self.commit(ns, commit).await?;
                VerifyOutcome::Verified(PublicUser::from(&user))
            }
            CodeKind::Recovery => {
                user.password_hash = Some(self.hasher.hash(password.unwrap_or_default()).await?);
                user.last_sign_in_at = Some(self.now());
                self.end_sessions(ns, &user.id, None, "password_reset", &mut commit)
                    .await?;
                commit
                    .writes
                    .push((model::user_key(&user.id), to_json(&user)?));
                commit.events.push(user_event(
                    EventType::AuthUserUpdated,
                    &user,
                    json!({"user": user.id, "email": user.email, "changes": ["password_reset"]}),
                ));
                let (sid, refresh) = self.new_session(ns, &user, client, &mut commit).await?;
                self.commit(ns, commit).await?;
                VerifyOutcome::SignedIn(Box::new(
                    self.answer(ns, &settings, &user, &sid, refresh).await?,
                ))
            }
        };
        Ok(outcome)
    }

    /// `GET /admin/users?after=&limit=`.
    pub async fn list_users(
        &self,
        ns: &Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<UserPage, AccountError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AccountError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let after = after.map(model::user_key);
        let records = self
            .records
            .scan(ns, model::USERS_PREFIX, after.as_deref(), limit + 1)
            .await?;
        let mut users = records
            .iter()
            .take(limit)
            .map(|(key, record)| {
                super::from_json::<User>(key, &record.value).map(|user| PublicUser::from(&user))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = (records.len() > limit)
            .then(|| users.last().map(|user| user.id.clone()))
            .flatten();
        users.truncate(limit);
        Ok(UserPage { users, next_after })
    }

    /// `GET /admin/users/{id}`.
    pub async fn admin_user(&self, ns: &Namespace, id: &str) -> Result<PublicUser, AccountError> {
        Ok(PublicUser::from(&self.user_record(ns, id).await?.0))
    }

    /// `PUT /admin/users/{id}`: disable (which ends every session) or enable, set claims.
    pub async fn admin_update_user(
        &self,
        ns: &Namespace,
        id: &str,
        update: AdminUserUpdate,
    ) -> Result<PublicUser, AccountError> {
        if let Some(claims) = &update.claims {
            model::validate_claims(claims)?;
        }
        let (mut user, version) = self.user_record(ns, id).await?;
        let mut commit = RecordCommit::default();
        commit
            .conditions
            .push((model::user_key(id), RecordCondition::Version(version)));
        let mut changes = Vec::new();
        if let Some(disabled) = update
            .disabled
            .filter(|disabled| *disabled != user.disabled)
        {
            user.disabled = disabled;
            if disabled {
                self.end_sessions(ns, id, None, "user_disabled", &mut commit)
                    .await?;
            }
            changes.push(if disabled { "disabled" } else { "enabled" });
        }
        if let Some(claims) = update.claims {
            user.claims = claims;
            changes.push("claims");
        }
        user.updated_at = self.now();
        commit.writes.push((model::user_key(id), to_json(&user)?));
        commit.events.push(user_event(
            EventType::AuthUserUpdated,
            &user,
            json!({"user": user.id, "email": user.email, "changes": changes}),
        ));
        self.commit(ns, commit).await?;
        Ok(PublicUser::from(&user))
    }

    /// `DELETE /admin/users/{id}`: the user, its email, sessions and codes.
    pub async fn delete_user(&self, ns: &Namespace, id: &str) -> Result<(), AccountError> {
        let (user, version) = self.user_record(ns, id).await?;
        let mut commit = RecordCommit::default();
        commit
            .conditions
            .push((model::user_key(id), RecordCondition::Version(version)));
        commit.writes.push((model::user_key(id), None));
        if let Some(email) = &user.email {
            commit.writes.push((model::email_key(email), None));
        }
        for kind in [CodeKind::Signup, CodeKind::Recovery] {
            commit.writes.push((model::code_key(kind, id), None));
        }
        self.end_sessions(ns, id, None, "user_deleted", &mut commit)
            .await?;
        commit.events.push(user_event(
            EventType::AuthUserDeleted,
            &user,
            json!({"user": user.id, "email": user.email}),
        ));
        self.commit(ns, commit).await?;
        Ok(())
    }
}

/// What a used code answers.
#[derive(Debug)]
pub enum VerifyOutcome {
    Verified(PublicUser),
    SignedIn(Box<TokenAnswer>),
}
