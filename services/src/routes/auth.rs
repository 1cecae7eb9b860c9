//! The built-in auth service's routes, `/v1/auth/{ns}/...` (docs/api.md, "Auth service"):
//! public sign-up, sign-in, refresh, codes and JWKS; the signed-in user's account and sessions
//! (with an access token of the service); the admin routes (admin tokens whose scopes cover
//! `auth:read` / `auth:write`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferrobase_core::policy::{Action, Service};
use ferrobase_core::{ErrorCode, Namespace};
use serde::Deserialize;
use serde_json::json;

use crate::auth::accounts::{
    AccessSession, Accounts, AdminUserUpdate, AuthSettings, ClientInfo, CodeKind, LogoutScope,
    UserUpdate, VerifyOutcome,
};
use crate::auth::{Authorizer, Identity, bearer_token};
use crate::error::ApiError;
use crate::routes::extract::{Path, Query};
use crate::routes::{parse_ns, read_body};
use crate::state::AppState;

/// Largest request body of the auth routes.
const MAX_BODY: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/{ns}/config", get(get_config).put(put_config))
        .route("/v1/auth/{ns}/signup", post(sign_up))
        .route("/v1/auth/{ns}/token", post(token))
        .route("/v1/auth/{ns}/logout", post(logout))
        .route("/v1/auth/{ns}/user", get(get_user).put(put_user))
        .route("/v1/auth/{ns}/sessions", get(sessions))
        .route(
            "/v1/auth/{ns}/sessions/{id}",
            axum::routing::delete(revoke_session),
        )
        .route("/v1/auth/{ns}/.well-known/jwks.json", get(jwks))
        .route("/v1/auth/{ns}/recover", post(recover))
        .route("/v1/auth/{ns}/resend", post(resend))
        .route("/v1/auth/{ns}/verify", post(verify))
        .route("/v1/auth/{ns}/admin/users", get(list_users))
        .route(
            "/v1/auth/{ns}/admin/users/{id}",
            get(admin_user)
                .put(admin_update_user)
                .delete(admin_delete_user),
        )
        .route("/v1/auth/{ns}/admin/keys/rotate", post(rotate_key))
}

/// A JSON body of at most [`MAX_BODY`] bytes; an empty body reads as `{}`.
async fn json_body<T: for<'de> Deserialize<'de>>(body: axum::body::Body) -> Result<T, ApiError> {
    let bytes = read_body(body, MAX_BODY, "the request body").await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::invalid(format!(
            "invalid JSON body: {}",
            crate::error::bounded(&error.to_string())
        ))
    })
}

/// The client's address and user agent.
struct Client(ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Client(ClientInfo {
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        }))
    }
}

/// The bearer token of a request to the signed-in user's routes.
struct Bearer(String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        bearer_token(parts)
            .map(Bearer)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "missing bearer token"))
    }
}

async fn session(
    state: &AppState,
    ns: &str,
    bearer: &Bearer,
) -> Result<(Namespace, Arc<Accounts>, AccessSession), ApiError> {
    let ns = parse_ns(ns)?;
    let accounts = state.accounts.clone();
    let session = accounts.access_session(&ns, &bearer.0).await?;
    Ok((ns, accounts, session))
}

async fn admin(
    state: &AppState,
    identity: &Identity,
    ns: &str,
    action: Action,
) -> Result<(Namespace, Arc<Accounts>), ApiError> {
    let ns = parse_ns(ns)?;
    Authorizer::for_namespace(state, identity, &ns)
        .await?
        .require_admin(Service::Auth, action)?;
    Ok((ns, state.accounts.clone()))
}

async fn get_config(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    identity: Identity,
) -> Result<Json<AuthSettings>, ApiError> {
    let (ns, accounts) = admin(&state, &identity, &ns, Action::Read).await?;
    Ok(Json(AuthSettings::clone(&*accounts.settings(&ns).await?)))
}

async fn put_config(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    identity: Identity,
    body: axum::body::Body,
) -> Result<Json<AuthSettings>, ApiError> {
    let (ns, accounts) = admin(&state, &identity, &ns, Action::Write).await?;
    let settings: AuthSettings = json_body(body).await?;
    Ok(Json(AuthSettings::clone(
        &*accounts.put_settings(&ns, settings).await?,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: Option<String>,
    password: Option<String>,
}

async fn sign_up(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Client(client): Client,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let ns = parse_ns(&ns)?;
    let credentials: Credentials = json_body(body).await?;
    let answer = state
        .accounts
        .sign_up(
            &ns,
            credentials.email.as_deref(),
            credentials.password.as_deref(),
            &client,
        )
        .await?;
    Ok((StatusCode::OK, Json(answer)).into_response())
}

#[derive(Debug, Deserialize)]
struct Grant {
    grant_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn token(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Query(grant): Query<Grant>,
    Client(client): Client,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let ns = parse_ns(&ns)?;
    let accounts = &state.accounts;
    let answer = match grant.grant_type.as_str() {
        "password" => {
            let credentials: Credentials = json_body(body).await?;
            let (Some(email), Some(password)) = (credentials.email, credentials.password) else {
                return Err(ApiError::invalid(
                    "the password grant needs email and password",
                ));
            };
            accounts.sign_in(&ns, &email, &password, &client).await?
        }
        "refresh_token" => {
            let body: RefreshBody = json_body(body).await?;
            accounts.refresh(&ns, &body.refresh_token, &client).await?
        }
        other => {
            return Err(ApiError::invalid(format!(
                "unsupported grant_type {:?}: expected password or refresh_token",
                crate::error::bounded(other)
            )));
        }
    };
    Ok(Json(answer).into_response())
}

#[derive(Debug, Deserialize)]
struct LogoutParams {
    #[serde(default)]
    scope: LogoutScope,
}

async fn logout(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Query(params): Query<LogoutParams>,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    let (ns, accounts, session) = session(&state, &ns, &bearer).await?;
    accounts.logout(&ns, &session, params.scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_user(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    bearer: Bearer,
) -> Result<Response, ApiError> {
    let (ns, accounts, session) = session(&state, &ns, &bearer).await?;
    Ok(Json(accounts.user(&ns, &session).await?).into_response())
}

async fn put_user(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    bearer: Bearer,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (ns, accounts, session) = session(&state, &ns, &bearer).await?;
    let update: UserUpdate = json_body(body).await?;
    Ok(Json(accounts.update_user(&ns, &session, update).await?).into_response())
}

async fn sessions(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    bearer: Bearer,
) -> Result<Response, ApiError> {
    let (ns, accounts, session) = session(&state, &ns, &bearer).await?;
    let sessions = accounts.sessions(&ns, &session).await?;
    Ok(Json(json!({ "sessions": sessions })).into_response())
}

async fn revoke_session(
    State(state): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    let (ns, accounts, session) = session(&state, &ns, &bearer).await?;
    accounts.revoke_session(&ns, &session, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn jwks(State(state): State<AppState>, Path(ns): Path<String>) -> Result<Response, ApiError> {
    let ns = parse_ns(&ns)?;
    let keys = state.accounts.jwks(&ns).await?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(keys)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResendBody {
    email: String,
    #[serde(rename = "type")]
    kind: CodeKind,
}

async fn recover(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Client(client): Client,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let ns = parse_ns(&ns)?;
    let body: EmailBody = json_body(body).await?;
    state
        .accounts
        .request_code(&ns, CodeKind::Recovery, &body.email, &client)
        .await?;
    Ok(Json(json!({})).into_response())
}

async fn resend(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Client(client): Client,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let ns = parse_ns(&ns)?;
    let body: ResendBody = json_body(body).await?;
    state
        .accounts
        .request_code(&ns, body.kind, &body.email, &client)
        .await?;
    Ok(Json(json!({})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: CodeKind,
    email: String,
    code: String,
    password: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Client(client): Client,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let ns = parse_ns(&ns)?;
    let body: VerifyBody = json_body(body).await?;
    let outcome = state
        .accounts
        .verify_code(
            &ns,
            body.kind,
            &body.email,
            &body.code,
            body.password.as_deref(),
            &client,
        )
        .await?;
    Ok(match outcome {
        VerifyOutcome::Verified(user) => Json(json!({ "user": user })).into_response(),
        VerifyOutcome::SignedIn(answer) => Json(answer).into_response(),
    })
}

#[derive(Debug, Deserialize)]
struct PageParams {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_users(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Query(params): Query<PageParams>,
    identity: Identity,
) -> Result<Response, ApiError> {
    let (ns, accounts) = admin(&state, &identity, &ns, Action::Read).await?;
    let page = accounts
        .list_users(
            &ns,
            params.after.as_deref(),
            params.limit.unwrap_or(DEFAULT_PAGE),
        )
        .await?;
    Ok(Json(page).into_response())
}

async fn admin_user(
    State(state): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    identity: Identity,
) -> Result<Response, ApiError> {
    let (ns, accounts) = admin(&state, &identity, &ns, Action::Read).await?;
    Ok(Json(accounts.admin_user(&ns, &id).await?).into_response())
}

async fn admin_update_user(
    State(state): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    identity: Identity,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (ns, accounts) = admin(&state, &identity, &ns, Action::Write).await?;
    let update: AdminUserUpdate = json_body(body).await?;
    Ok(Json(accounts.admin_update_user(&ns, &id, update).await?).into_response())
}

async fn admin_delete_user(
    State(state): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    identity: Identity,
) -> Result<StatusCode, ApiError> {
    let (ns, accounts) = admin(&state, &identity, &ns, Action::Write).await?;
    accounts.delete_user(&ns, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_key(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    identity: Identity,
) -> Result<Response, ApiError> {
    let (ns, accounts) = admin(&state, &identity, &ns, Action::Write).await?;
    let kid = accounts.rotate_key(&ns).await?;
    Ok(Json(json!({ "kid": kid })).into_response())
}
