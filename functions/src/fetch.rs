//! Outbound `fetch`: which URLs a function may reach. [`FetchPolicy`] is the one place the rule
//! lives; the engine and the server's HTTP client both ask it, about the same parsed value.
//!
//! The rule, in the order it is applied:
//!
//! 1. The function's URL string is parsed once, by the WHATWG URL parser ([`parse_url`]), when
//!    the SDK call is read ([`crate::HostOp::Fetch`] holds a [`Url`]). Every decision below is
//!    made on that value and the request is sent with exactly that value: nothing parses the
//!    raw string again, so `http://127.0.0.1:80\@allowed.test/` is a request to 127.0.0.1
//!    for the check as much as for the HTTP client. IDNA mapping and lowercasing come with
//!    the parse (`ＡＰＩ.example.com` is `api.example.com`).
//! 2. Only `http` and `https`. A URL with credentials (`user:password@host`) is refused, not
//!    stripped: it is a mistake or a trick, and either way the function should know.
//! 3. The host must be on the allow-list (`functions.fetch_allowed_hosts`): an exact host (a
//!    name, normalised as in 1, or an IP address in any notation the parser accepts) or
//!    `*.example.com` for the names below `example.com`. Any port. One trailing dot is
//!    ignored on both sides (`api.example.com.` is the same DNS name as `api.example.com`).
//! 4. Unless private addresses are allowed ([`PrivateAddresses::Allow`], the server's
//!    `functions.fetch_deny_private = false`), the address connected to must be public (see
//!    [`is_public`]: not loopback, private, link-local, CGNAT, multicast, broadcast,
//!    unspecified, reserved, cloud metadata, nor an IPv6 form embedding one of those). An IP
//!    literal is checked with the URL ([`FetchPolicy::check`]); a name is checked on the
//!    addresses it resolves to, by the HTTP client's resolver ([`FetchPolicy::filter_addresses`]),
//!    so an allowed name that resolves to 127.0.0.1 is no way in either, and neither is a
//!    name whose DNS answer changes between the check and the connection.
//! 5. Every redirect hop goes through 2 to 4 again ([`FetchPolicy::check_redirect`]), and a
//!    chain stops after [`MAX_REDIRECTS`] redirects.
//!
//! A refusal is a [`FetchRefused`], which the function sees as an `Error` with code
//! `permission_denied` and a message saying why.

use ferrobase_core::ErrorCode;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;
use url::Host;
pub use url::Url;

use crate::host::HostError;

/// Most redirects one fetch follows.
pub const MAX_REDIRECTS: usize = 10;
/// Most characters of a URL or host quoted in a refusal.
const MAX_SHOWN: usize = 200;

/// Whether `fetch` may connect to addresses that are not public.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrivateAddresses {
    /// Only public addresses (the default).
    #[default]
    Deny,
    /// Any address the allow-list leads to, loopback included (development, tests).
    Allow,
}

/// One allow-list entry, normalised as URL hosts are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHost {
    /// This host exactly.
    Exact(Host),
    /// The names strictly below this domain (`*.example.com`).
    Below(String),
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<AllowedHost, String> {
        let (below, name) = match entry.strip_prefix("*.") {
            Some(name) => (true, name),
            None => (false, entry),
        };
        let host = normalised(Host::parse(name).map_err(|error| error.to_string())?);
        match host {
            Host::Domain(name) if name.is_empty() => Err("the host is empty".to_owned()),
            Host::Domain(name) if name.contains('*') => {
                Err("a wildcard is only allowed as a leading `*.`".to_owned())
            }
            Host::Domain(name) if below => Ok(AllowedHost::Below(name)),
            _ if below => Err("`*.` must be followed by a domain name".to_owned()),
            host => Ok(AllowedHost::Exact(host)),
        }
    }

    fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (AllowedHost::Exact(allowed), host) => allowed == host,
            (AllowedHost::Below(domain), Host::Domain(name)) => name
                .strip_suffix(domain.as_str())
                .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
            (AllowedHost::Below(_), Host::Ipv4(_) | Host::Ipv6(_)) => false,
        }
    }
}

/// How outbound `fetch` is limited (see the module docs for the rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    allowed: Vec<AllowedHost>,
    private: PrivateAddresses,
}

/// An allow-list entry that is not a host or `*.domain`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fetch allow-list entry {entry:?}: {reason}")]
pub struct InvalidAllowedHost {
    pub entry: String,
    pub reason: String,
}

/// Why a fetch is not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchRefused {
    #[error("fetch refused: scheme {0:?} is not allowed (only http and https)")]
    Scheme(String),
    #[error("fetch refused: credentials in URLs (user:password@host) are not allowed")]
    Credentials,
    #[error(
        "fetch refused: host not allowed: {0} is not on the server's allow-list (functions.fetch_allowed_hosts)"
    )]
    HostNotAllowed(String),
    #[error(
        "fetch refused: address is private: {} is not a public address (functions.fetch_deny_private)",
        described(.host, .address)
    )]
    PrivateAddress { host: String, address: IpAddr },
    #[error("fetch refused: more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("{reason} (redirected to {location})")]
    Redirect {
        location: String,
        reason: Box<FetchRefused>,
    },
}

impl From<FetchRefused> for HostError {
    fn from(refused: FetchRefused) -> Self {
        HostError::new(ErrorCode::PermissionDenied, refused.to_string())
    }
}

impl FetchPolicy {
    /// A policy allowing `allowed_hosts` (exact hosts, or `*.example.com` for the names below
    /// `example.com`), each normalised as a URL's host is.
    pub fn new<S: AsRef<str>>(
        allowed_hosts: &[S],
        private: PrivateAddresses,
    ) -> Result<FetchPolicy, InvalidAllowedHost> {
        let allowed = allowed_hosts
            .iter()
            .map(|entry| {
                AllowedHost::parse(entry.as_ref()).map_err(|reason| InvalidAllowedHost {
                    entry: shown(entry.as_ref()),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(FetchPolicy { allowed, private })
    }

    pub fn private_addresses(&self) -> PrivateAddresses {
        self.private
    }

    /// Whether `url` may be fetched: scheme, credentials, allow-list, and the address of an
    /// IP-literal host (a name's addresses are checked when it is resolved).
    pub fn check(&self, url: &Url) -> Result<(), FetchRefused> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(FetchRefused::Scheme(shown(other))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchRefused::Credentials);
        }
        // http and https URLs always have a host; an absent one matches no entry.
        let host = url
            .host()
            .map(|host| normalised(host.to_owned()))
            .ok_or_else(|| FetchRefused::HostNotAllowed("(none)".to_owned()))?;
        if !self.allowed.iter().any(|allowed| allowed.matches(&host)) {
            return Err(FetchRefused::HostNotAllowed(shown(&host.to_string())));
        }
        match host {
            Host::Ipv4(address) => self.check_address(&host.to_string(), IpAddr::V4(address)),
            Host::Ipv6(address) => self.check_address(&host.to_string(), IpAddr::V6(address)),
            Host::Domain(_) => Ok(()),
        }
    }

    /// Whether a redirect to `next` may be followed, after `requests_made` requests of the
    /// chain (the first request included).
    pub fn check_redirect(&self, requests_made: usize, next: &Url) -> Result<(), FetchRefused> {
        if requests_made > MAX_REDIRECTS {
            return Err(FetchRefused::TooManyRedirects(MAX_REDIRECTS));
        }
        self.check(next).map_err(|reason| FetchRefused::Redirect {
            location: shown(next.as_str()),
            reason: Box::new(reason),
        })
    }

    /// Whether `fetch` may connect to `address`, which `host` names or resolved to.
    pub fn check_address(&self, host: &str, address: IpAddr) -> Result<(), FetchRefused> {
        match self.private {
            PrivateAddresses::Allow => Ok(()),
            PrivateAddresses::Deny if is_public(address) => Ok(()),
            PrivateAddresses::Deny => Err(FetchRefused::PrivateAddress {
                host: shown(host),
                address,
            }),
        }
    }

    /// The addresses `host` resolved to that `fetch` may connect to; refused when none is.
    pub fn filter_addresses(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, FetchRefused> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|address| match self.check_address(host, address.ip()) {
                Ok(()) => true,
                Err(refusal) => {
                    refused.get_or_insert(refusal);
                    false
                }
            })
            .collect();
        match refused {
            Some(refusal) if allowed.is_empty() => Err(refusal),
            _ => Ok(allowed),
        }
    }
}

/// Parses a URL the way `fetch` uses it: WHATWG parsing, as browsers do.
pub fn parse_url(raw: &str) -> Result<Url, url::ParseError> {
    Url::parse(raw)
}

/// Reads a `fetch` call's URL with [`parse_url`].
pub(crate) fn deserialize_url<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Url, D::Error> {
    let raw = String::deserialize(deserializer)?;
    parse_url(&raw).map_err(|error| {
        serde::de::Error::custom(format!("invalid URL {:?}: {error}", shown(&raw)))
    })
}

/// `localhost (127.0.0.1)`, or the address alone when the host is the address.
fn described(host: &str, address: &IpAddr) -> String {
    let address = address.to_string();
    if host.trim_start_matches('[').trim_end_matches(']') == address {
        address
    } else {
        format!("{host} ({address})")
    }
}

/// One trailing dot of a domain dropped: `example.com.` and `example.com` are one host.
fn normalised(host: Host) -> Host {
    match host {
        Host::Domain(name) => match name.strip_suffix('.') {
            Some(stripped) => Host::Domain(stripped.to_owned()),
            None => Host::Domain(name),
        },
        other => other,
    }
}

/// Whether `address` is public: on the internet, not this machine, its networks or a
/// provider's metadata service. IPv6 addresses that embed an IPv4 address (IPv4-mapped,
/// IPv4-compatible, NAT64) are judged by the IPv4 address.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => is_public_v4(address),
        IpAddr::V6(address) => match embedded_v4(address) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(address),
        },
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    let not_public = a == 0 // "this network", 0.0.0.0 included: Linux connects it to loopback
        || address.is_loopback()
        || address.is_private() // RFC 1918
        || address.is_link_local() // 169.254/16, the metadata service 169.254.169.254 included
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10 (Alibaba's metadata too)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (Oracle's metadata)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || address.is_multicast()
        || a >= 240; // reserved 240/4 and the broadcast address
    !not_public
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let not_public = address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_unique_local() // fc00::/7, AWS's metadata fd00:ec2::254 included
        || address.is_unicast_link_local() // fe80::/10
        || (address.segments()[0] & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
        || address.segments()[..3] == [0x64, 0xff9b, 1]; // local-use NAT64 64:ff9b:1::/48
    !not_public
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, `::` and `::1` included) or
/// well-known NAT64 (`64:ff9b::a.b.c.d`) address.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = address.segments();
    let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let embeds = matches!(
        s[..6],
        [0, 0, 0, 0, 0, 0xffff]
            | [0, 0, 0, 0, 0, 0]
            | [0, 0, 0, 0, 0xffff, 0]
            | [0x64, 0xff9b, 0, 0, 0, 0]
    );
    embeds.then_some(v4)
}

/// `text` cut to [`MAX_SHOWN`] characters, marked when cut.
fn shown(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
