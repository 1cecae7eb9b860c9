//! Namespaces: the unit of tenancy. Every key, object, queue, function and event belongs to one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest namespace name accepted.
pub const MAX_NAMESPACE_LEN: usize = 63;

const SYSTEM: &str = "_system";

/// A validated namespace name: 1 to 63 characters of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit. Names starting with `_` are reserved for Ferrobase's own bookkeeping and are
/// only constructed through [`Namespace::system`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Namespace(String);

/// Why a string is not a namespace name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid namespace {name:?}: {reason}")]
pub struct InvalidNamespace {
    pub name: String,
    pub reason: &'static str,
}

impl Namespace {
    /// Parses a user-supplied namespace name.
    pub fn parse(name: &str) -> Result<Self, InvalidNamespace> {
        let invalid = |reason| InvalidNamespace {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() || name.len() > MAX_NAMESPACE_LEN {
            return Err(invalid("must be 1 to 63 characters long"));
        }
        let first = name.as_bytes()[0];
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(invalid("must start with a lowercase letter or a digit"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid("may only contain a-z, 0-9, '-' and '_'"));
        }
        Ok(Namespace(name.to_owned()))
    }

    /// Parses a namespace name read back from Ferrobase's own storage, where the reserved
    /// [`Namespace::system`] may appear too.
    pub fn parse_stored(name: &str) -> Result<Self, InvalidNamespace> {
        if name == SYSTEM {
            return Ok(Namespace::system());
        }
        Namespace::parse(name)
    }

    /// The reserved namespace where Ferrobase keeps its own records (policies, activations).
    /// Users cannot name it, so no token can reach it through the public API.
    pub fn system() -> Self {
        Namespace(SYSTEM.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Namespace::parse_stored(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["shop", "a", "tenant-42", "x_y", "0abc"] {
            assert_eq!(Namespace::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_reserved_and_malformed_names() {
        let long = "a".repeat(64);
        for name in [
            "",
            "_system",
            "-a",
            "Shop",
            "a/b",
            "a b",
            "ä",
            long.as_str(),
        ] {
            assert!(
                Namespace::parse(name).is_err(),
                "{name:?} should be rejected"
            );
        }
    }
}
