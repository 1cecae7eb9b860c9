//! Each namespace's ES256 signing keys: a ring in the record store (`auth/keys`), the newest
//! key signing, older ones still verifying until every token they signed has expired.
//!
//! A key signs for [`KeyOptions::rotation`] and is then replaced (on the next sign-in, or at
//! once through the admin route); a replaced key verifies for the longest access-token
//! lifetime plus the verifier's leeway, then leaves the ring. Key ids are
//! `fb1.{namespace}.{random}`, so the token verifier knows both that a token is one of ours
//! and which namespace's ring to ask.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ferrobase_core::records::{EventDraft, RecordCommit, RecordCondition, RecordStore};
use ferrobase_core::{Clock, EventType, Namespace};
use jsonwebtoken::{DecodingKey, EncodingKey};
use p256::pkcs8::EncodePrivateKey as _;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AccountError;
use super::model::{ACCESS_TOKEN_TTL_SECS, KEYS_KEY};

/// The prefix of the key ids of account tokens.
pub const KID_PREFIX: &str = "fb1.";

#[derive(Debug, Clone, Copy)]
pub struct KeyOptions {
    /// How long a key signs before it is replaced.
    pub rotation: Duration,
    /// The verifier's clock-skew allowance, added to how long a replaced key verifies.
    pub leeway: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// The P-256 private scalar, base64url.
    d: String,
    created_at: u64,
    /// When the key stopped signing.
    retired_at: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredRing {
    keys: Vec<StoredKey>,
}

struct RingKey {
    kid: String,
    created_at: u64,
    retired_at: Option<u64>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

/// A loaded ring and the record version it came from.
struct Ring {
    version: Option<u64>,
    stored: StoredRing,
    keys: Vec<RingKey>,
    loaded_at: u64,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|key| key.kid.as_str()).collect();
        f.debug_struct("Ring").field("kids", &kids).finish()
    }
}

#[derive(Debug)]
pub struct KeyStore {
    records: Arc<dyn RecordStore>,
    clock: Arc<dyn Clock>,
    options: KeyOptions,
    rings: RwLock<HashMap<Namespace, Arc<Ring>>>,
}

/// A key ready to sign.
pub(crate) struct Signer {
    pub(crate) kid: String,
    pub(crate) key: EncodingKey,
}

fn build_key(stored: &StoredKey) -> Result<RingKey, AccountError> {
    let bad = |what: &str| AccountError::Internal(format!("stored key {}: {what}", stored.kid));
    let scalar = URL_SAFE_NO_PAD
        .decode(&stored.d)
        .map_err(|_| bad("not base64url"))?;
    let secret = p256::SecretKey::from_slice(&scalar).map_err(|_| bad("not a P-256 scalar"))?;
    let der = secret
        .to_pkcs8_der()
        .map_err(|_| bad("cannot encode as PKCS#8"))?;
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(bad("no affine coordinates"));
    };
    let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
    let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| bad("bad public key"))?;
    Ok(RingKey {
        kid: stored.kid.clone(),
        created_at: stored.created_at,
        retired_at: stored.retired_at,
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        decoding,
        jwk: json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": stored.kid, "alg": "ES256", "use": "sig",
        }),
    })
}

fn new_key(ns: &Namespace, now: u64) -> Result<StoredKey, AccountError> {
    let random = |buf: &mut [u8]| {
        OsRng
            .try_fill_bytes(buf)
            .map_err(|e| AccountError::Internal(format!("no randomness for a key: {e}")))
    };
    let mut id = [0u8; 8];
    random(&mut id)?;
    // Nearly every 32-byte string is a valid scalar; draw again in the rare other case.
    loop {
        let mut scalar = [0u8; 32];
        random(&mut scalar)?;
        if p256::SecretKey::from_slice(&scalar).is_ok() {
            return Ok(StoredKey {
                kid: format!("{KID_PREFIX}{ns}.{}", hex::encode(id)),
                d: URL_SAFE_NO_PAD.encode(scalar),
                created_at: now,
                retired_at: None,
            });
        }
    }
}

/// The namespace a key id names, if it is one of ours.
pub fn namespace_of_kid(kid: &str) -> Option<Namespace> {
    let rest = kid.strip_prefix(KID_PREFIX)?;
    let (ns, _) = rest.rsplit_once('.')?;
    Namespace::parse(ns).ok()
}

impl KeyStore {
    pub fn new(records: Arc<dyn RecordStore>, clock: Arc<dyn Clock>, options: KeyOptions) -> Self {
        KeyStore {
            records,
            clock,
            options,
            rings: RwLock::default(),
        }
    }

    /// How long after it stops signing a key still verifies.
    fn verify_window_ms(&self) -> u64 {
        (ACCESS_TOKEN_TTL_SECS.end() + self.options.leeway.as_secs() + 60) * 1000
    }

    fn cached(&self, ns: &Namespace) -> Option<Arc<Ring>> {
        self.rings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(ns)
            .cloned()
    }

    async fn load(&self, ns: &Namespace) -> Result<Arc<Ring>, AccountError> {
        let record = self.records.get(ns, KEYS_KEY).await?;
        let (version, stored) = match record {
            Some(record) => (
                Some(record.version),
                serde_json::from_slice::<StoredRing>(&record.value)
                    .map_err(|e| AccountError::Internal(format!("stored key ring: {e}")))?,
            ),
            None => (None, StoredRing::default()),
        };
        let keys = stored
            .keys
            .iter()
            .map(build_key)
            .collect::<Result<_, _>>()?;
        let ring = Arc::new(Ring {
            version,
            stored,
            keys,
            loaded_at: self.clock.now_ms(),
        });
        self.rings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), ring.clone());
        Ok(ring)
    }

    async fn ring(&self, ns: &Namespace) -> Result<Arc<Ring>, AccountError> {
        match self.cached(ns) {
            Some(ring) => Ok(ring),
            None => self.load(ns).await,
        }
    }

    /// The key to sign with now, rotating first when the current one is due.
    pub(crate) async fn signer(&self, ns: &Namespace) -> Result<Signer, AccountError> {
        for _ in 0..3 {
            let ring = self.ring(ns).await?;
            let now = self.clock.now_ms();
            let rotation_ms = u64::try_from(self.options.rotation.as_millis()).unwrap_or(u64::MAX);
            if let Some(key) = ring.keys.iter().find(|key| key.retired_at.is_none())
                && now.saturating_sub(key.created_at) < rotation_ms
            {
                return Ok(Signer {
                    kid: key.kid.clone(),
                    key: key.encoding.clone(),
                });
            }
            match self.rotate_ring(ns, &ring).await {
                Ok(()) | Err(AccountError::Contended) => {}
                Err(error) => return Err(error),
            }
        }
        Err(AccountError::Contended)
    }

    /// Replaces the signing key now (`POST /v1/auth/{ns}/admin/keys/rotate`); returns the new
    /// key's id.
    pub async fn rotate(&self, ns: &Namespace) -> Result<String, AccountError> {
        let ring = self.load(ns).await?;
        self.rotate_ring(ns, &ring).await?;
        let ring = self.ring(ns).await?;
        ring.keys
            .iter()
            .find(|key| key.retired_at.is_none())
            .map(|key| key.kid.clone())
            .ok_or_else(|| AccountError::Internal("no signing key after rotation".into()))
    }

    async fn rotate_ring(&self, ns: &Namespace, ring: &Ring) -> Result<(), AccountError> {
        let now = self.clock.now_ms();
        let window = self.verify_window_ms();
        let mut stored = ring.stored.clone();
        for key in &mut stored.keys {
            key.retired_at.get_or_insert(now);
        }
        stored
            .keys
            .retain(|key| key.retired_at.is_some_and(|at| at + window > now));
        let key = new_key(ns, now)?;
        let kid = key.kid.clone();
        stored.keys.insert(0, key);
        let condition = match ring.version {
            Some(version) => RecordCondition::Version(version),
            None => RecordCondition::Absent,
        };
        let value =
            serde_json::to_vec(&stored).map_err(|e| AccountError::Internal(e.to_string()))?;
        let commit = RecordCommit {
            conditions: vec![(KEYS_KEY.to_owned(), condition)],
            writes: vec![(KEYS_KEY.to_owned(), Some(Bytes::from(value)))],
            events: vec![EventDraft {
                event_type: EventType::AuthKeyRotated,
                subject: "keys".to_owned(),
                data: json!({ "kid": kid }),
                causation: Default::default(),
            }],
        };
        let outcome = self.records.commit(ns, commit).await;
        // Whatever happened, the next look at the ring reads it again.
        self.rings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(ns);
        match outcome {
            Ok(_) => Ok(()),
            Err(ferrobase_core::records::RecordError::ConditionFailed { .. }) => {
                Err(AccountError::Contended)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The key `kid` of `ns` while it still verifies; an unknown kid re-reads the ring (at most
    /// once a second), since another node may have rotated.
    pub async fn verifying_key(
        &self,
        ns: &Namespace,
        kid: &str,
    ) -> Result<Option<DecodingKey>, AccountError> {
        let mut ring = self.ring(ns).await?;
        if !ring.keys.iter().any(|key| key.kid == kid)
            && self.clock.now_ms().saturating_sub(ring.loaded_at) >= 1000
        {
            ring = self.load(ns).await?;
        }
        let now = self.clock.now_ms();
        let window = self.verify_window_ms();
        Ok(ring
            .keys
            .iter()
            .find(|key| key.kid == kid && key.retired_at.is_none_or(|at| at + window > now))
            .map(|key| key.decoding.clone()))
    }

    /// `{"keys": [...]}`: the public keys that still verify.
    pub async fn jwks(&self, ns: &Namespace) -> Result<Value, AccountError> {
        let ring = self.ring(ns).await?;
        let now = self.clock.now_ms();
        let window = self.verify_window_ms();
        let keys: Vec<&Value> = ring
            .keys
            .iter()
            .filter(|key| key.retired_at.is_none_or(|at| at + window > now))
            .map(|key| &key.jwk)
            .collect();
        Ok(json!({ "keys": keys }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_name_their_namespace() {
        let ns = Namespace::parse("shop-1").unwrap();
        let key = new_key(&ns, 0).unwrap();
        assert_eq!(namespace_of_kid(&key.kid), Some(ns));
        assert_eq!(namespace_of_kid("other.shop.1"), None);
        assert_eq!(namespace_of_kid("fb1._system.00"), None);
        let built = build_key(&key).unwrap();
        assert_eq!(built.jwk["crv"], "P-256");
    }
}
