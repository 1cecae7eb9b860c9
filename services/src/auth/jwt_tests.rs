//! Tests of the parent module (kept apart so the module reads as the code it is).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrobase_core::Namespace;
use ferrobase_core::auth::Role;
use serde_json::json;

use super::*;
use crate::config::DEFAULT_LEEWAY;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    fs::read(fixture(name)).unwrap()
}

/// One "now" for the whole test process: claims built at different moments must still
/// compare equal when a second boundary passes between them.
fn now() -> u64 {
    static NOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NOW.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    })
}

fn user_claims() -> Claims {
    Claims {
        sub: "alice".into(),
        exp: now() + 3600,
        iat: Some(now()),
        ns: Some(Namespace::parse("shop").unwrap()),
        role: Role::User,
        scopes: Some(vec!["kv:read".into()]),
    }
}

fn secret_config() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SECRET.into()),
        ..AuthConfig::default()
    }
}

fn load_verifier(config: &AuthConfig) -> TokenVerifier {
    let dir = tempfile::tempdir().unwrap();
    TokenVerifier::load(config, dir.path()).unwrap()
}

fn sign(
    alg: Algorithm,
    kid: Option<&str>,
    claims: &serde_json::Value,
    key: &EncodingKey,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

fn rsa_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture_bytes("rsa_private.pem")).unwrap()
}

fn ec_private() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture_bytes("ec_private.pem")).unwrap()
}

fn claims_json() -> serde_json::Value {
    serde_json::to_value(user_claims()).unwrap()
}

fn b64(json: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

#[test]
fn mint_and_verify_round_trip() {
    let verifier = load_verifier(&secret_config());
    let claims = user_claims();
    let token = verifier.mint(&claims).unwrap();
    assert_eq!(verifier.verify(&token).unwrap(), claims);
    // Tokens from other HS256 signers sharing the secret verify too.
    assert_eq!(
        verifier.verify(&hs256(&claims_json(), SECRET)).unwrap(),
        claims
    );
}

#[test]
fn generated_secret_is_created_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = TokenVerifier::load(&AuthConfig::default(), dir.path()).unwrap();
    let path = dir.path().join(SECRET_FILE);
    let stored = fs::read_to_string(&path).unwrap();
    assert!(stored.trim().len() >= MIN_SECRET_LEN, "{stored:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let token = first.mint(&user_claims()).unwrap();

    let second = TokenVerifier::load(&AuthConfig::default(), dir.path()).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), stored);
    assert_eq!(second.verify(&token).unwrap(), user_claims());
    // The file's text is the secret, usable as configuration elsewhere.
    let configured = AuthConfig {
        hs256_secret: Some(stored.trim().to_owned()),
        ..AuthConfig::default()
    };
    assert!(load_verifier(&configured).verify(&token).is_ok());
    // Another data directory means another secret.
    let other = load_verifier(&AuthConfig::default());
    assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
    // No temporary files are left behind.
    let entries = fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1);
}

#[test]
fn short_or_corrupt_secrets_are_refused() {
    let short = AuthConfig {
        hs256_secret: Some("secret".into()),
        ..AuthConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let error = TokenVerifier::load(&short, dir.path()).unwrap_err();
    assert!(matches!(error, AuthSetupError::InvalidConfig(_)), "{error}");

    let path = dir.path().join(SECRET_FILE);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, "\n").unwrap();
    let error = TokenVerifier::load(&AuthConfig::default(), dir.path()).unwrap_err();
    assert!(error.to_string().contains("hs256.secret"), "{error}");

    let long_leeway = AuthConfig {
        leeway: Duration::from_secs(3600),
        ..secret_config()
    };
    assert!(matches!(
        TokenVerifier::load(&long_leeway, dir.path()),
        Err(AuthSetupError::InvalidConfig(_))
    ));
}

#[test]
fn expired_tokens_are_refused_outside_the_leeway() {
    let verifier = load_verifier(&secret_config());
    let mut claims = claims_json();
    claims["exp"] = json!(now() - 3600);
    assert_eq!(
        verifier.verify(&hs256(&claims, SECRET)),
        Err(TokenError::Expired)
    );
    // Expired and with a bad role: expiry is what the client is told.
    claims["role"] = json!("root");
    assert_eq!(
        verifier.verify(&hs256(&claims, SECRET)),
        Err(TokenError::Expired)
    );
    // Within the default 30 s leeway.
    let mut fresh = claims_json();
    fresh["exp"] = json!(now() - 10);
    assert!(verifier.verify(&hs256(&fresh, SECRET)).is_ok());
    let strict = verifier_with_leeway(Duration::ZERO);
    assert_eq!(
        strict.verify(&hs256(&fresh, SECRET)),
        Err(TokenError::Expired)
    );
}

fn verifier_with_leeway(leeway: Duration) -> TokenVerifier {
    load_verifier(&AuthConfig {
        leeway,
        ..secret_config()
    })
}

#[test]
fn not_yet_valid_tokens_are_refused() {
    let verifier = load_verifier(&secret_config());
    let mut claims = claims_json();
    claims["nbf"] = json!(now() + 3600);
    assert!(matches!(
        verifier.verify(&hs256(&claims, SECRET)),
        Err(TokenError::InvalidClaims(_))
    ));
}

#[test]
fn wrong_secret_and_tampering_break_the_signature() {
    let verifier = load_verifier(&secret_config());
    let other = "another-secret-of-more-than-32-bytes!!";
    assert_eq!(
        verifier.verify(&hs256(&claims_json(), other)),
        Err(TokenError::BadSignature)
    );

    let token = verifier.mint(&user_claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut escalated = claims_json();
    escalated["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
    assert_eq!(verifier.verify(&tampered), Err(TokenError::BadSignature));
    let flipped = if parts[2].starts_with('A') { "B" } else { "A" };
    let forged = format!("{}.{}.{flipped}{}", parts[0], parts[1], &parts[2][1..]);
    assert_eq!(verifier.verify(&forged), Err(TokenError::BadSignature));
}

#[test]
fn unsigned_and_foreign_algorithms_are_refused() {
    let verifier = load_verifier(&secret_config());
    let payload = b64(&claims_json());
    for alg in [
        "none", "None", "NONE", "HS512", "RS512", "PS256", "EdDSA", "",
    ] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        for signature in ["", "c2ln"] {
            let token = format!("{header}.{payload}.{signature}");
            assert_eq!(
                verifier.verify(&token),
                Err(TokenError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
    }
    // A valid HS512 token with the right secret is still refused.
    let hs512 = sign(
        Algorithm::HS512,
        None,
        &claims_json(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    assert_eq!(
        verifier.verify(&hs512),
        Err(TokenError::UnsupportedAlgorithm("HS512".into()))
    );
}

#[test]
fn malformed_tokens_are_reported_as_such() {
    let verifier = load_verifier(&secret_config());
    let good = verifier.mint(&user_claims()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    for token in [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{good}.extra"),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!(["HS256"])), parts[1], parts[2]),
        "x".repeat(MAX_TOKEN_LEN + 1),
    ] {
        assert!(
            matches!(verifier.verify(&token), Err(TokenError::Malformed(_))),
            "{token:.40}"
        );
    }
    let crit = b64(&json!({"alg": "HS256", "crit": ["exp"]}));
    assert!(matches!(
        verifier.verify(&format!("{crit}.{}.{}", parts[1], parts[2])),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn claims_must_parse_into_ferrobase_claims() {
    let verifier = load_verifier(&secret_config());
    let remove = |claims: &mut serde_json::Value, name: &str| {
        claims.as_object_mut().unwrap().remove(name);
    };
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 6] = [
        ("unknown role", |c| c["role"] = json!("superuser")),
        ("missing role", |c| {
            c.as_object_mut().unwrap().remove("role");
        }),
        ("missing sub", |c| {
            c.as_object_mut().unwrap().remove("sub");
        }),
        ("missing exp", |c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        ("string exp", |c| c["exp"] = json!("tomorrow")),
        ("invalid ns", |c| c["ns"] = json!("Not/A Namespace")),
    ];
    for (what, edit) in cases {
        let mut claims = claims_json();
        edit(&mut claims);
        let result = verifier.verify(&hs256(&claims, SECRET));
        assert!(
            matches!(result, Err(TokenError::InvalidClaims(_))),
            "{what}: {result:?}"
        );
    }
    let mut bad_role = claims_json();
    bad_role["role"] = json!("superuser");
    let message = verifier
        .verify(&hs256(&bad_role, SECRET))
        .unwrap_err()
        .to_string();
    assert!(message.contains("superuser"), "{message}");
    let mut no_scopes = claims_json();
    remove(&mut no_scopes, "scopes");
    remove(&mut no_scopes, "iat");
    assert_eq!(
        verifier.verify(&hs256(&no_scopes, SECRET)).unwrap().scopes,
        None
    );
    // A payload that is not an object is refused even if it would fit field by field.
    let array = json!(["alice", now() + 60, null, "shop", "admin", null]);
    let result = verifier.verify(&hs256(&array, SECRET));
    assert!(
        matches!(
            result,
            Err(TokenError::Malformed(_) | TokenError::InvalidClaims(_))
        ),
        "{result:?}"
    );
}

#[test]
fn rs256_and_es256_via_pem_files() {
    let config = AuthConfig {
        public_key_files: vec![fixture("rsa_public.pem"), fixture("ec_public.pem")],
        ..secret_config()
    };
    let verifier = load_verifier(&config);
    let claims = claims_json();
    let rs = sign(Algorithm::RS256, None, &claims, &rsa_private());
    let es = sign(Algorithm::ES256, None, &claims, &ec_private());
    assert_eq!(verifier.verify(&rs).unwrap(), user_claims());
    assert_eq!(verifier.verify(&es).unwrap(), user_claims());
    // Without a JWKS, a kid is no reason to refuse.
    let with_kid = sign(Algorithm::RS256, Some("whatever"), &claims, &rsa_private());
    assert!(verifier.verify(&with_kid).is_ok());
    // HS256 keeps working beside them.
    assert!(
        verifier
            .verify(&verifier.mint(&user_claims()).unwrap())
            .is_ok()
    );

    // Only RSA configured: ES256 tokens have no key.
    let rsa_only = verifier_for_keys(vec![fixture("rsa_public.pem")]);
    assert_eq!(rsa_only.verify(&es), Err(TokenError::UnknownKey));
    // No public keys at all.
    let secret_only = load_verifier(&secret_config());
    assert_eq!(secret_only.verify(&rs), Err(TokenError::UnknownKey));
}

fn verifier_for_keys(public_key_files: Vec<PathBuf>) -> TokenVerifier {
    load_verifier(&AuthConfig {
        public_key_files,
        ..secret_config()
    })
}

#[test]
fn rs256_and_es256_via_jwks() {
    let config = AuthConfig {
        jwks_file: Some(fixture("jwks.json")),
        ..secret_config()
    };
    let jwks = load_verifier(&config);
    let claims = claims_json();
    let rs = sign(Algorithm::RS256, Some("rsa-1"), &claims, &rsa_private());
    let es = sign(Algorithm::ES256, Some("ec-1"), &claims, &ec_private());
    assert_eq!(jwks.verify(&rs).unwrap(), user_claims());
    assert_eq!(jwks.verify(&es).unwrap(), user_claims());
    // Without a kid, every key of the algorithm is tried.
    let no_kid = sign(Algorithm::ES256, None, &claims, &ec_private());
    assert_eq!(jwks.verify(&no_kid).unwrap(), user_claims());
    // An unknown kid, or the kid of a key of another type, is an unknown key.
    let unknown = sign(Algorithm::RS256, Some("rsa-2"), &claims, &rsa_private());
    assert_eq!(jwks.verify(&unknown), Err(TokenError::UnknownKey));
    let mismatched = sign(Algorithm::ES256, Some("rsa-1"), &claims, &ec_private());
    assert_eq!(jwks.verify(&mismatched), Err(TokenError::UnknownKey));
    // With a JWKS and a kid, that key only: a matching PEM key does not rescue the token.
    let both = AuthConfig {
        public_key_files: vec![fixture("rsa_public.pem")],
        jwks_file: Some(fixture("jwks.json")),
        ..secret_config()
    };
    assert_eq!(
        load_verifier(&both).verify(&unknown),
        Err(TokenError::UnknownKey)
    );
    // Expiry is still checked for public-key tokens.
    let mut expired = claims_json();
    expired["exp"] = json!(now() - 3600);
    let old = sign(Algorithm::RS256, Some("rsa-1"), &expired, &rsa_private());
    assert_eq!(jwks.verify(&old), Err(TokenError::Expired));
}

#[test]
fn algorithm_confusion_is_refused() {
    let public_pem = fixture_bytes("rsa_public.pem");
    let config = AuthConfig {
        public_key_files: vec![fixture("rsa_public.pem")],
        jwks_file: Some(fixture("jwks.json")),
        ..secret_config()
    };
    let verifier = load_verifier(&config);
    // HS256 "signed" with the public key as the HMAC secret.
    let forged = sign(
        Algorithm::HS256,
        None,
        &claims_json(),
        &EncodingKey::from_secret(&public_pem),
    );
    assert_eq!(verifier.verify(&forged), Err(TokenError::BadSignature));
    let forged_kid = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &claims_json(),
        &EncodingKey::from_secret(&public_pem),
    );
    assert_eq!(verifier.verify(&forged_kid), Err(TokenError::BadSignature));

    // An HMAC made with the real secret, presented as RS256 or ES256.
    for (alg, kid) in [
        ("RS256", None),
        ("RS256", Some("rsa-1")),
        ("ES256", Some("ec-1")),
    ] {
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let message = format!("{}.{}", b64(&header), b64(&claims_json()));
        let mac = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        let token = format!("{message}.{mac}");
        assert_eq!(
            verifier.verify(&token),
            Err(TokenError::BadSignature),
            "{alg} {kid:?}"
        );
    }
}

#[test]
fn issuer_and_audience_when_configured() {
    let config = AuthConfig {
        issuer: Some("https://id.example".into()),
        audience: Some("ferrobase".into()),
        ..secret_config()
    };
    let verifier = load_verifier(&config);
    // Minted tokens carry them.
    assert!(
        verifier
            .verify(&verifier.mint(&user_claims()).unwrap())
            .is_ok()
    );
    let with = |iss: Option<&str>, aud: Option<&str>| {
        let mut claims = claims_json();
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = aud {
            claims["aud"] = json!(aud);
        }
        verifier.verify(&hs256(&claims, SECRET))
    };
    assert!(with(Some("https://id.example"), Some("ferrobase")).is_ok());
    for (iss, aud) in [
        (None, Some("ferrobase")),
        (Some("https://id.example"), None),
        (Some("https://evil.example"), Some("ferrobase")),
        (Some("https://id.example"), Some("other")),
    ] {
        assert!(
            matches!(with(iss, aud), Err(TokenError::InvalidClaims(_))),
            "{iss:?} {aud:?}"
        );
    }
    // Without a configured audience, a token meant for someone else is refused.
    let plain = verifier_with_leeway(DEFAULT_LEEWAY);
    let mut claims = claims_json();
    claims["aud"] = json!("someone-else");
    assert!(matches!(
        plain.verify(&hs256(&claims, SECRET)),
        Err(TokenError::InvalidClaims(_))
    ));
}

#[test]
fn key_files_are_checked_at_load_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let load_pem = |path: PathBuf| {
        TokenVerifier::load(
            &AuthConfig {
                public_key_files: vec![path],
                ..secret_config()
            },
            dir.path(),
        )
        .unwrap_err()
    };
    let load_jwks = |path: PathBuf| {
        TokenVerifier::load(
            &AuthConfig {
                jwks_file: Some(path),
                ..secret_config()
            },
            dir.path(),
        )
        .unwrap_err()
    };
    let write = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        fs::write(&path, contents).unwrap();
        path
    };

    let missing = load_pem(dir.path().join("missing.pem"));
    assert!(matches!(&missing, AuthSetupError::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("missing.pem"), "{missing}");

    for (path, expected) in [
        (fixture("rsa_private.pem"), "private key"),
        (fixture("ec384_public.pem"), "P-256"),
        (write("garbage.pem", "not a key"), "not a PEM-encoded"),
    ] {
        let error = load_pem(path.clone());
        let text = error.to_string();
        assert!(matches!(error, AuthSetupError::InvalidKey { .. }), "{text}");
        assert!(
            text.contains(path.file_name().unwrap().to_str().unwrap()),
            "{text}"
        );
        assert!(text.contains(expected), "{text}");
    }

    let jwks_error = |contents: &str, expected: &str| {
        let error = load_jwks(write("bad.jwks.json", contents));
        let text = error.to_string();
        assert!(
            text.contains("bad.jwks.json") && text.contains(expected),
            "{text}"
        );
    };
    jwks_error("{", "not valid JSON");
    jwks_error("[]", "\"keys\" array");
    jwks_error(
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#,
        "no usable",
    );
    let jwks: serde_json::Value = serde_json::from_slice(&fixture_bytes("jwks.json")).unwrap();
    let rsa = jwks["keys"][0].clone();
    jwks_error(
        &json!({"keys": [rsa.clone(), rsa.clone()]}).to_string(),
        "two keys have kid",
    );
    // Unusable keys beside usable ones are skipped, not fatal.
    let mut enc = rsa.clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc-1");
    let mut ps256 = rsa.clone();
    ps256["alg"] = json!("PS256");
    ps256["kid"] = json!("ps-1");
    let mixed = write(
        "mixed.json",
        &json!({"keys": [enc, ps256, rsa]}).to_string(),
    );
    let verifier = load_verifier(&AuthConfig {
        jwks_file: Some(mixed),
        ..secret_config()
    });
    let token = sign(
        Algorithm::RS256,
        Some("enc-1"),
        &claims_json(),
        &rsa_private(),
    );
    assert_eq!(verifier.verify(&token), Err(TokenError::UnknownKey));
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims_json(),
        &rsa_private(),
    );
    assert!(verifier.verify(&token).is_ok());
}

#[test]
fn debug_output_never_shows_the_secret() {
    let config = AuthConfig {
        jwks_file: Some(fixture("jwks.json")),
        ..secret_config()
    };
    let verifier = load_verifier(&config);
    for text in [
        format!("{verifier:?}"),
        format!("{config:?}"),
        format!("{verifier:#?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(&SECRET[..8]), "{text}");
    }
    assert!(format!("{verifier:?}").contains("rsa-1"));
}

#[test]
fn config_deserializes_with_defaults_and_humantime() {
    let config: AuthConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config.leeway, DEFAULT_LEEWAY);
    assert_eq!(config.hs256_secret, None);
    let config: AuthConfig =
        serde_json::from_value(json!({"leeway": "2m", "issuer": "me"})).unwrap();
    assert_eq!(config.leeway, Duration::from_secs(120));
    assert_eq!(config.issuer.as_deref(), Some("me"));
    assert!(serde_json::from_value::<AuthConfig>(json!({"secret": "x"})).is_err());
}

#[test]
fn token_errors_read_well_and_echo_little() {
    let long = "A".repeat(10_000);
    let error = Alg::parse(&long).unwrap_err().to_string();
    assert!(error.len() < 200, "{error}");
    assert_eq!(echo("short"), "short");
    assert_eq!(bit_length(&[0, 0, 1]), 1);
    assert_eq!(bit_length(&[0x80, 0]), 16);
    assert_eq!(bit_length(&[]), 0);
}
