//! Password hashing: Argon2id with the parameters OWASP recommends (19 MiB, 2 passes, one
//! lane), PHC strings stored, and a dummy hash checked for unknown users so that an unknown
//! email costs the same time as a wrong password.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use super::AccountError;

/// Memory cost in KiB (m).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Passes (t).
pub const ARGON2_ITERATIONS: u32 = 2;
/// Lanes (p).
pub const ARGON2_PARALLELISM: u32 = 1;
/// Hash output in bytes.
pub const ARGON2_OUTPUT_LEN: usize = 32;
/// Longest password accepted, in bytes: hashing cost must not grow with client input.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes and checks passwords on the blocking pool, at most a few at a time, since each
/// hash holds [`ARGON2_MEMORY_KIB`] of memory.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        Some(ARGON2_OUTPUT_LEN),
    )
    .expect("the Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| AccountError::Internal(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Internal(e.to_string()))?;
    argon2()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Internal(format!("hashing a password: {e}")))
}

/// Argon2's own comparison of the computed and stored output is constant-time.
fn verify_blocking(stored: &str, password: &[u8]) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

impl Hasher {
    pub fn new() -> Result<Self, AccountError> {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(parallel.max(2))),
            dummy: Arc::new(hash_blocking(b"no user has this password")?),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, AccountError> {
        let _permit = self.permits.acquire().await.map_err(internal)?;
        let password = password.as_bytes().to_vec();
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(internal)?
    }

    /// Whether `password` matches `stored`; with no stored hash (an unknown user, or one
    /// without a password) the dummy hash is checked and the answer is false.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> Result<bool, AccountError> {
        let _permit = self.permits.acquire().await.map_err(internal)?;
        let known = stored.is_some();
        let stored = stored.map_or_else(|| self.dummy.as_str().to_owned(), str::to_owned);
        let password = password.as_bytes().to_vec();
        let matches = tokio::task::spawn_blocking(move || verify_blocking(&stored, &password))
            .await
            .map_err(internal)?;
        Ok(known && matches)
    }
}

fn internal(error: impl std::fmt::Display) -> AccountError {
    AccountError::Internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_documented_parameters() {
        let hasher = Hasher::new().unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let parsed = PasswordHash::new(&hash).unwrap();
        assert_eq!(parsed.hash.unwrap().len(), ARGON2_OUTPUT_LEN);
        assert!(hasher.verify(Some(&hash), "correct horse").await.unwrap());
        assert!(!hasher.verify(Some(&hash), "correct horsf").await.unwrap());
        assert!(
            !hasher
                .verify(None, "no user has this password")
                .await
                .unwrap()
        );
        assert_ne!(hash, hasher.hash("correct horse").await.unwrap(), "salted");
    }
}
