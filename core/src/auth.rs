//! Identity carried by a verified token: claims and roles. Verification itself (JWT signatures,
//! keys) lives in `services`; this module only says what a verified identity is.

use serde::{Deserialize, Serialize};

use crate::Namespace;

/// What kind of principal a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operators: everything in their namespace, or in every namespace when the token has none.
    Admin,
    /// Trusted back-end programs: everything in their namespace.
    Service,
    /// End users (browser apps): only what their namespace's policy grants.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Service => "service",
            Role::User => "user",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "service" => Ok(Role::Service),
            "user" => Ok(Role::User),
            other => Err(format!(
                "unknown role {other:?}: expected admin, service or user"
            )),
        }
    }
}

/// The claims Ferrobase reads from a JWT (docs/api.md, "Auth").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user or program id; substituted for `{sub}` in policy patterns.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The namespace the token is for; only admin tokens may omit it. The reserved
    /// `_system` namespace is refused: no token is ever issued for it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "public_namespace"
    )]
    pub ns: Option<Namespace>,
    pub role: Role,
    /// Optional narrowing of what the token may do: `service:action` (e.g. `kv:read`),
    /// `service:*` or `*`. When present, every request must be covered by one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

fn public_namespace<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Namespace>, D::Error> {
    let name = Option::<String>::deserialize(deserializer)?;
    name.map(|name| Namespace::parse(&name).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_refuse_the_reserved_namespace() {
        let json = |ns: &str| {
            serde_json::json!({"sub": "s", "exp": 1, "role": "admin", "ns": ns}).to_string()
        };
        assert!(serde_json::from_str::<Claims>(&json("shop")).is_ok());
        assert!(serde_json::from_str::<Claims>(&json("_system")).is_err());
    }
}
