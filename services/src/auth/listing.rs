//! Listings through the authoriser: the one way every listing route (KV keys, storage
//! objects over HTTP and S3, activations) decides what a caller is shown.
//!
//! A listing walks its source in key order and shows, like row-level security, only what the
//! caller may read:
//!
//! - **Items** the caller may not read are left out.
//! - **Common prefixes** (with a delimiter) are rolled up from *readable* keys only: a prefix
//!   is shown exactly when the caller may read at least one key under it. The existence of
//!   keys the caller may not read is never disclosed, not even as a prefix.
//! - **The cursor** never names a key the caller may not read. For callers who read everything
//!   in the service (admin and service tokens whose scopes cover it) it is the last key or
//!   prefix shown, as before (sealed too when it starts like a sealed cursor, so that it is
//!   never mistaken for one). For everyone else it is sealed: the scan position encrypted and
//!   authenticated with a per-process key ([`CursorSealer`]), bound to the listing, the
//!   namespace and the subject, so it resumes exactly where the scan stopped (past hidden
//!   keys, skipping no readable one) while saying nothing about what lies there. A sealed
//!   cursor does not survive a restart of the server; it is then refused with a 400 and the
//!   listing starts again.
//! - **Scanning is bounded**: one request looks at no more than [`SCAN_BUDGET`] keys. A caller
//!   who may read few keys among many gets a short (even empty) page and a cursor, so a page
//!   never costs the server more than that, and paging always moves forward and ends.
//!
//! Before any of this, [`Listing::new`] checks that the token's scopes cover reading the
//! service at all (403 otherwise), so a scoped token cannot list another service's names.

use std::fmt;
use std::future::Future;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ferrobase_core::Namespace;
use ferrobase_core::policy::{Action, Service};

use super::Authorizer;
use crate::error::ApiError;

/// Most source entries one listing request examines.
pub const SCAN_BUDGET: usize = 2_000;
/// Entries asked of the source at a time.
const SOURCE_BATCH: usize = 1_000;
/// Sealed cursors start with this; anything else given as `after` is a plain start-after key.
const SEALED_MARK: char = '~';
/// Sealed positions are padded to a multiple of this, so a cursor's length says little about
/// the key inside it.
const PAD_TO: usize = 64;
/// Greater than every character a key may hold: `prefix` followed by it sorts after every key
/// under `prefix`, which lets a scan jump past a rolled-up common prefix.
const AFTER_ALL: char = char::MAX;

/// Seals and opens listing cursors with a key made when the process starts.
#[derive(Clone)]
pub struct CursorSealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for CursorSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorSealer(..)")
    }
}

impl Default for CursorSealer {
    fn default() -> Self {
        CursorSealer::random()
    }
}

impl CursorSealer {
    /// A sealer with a fresh random key.
    pub fn random() -> Self {
        CursorSealer {
            cipher: XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng)),
        }
    }

    fn seal(&self, binding: &str, position: &str) -> String {
        let length = u16::try_from(position.len()).unwrap_or(u16::MAX);
        let mut plain = Vec::with_capacity(position.len() + PAD_TO);
        plain.extend_from_slice(&length.to_be_bytes());
        plain.extend_from_slice(&position.as_bytes()[..usize::from(length)]);
        plain.resize(plain.len().div_ceil(PAD_TO) * PAD_TO, 0);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: binding.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message of this size");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_MARK}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    fn open(&self, binding: &str, cursor: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        const NONCE_LEN: usize = 24;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: binding.as_bytes(),
                },
            )
            .ok()?;
        let length = usize::from(u16::from_be_bytes([*plain.first()?, *plain.get(1)?]));
        let position = plain.get(2..2 + length)?;
        String::from_utf8(position.to_vec()).ok()
    }
}

/// A batch of source entries in ascending key order, after the position asked for.
#[derive(Debug)]
pub struct SourceBatch<T> {
    pub entries: Vec<(String, T)>,
    /// No entries beyond these.
    pub exhausted: bool,
}

/// Where a listing request resumes.
#[derive(Debug, Clone, Copy)]
pub enum Resume<'a> {
    /// From the first key.
    Beginning,
    /// `after` as the HTTP listings take it: a cursor one of this listing's pages handed out,
    /// sealed or plain; 400 for a sealed one that does not open.
    Cursor(&'a str),
    /// After this key, taken as given (S3's `start-after`).
    Key(&'a str),
    /// S3's `marker`: a sealed cursor of this listing when it opens as one, otherwise a key,
    /// because S3 clients also continue from the last key of a page, which may start with
    /// the sealed mark.
    CursorOrKey(&'a str),
}

/// Whether `cursor` is a sealed one (plain cursors never start like this).
pub fn is_sealed(cursor: &str) -> bool {
    cursor.starts_with(SEALED_MARK)
}

/// What the caller is shown.
#[derive(Debug)]
pub struct VisiblePage<T> {
    pub items: Vec<T>,
    pub prefixes: Vec<String>,
    /// Pass back as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// One listing request of one caller.
#[derive(Debug)]
pub struct Listing<'a> {
    authorizer: &'a Authorizer,
    sealer: &'a CursorSealer,
    binding: String,
    reads_all: bool,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    limit: usize,
}

impl<'a> Listing<'a> {
    /// A listing of `service` resources named `what` (e.g. `storage/{bucket}`), showing up to
    /// `limit` items and prefixes under `prefix`; 403 unless the token's scopes cover reading
    /// `service`.
    pub fn new(
        authorizer: &'a Authorizer,
        sealer: &'a CursorSealer,
        service: Service,
        what: &str,
        prefix: &'a str,
        delimiter: Option<&'a str>,
        limit: usize,
    ) -> Result<Self, ApiError> {
        authorizer.require_scope(service, Action::Read)?;
        let binding = binding(&authorizer.ns, authorizer, service, what, prefix, delimiter);
        Ok(Listing {
            authorizer,
            sealer,
            binding,
            reads_all: authorizer.reads_all(service),
            prefix,
            delimiter: delimiter.filter(|d| !d.is_empty()),
            limit,
        })
    }

    /// Whether items need no per-item check (the caller reads the whole service).
    pub fn reads_all(&self) -> bool {
        self.reads_all
    }

    /// The authoriser, for the routes' per-item checks.
    pub fn authorizer(&self) -> &Authorizer {
        self.authorizer
    }

    /// Where the scan starts: after the position sealed in a cursor this listing handed out,
    /// or after `after` itself when it is a plain key (S3's start-after). 400 for a sealed
    /// cursor that is not this listing's.
    pub fn start(&self, after: Option<&str>) -> Result<Option<String>, ApiError> {
        self.resume(after.map_or(Resume::Beginning, Resume::Cursor))
    }

    /// Where the scan starts for `resume`.
    pub fn resume(&self, resume: Resume<'_>) -> Result<Option<String>, ApiError> {
        let (after, strict) = match resume {
            Resume::Beginning => return Ok(None),
            Resume::Key(key) => return Ok(Some(key.to_owned()).filter(|key| !key.is_empty())),
            Resume::Cursor(after) => (after, true),
            Resume::CursorOrKey(after) => (after, false),
        };
        if after.is_empty() {
            return Ok(None);
        }
        let Some(sealed) = after.strip_prefix(SEALED_MARK) else {
            return Ok(Some(after.to_owned()));
        };
        match self.sealer.open(&self.binding, sealed) {
            Some(position) => Ok(Some(position)),
            None if !strict => Ok(Some(after.to_owned())),
            None => Err(ApiError::invalid(
                "invalid listing cursor (cursors are only valid for the listing that \
                 returned them, until the server restarts)",
            )),
        }
    }

    /// Walks the source from `start`, asking `fetch(after, max)` for batches, and keeps what
    /// `readable(key, item)` allows (not asked when the caller reads everything).
    pub async fn run<T, F, Fut>(
        &self,
        start: Option<String>,
        mut fetch: F,
        readable: impl Fn(&str, &T) -> bool,
    ) -> Result<VisiblePage<T>, ApiError>
    where
        F: FnMut(Option<String>, usize) -> Fut,
        Fut: Future<Output = Result<SourceBatch<T>, ApiError>>,
    {
        let mut page = VisiblePage {
            items: Vec::new(),
            prefixes: Vec::new(),
            next: None,
        };
        let mut position = start.clone();
        let mut last_shown: Option<String> = None;
        let mut scanned = 0usize;
        loop {
            let batch = fetch(position.clone(), SOURCE_BATCH).await?;
            let mut jumped = false;
            for (key, item) in batch.entries {
                if page.items.len() + page.prefixes.len() == self.limit || scanned == SCAN_BUDGET {
                    // Something is left to look at: hand out a cursor to it.
                    page.next = Some(self.cursor(position.as_deref(), last_shown.as_deref()));
                    return Ok(page);
                }
                scanned += 1;
                position = Some(key.clone());
                if !self.reads_all && !readable(&key, &item) {
                    continue;
                }
                match self.rolled_up(&key) {
                    Some(common) => {
                        let seen = start.as_deref().is_some_and(|a| common.as_str() <= a)
                            || page.prefixes.last() == Some(&common);
                        position = Some(format!("{common}{AFTER_ALL}"));
                        jumped = true;
                        if !seen {
                            last_shown = Some(common.clone());
                            page.prefixes.push(common);
                        }
                        break;
                    }
                    None => {
                        last_shown = Some(key);
                        page.items.push(item);
                    }
                }
            }
            if batch.exhausted && !jumped {
                return Ok(page);
            }
        }
    }

    /// The common prefix `key` rolls up into, with a delimiter.
    fn rolled_up(&self, key: &str) -> Option<String> {
        let delimiter = self.delimiter?;
        let rest = key.strip_prefix(self.prefix)?;
        rest.find(delimiter)
            .map(|at| key[..self.prefix.len() + at + delimiter.len()].to_owned())
    }

    fn cursor(&self, position: Option<&str>, last_shown: Option<&str>) -> String {
        match (self.reads_all, last_shown) {
            // Everything scanned was shown (or jumped over under a shown prefix). A key that
            // looks sealed is sealed too, or it would not be taken back as plain.
            (true, Some(shown)) if !is_sealed(shown) => shown.to_owned(),
            _ => self
                .sealer
                .seal(&self.binding, position.unwrap_or_default()),
        }
    }
}

/// What a sealed cursor is bound to: the same listing, for the same caller.
fn binding(
    ns: &Namespace,
    authorizer: &Authorizer,
    service: Service,
    what: &str,
    prefix: &str,
    delimiter: Option<&str>,
) -> String {
    let claims = &authorizer.claims;
    serde_json::json!([
        ns.as_str(),
        claims.role.as_str(),
        claims.sub,
        service.prefix(),
        what,
        prefix,
        delimiter.unwrap_or_default(),
    ])
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::CursorSealer;

    #[test]
    fn sealed_positions_open_only_with_their_binding_and_key() {
        let sealer = CursorSealer::random();
        let cursor = sealer.seal("listing-a", "layoffs/plan-q1.pdf");
        let body = cursor.strip_prefix('~').unwrap();
        assert!(!cursor.contains("layoffs"));
        assert_eq!(
            sealer.open("listing-a", body).as_deref(),
            Some("layoffs/plan-q1.pdf")
        );
        assert_eq!(sealer.open("listing-b", body), None);
        assert_eq!(CursorSealer::random().open("listing-a", body), None);
        assert_eq!(sealer.open("listing-a", "not base64!"), None);
        assert_eq!(sealer.open("listing-a", ""), None);
        // Lengths are padded: a short and a longer key give cursors of one length.
        assert_eq!(
            sealer.seal("x", "a").len(),
            sealer
                .seal("x", "a-somewhat-longer-key/under/a/prefix")
                .len()
        );
        assert_eq!(sealer.seal("x", "").len(), sealer.seal("x", "a").len());
    }
}
