//! The service over an in-memory record store and a manual clock: token expiry and key
//! rotation, which the end-to-end suite cannot wait for.

use std::sync::Arc;
use std::time::Duration;

use ferrobase_core::{ManualClock, Namespace};
use ferrobase_kv::{KvLimits, KvRecordStore, MemoryEngine};

use super::*;
use crate::auth::AccountTokens;

fn service() -> (Arc<Accounts>, Arc<ManualClock>) {
    let clock = ManualClock::starting_now();
    let kv = Arc::new(MemoryEngine::new(clock.clone(), KvLimits::default()));
    let options = AccountsOptions {
        refresh_reuse_grace: Duration::from_secs(5),
        keys: keys::KeyOptions {
            rotation: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        },
        limits: limits::LimitSettings {
            per_ip_per_minute: None,
            per_account_per_minute: None,
        },
    };
    let accounts = Accounts::new(Arc::new(KvRecordStore::new(kv)), clock.clone(), options).unwrap();
    (Arc::new(accounts), clock)
}

async fn enabled(accounts: &Accounts, ns: &Namespace) {
    let settings = AuthSettings {
        enabled: true,
        anonymous: true,
        ..AuthSettings::default()
    };
    accounts.put_settings(ns, settings).await.unwrap();
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn access_tokens_expire_and_keys_rotate_without_breaking_live_tokens() {
    let (accounts, clock) = service();
    let ns = Namespace::parse("shop").unwrap();
    enabled(&accounts, &ns).await;
    let client = ClientInfo::default();
    let first = accounts.sign_up(&ns, None, None, &client).await.unwrap();
    let claims = accounts
        .verify(&kid(&first.access_token), &first.access_token)
        .await
        .unwrap();
    assert_eq!((claims.role, claims.ns.as_ref()), (Role::User, Some(&ns)));

    // A key signs for an hour; the next token after that comes from a new key, and the old
    // key's tokens still verify until they expire.
    clock.advance(Duration::from_secs(3590));
    let old = accounts.sign_up(&ns, None, None, &client).await.unwrap();
    clock.advance(Duration::from_secs(20));
    let new = accounts.sign_up(&ns, None, None, &client).await.unwrap();
    assert_ne!(kid(&old.access_token), kid(&new.access_token));
    accounts
        .verify(&kid(&old.access_token), &old.access_token)
        .await
        .unwrap();
    let jwks = accounts.jwks(&ns).await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

    // Past expiry plus leeway, the token is refused as expired.
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        accounts
            .verify(&kid(&first.access_token), &first.access_token)
            .await,
        Err(TokenError::Expired)
    );

    // A token of one namespace does not verify for another, whatever the kid says.
    let other = Namespace::parse("other").unwrap();
    enabled(&accounts, &other).await;
    assert!(
        accounts
            .decode_access(&other, &new.access_token)
            .await
            .is_err()
    );

    // Switching the service off stops its tokens.
    accounts
        .put_settings(&ns, AuthSettings::default())
        .await
        .unwrap();
    assert!(
        accounts
            .verify(&kid(&new.access_token), &new.access_token)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_is_accepted_only_within_the_grace_window() {
    let (accounts, clock) = service();
    let ns = Namespace::parse("shop").unwrap();
    enabled(&accounts, &ns).await;
    let client = ClientInfo::default();
    let first = accounts.sign_up(&ns, None, None, &client).await.unwrap();
    let second = accounts
        .refresh(&ns, &first.refresh_token, &client)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(4));
    let again = accounts
        .refresh(&ns, &first.refresh_token, &client)
        .await
        .unwrap();
    assert_eq!(
        again.refresh_token, second.refresh_token,
        "the same successor"
    );
    clock.advance(Duration::from_secs(2));
    assert!(matches!(
        accounts.refresh(&ns, &first.refresh_token, &client).await,
        Err(AccountError::RefreshTokenReused)
    ));
    assert!(matches!(
        accounts.refresh(&ns, &second.refresh_token, &client).await,
        Err(AccountError::InvalidRefreshToken)
    ));
}
