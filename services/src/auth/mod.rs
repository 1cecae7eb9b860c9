//! Authentication and authorization at the HTTP edge.
//!
//! `jwt` verifies tokens; [`Identity`] is the extractor that turns a request's bearer token
//! into verified claims (401 otherwise); [`Authorizer`] applies the core policy evaluator to
//! one namespace for one identity (403 when it says no), and as an extractor takes that
//! namespace from the path's `{ns}`; [`listing`] applies it to listings,
//! so that they show only what the caller may read.

pub mod access_keys;
pub mod accounts;
mod jwt;
pub mod listing;
pub mod presign;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use ferrobase_core::auth::{Claims, Role};
use ferrobase_core::policy::{self, Action, Decision, DenyReason, Policy, Resource, Service};
use ferrobase_core::{ErrorCode, Namespace};

pub use jwt::{AccountTokens, AuthSetupError, SECRET_FILE, TokenError, TokenVerifier};

use crate::error::ApiError;
use crate::policies::PolicyStore;

/// The verified claims of the request's token.
#[derive(Debug, Clone)]
pub struct Identity(pub Claims);

/// Any router state that can hand out the token verifier: the server's state is one, and the
/// extractor needs nothing else from it.
impl<S> FromRequestParts<S> for Identity
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "missing bearer token"))?;
        verifier
            .verify_request(&token)
            .await
            .map(Identity)
            .map_err(|error| ApiError::new(ErrorCode::Unauthenticated, error.to_string()))
    }
}

/// The token from `Authorization: Bearer ...`, or for GET requests from `?access_token=`,
/// because browsers' `EventSource` cannot set headers. Public for the fuzz harness (`fuzz/`).
#[doc(hidden)]
pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let header = header.to_str().ok()?;
        let (scheme, token) = header.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if parts.method != axum::http::Method::GET {
        return None;
    }
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "access_token").then(|| value.to_owned())
    })
}

/// The verified claims of a web action's caller, when the request carries a valid token that
/// may reach `ns`. A web action needs no token, so a missing or invalid one is no error; but a
/// token for another namespace must not identify its bearer to this namespace's code.
pub(crate) async fn web_caller<S>(state: &S, parts: &Parts, ns: &Namespace) -> Option<Claims>
where
    Arc<TokenVerifier>: FromRef<S>,
{
    let verifier = Arc::<TokenVerifier>::from_ref(state);
    let claims = verifier.verify_request(&bearer_token(parts)?).await.ok()?;
    reaches(&claims, ns).ok().map(|()| claims)
}

/// Whether a token may reach `ns` at all, whatever it then asks for there.
fn reaches(claims: &Claims, ns: &Namespace) -> Result<(), DenyReason> {
    let probe = Resource::new(Service::Events, "");
    match policy::authorize(claims, ns, Action::Read, &probe, None) {
        Decision::Deny(reason @ (DenyReason::WrongNamespace | DenyReason::NoNamespace)) => {
            Err(reason)
        }
        _ => Ok(()),
    }
}

/// Decisions for one identity in one namespace, with the namespace's policy loaded once.
#[derive(Debug)]
pub struct Authorizer {
    claims: Claims,
    ns: Namespace,
    policy: Option<Arc<Policy>>,
}

/// The extractor nearly every handler starts with: the request's bearer token verified (401
/// otherwise), the path's `{ns}` parsed (400) and reachable by the token (403), and the
/// namespace's policy loaded for `user` tokens. Handlers then only decide about resources.
impl<S> FromRequestParts<S> for Authorizer
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
    Arc<PolicyStore>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let identity = Identity::from_request_parts(parts, state).await?;
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::invalid(format!(
                    "invalid path: {}",
                    crate::error::bounded(&rejection.body_text())
                ))
            })?;
        let raw = params
            .iter()
            .find_map(|(name, value)| (name == "ns").then_some(value))
            .ok_or_else(|| ApiError::internal("the route has no {ns} in its path"))?;
        let ns = Namespace::parse(raw).map_err(|error| ApiError::invalid(error.to_string()))?;
        Authorizer::for_namespace(state, &identity, &ns).await
    }
}

impl Authorizer {
    /// Checks that the identity may reach `ns` at all (403 otherwise) and loads the policy
    /// when the identity is a `user`.
    pub async fn for_namespace<S>(
        state: &S,
        identity: &Identity,
        ns: &Namespace,
    ) -> Result<Self, ApiError>
    where
        Arc<PolicyStore>: FromRef<S>,
    {
        reaches(&identity.0, ns)
            .map_err(|reason| ApiError::new(ErrorCode::PermissionDenied, reason.to_string()))?;
        let policy = match identity.0.role {
            Role::User => Arc::<PolicyStore>::from_ref(state).get(ns).await?,
            Role::Admin | Role::Service => None,
        };
        Ok(Authorizer {
            claims: identity.0.clone(),
            ns: ns.clone(),
            policy,
        })
    }

    /// The namespace the decisions are for.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    pub fn allows(&self, action: Action, resource: Resource<'_>) -> bool {
        policy::authorize(
            &self.claims,
            &self.ns,
            action,
            &resource,
            self.policy.as_deref(),
        )
        .is_allowed()
    }

    /// 403 unless `action` on `resource` is allowed.
    pub fn require(&self, action: Action, resource: Resource<'_>) -> Result<(), ApiError> {
        match policy::authorize(
            &self.claims,
            &self.ns,
            action,
            &resource,
            self.policy.as_deref(),
        ) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "{action} on {}:{} denied: {reason}",
                    resource.service, resource.path
                ),
            )),
        }
    }

    /// 403 unless the token's scopes cover `action` on `service` at all. Routes touching many
    /// resources (listings) check this before deciding about each resource with [`Self::allows`].
    pub fn require_scope(&self, service: Service, action: Action) -> Result<(), ApiError> {
        match policy::authorize_scope(&self.claims, &self.ns, service, action) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!("{action} on {service} denied: {reason}"),
            )),
        }
    }

    /// 403 unless the identity is an admin whose scopes cover `action` on `service`
    /// (policies and other operator actions).
    pub fn require_admin(&self, service: Service, action: Action) -> Result<(), ApiError> {
        self.require_manager(&[Role::Admin], service, action)
    }

    /// 403 unless the identity has one of `roles` and its scopes cover `action` on `service`:
    /// for operator APIs that policies do not open to `user` tokens.
    pub fn require_manager(
        &self,
        roles: &[Role],
        service: Service,
        action: Action,
    ) -> Result<(), ApiError> {
        if !roles.contains(&self.claims.role) {
            let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!("only {} tokens may do this", names.join(" and ")),
            ));
        }
        self.require_scope(service, action)
    }

    /// Whether every resource of `service` is readable to this identity, so a listing needs
    /// no per-item filtering: admin and service tokens whose scopes cover reading it.
    pub fn reads_all(&self, service: Service) -> bool {
        match self.claims.role {
            Role::Admin | Role::Service => {
                policy::authorize_scope(&self.claims, &self.ns, service, Action::Read).is_allowed()
            }
            Role::User => false,
        }
    }
}

/// A token for `role` in `ns`, valid for `ttl`, signed with the key `config` describes.
pub fn mint(
    config: &crate::config::Config,
    role: Role,
    ns: Option<Namespace>,
    sub: &str,
    ttl: std::time::Duration,
    scopes: Option<Vec<String>>,
) -> anyhow::Result<String> {
    let verifier = TokenVerifier::load(&config.auth, &config.data_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = Claims {
        sub: sub.to_owned(),
        exp: now + ttl.as_secs().max(1),
        iat: Some(now),
        ns,
        role,
        scopes,
    };
    Ok(verifier.mint(&claims)?)
}
