//! The Rust half of `crypto.subtle` beyond digests and HMAC: AES-GCM (`aes-gcm`), ECDSA on
//! P-256 (`p256`), Ed25519 (`ed25519-dalek`) and RSASSA-PKCS1-v1_5 verification (`rsa`), all
//! RustCrypto. Key formats are parsed here, once, at `importKey`: the glue keeps a key as its
//! canonical bytes (a SEC1 uncompressed point, a P-256 scalar, an Ed25519 public key or seed,
//! an RSA public key as PKCS#1 DER) and hands those back to sign, verify, encrypt or export.
//!
//! Failures are `DOMException`s with the names Web Crypto gives them: `DataError` for key data
//! that is not a key of the kind asked for, `OperationError` for a failed decryption,
//! `NotSupportedError` for parameters these crates do not cover. A signature that does not
//! verify, whatever its shape, is `false`, never an error.

use aes_gcm::aead::consts::{U12, U13, U14, U15, U16};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AesGcm, TagSize};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rand::RngCore;
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, Value};
use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use sha2::Digest;

use super::natives::bytes;

/// Adds the key natives to the glue's natives object.
pub fn install<'js>(ctx: &Ctx<'js>, natives: &Object<'js>) -> rquickjs::Result<()> {
    natives.set("aesGcm", Function::new(ctx.clone(), aes_gcm)?)?;
    natives.set("ecImport", Function::new(ctx.clone(), ec_import)?)?;
    natives.set("ecGenerate", Function::new(ctx.clone(), ec_generate)?)?;
    natives.set("ecdsaSign", Function::new(ctx.clone(), ecdsa_sign)?)?;
    natives.set("ecdsaVerify", Function::new(ctx.clone(), ecdsa_verify)?)?;
    natives.set("ecSpki", Function::new(ctx.clone(), ec_spki)?)?;
    natives.set("edImport", Function::new(ctx.clone(), ed_import)?)?;
    natives.set("edGenerate", Function::new(ctx.clone(), ed_generate)?)?;
    natives.set("edSign", Function::new(ctx.clone(), ed_sign)?)?;
    natives.set("edVerify", Function::new(ctx.clone(), ed_verify)?)?;
    natives.set("edSpki", Function::new(ctx.clone(), ed_spki)?)?;
    natives.set("rsaImport", Function::new(ctx.clone(), rsa_import)?)?;
    natives.set("rsaVerify", Function::new(ctx.clone(), rsa_verify)?)?;
    Ok(())
}

fn data_error<T>(ctx: &Ctx<'_>, message: &str) -> rquickjs::Result<T> {
    Err(Exception::throw_dom(ctx, "DataError", message))
}

fn not_supported<T>(ctx: &Ctx<'_>, message: &str) -> rquickjs::Result<T> {
    Err(Exception::throw_dom(ctx, "NotSupportedError", message))
}

fn buffer<'js>(ctx: &Ctx<'js>, bytes: impl Into<Vec<u8>>) -> rquickjs::Result<Value<'js>> {
    Ok(ArrayBuffer::new(ctx.clone(), bytes.into())?.into_value())
}

/// The SHA-2 digest Web Crypto names `hash`, for the signature schemes.
fn prehash(ctx: &Ctx<'_>, hash: &str, data: &[u8]) -> rquickjs::Result<Vec<u8>> {
    Ok(match hash {
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        _ => return not_supported(ctx, "the hash must be SHA-256, SHA-384 or SHA-512"),
    })
}

// --- AES-GCM -----------------------------------------------------------------------------

/// The parameters of one AES-GCM operation, as the glue passes them.
struct Sealing<'a> {
    encrypt: bool,
    key: &'a [u8],
    iv: &'a [u8],
    data: &'a [u8],
    aad: &'a [u8],
}

fn seal<A, T>(op: &Sealing<'_>) -> Result<Vec<u8>, aes_gcm::Error>
where
    AesGcm<A, U12, T>: KeyInit + Aead,
    T: TagSize,
{
    let cipher =
        <AesGcm<A, U12, T> as KeyInit>::new_from_slice(op.key).map_err(|_| aes_gcm::Error)?;
    // The caller checked the iv is 12 bytes.
    let nonce: aes_gcm::aead::Nonce<AesGcm<A, U12, T>> = op.iv.iter().copied().collect();
    let payload = Payload {
        msg: op.data,
        aad: op.aad,
    };
    if op.encrypt {
        cipher.encrypt(&nonce, payload)
    } else {
        cipher.decrypt(&nonce, payload)
    }
}

fn seal_with_tag<T: TagSize>(op: &Sealing<'_>) -> Result<Vec<u8>, aes_gcm::Error>
where
    AesGcm<Aes128, U12, T>: KeyInit + Aead,
    AesGcm<Aes192, U12, T>: KeyInit + Aead,
    AesGcm<Aes256, U12, T>: KeyInit + Aead,
{
    match op.key.len() {
        16 => seal::<Aes128, T>(op),
        24 => seal::<Aes192, T>(op),
        _ => seal::<Aes256, T>(op),
    }
}

/// AES-GCM encryption (ciphertext then tag) or decryption of `data` under a 128/192/256-bit
/// key with a 96-bit IV and a 96–128-bit tag. Every input is bytes (a binary string).
fn aes_gcm<'js>(
    ctx: Ctx<'js>,
    encrypt: bool,
    key: String,
    iv: String,
    data: String,
    aad: String,
    tag_bits: u32,
) -> rquickjs::Result<Value<'js>> {
    let key = bytes(key, true);
    let iv = bytes(iv, true);
    let data = bytes(data, true);
    let aad = bytes(aad, true);
    if !matches!(key.len(), 16 | 24 | 32) {
        return data_error(&ctx, "an AES key is 128, 192 or 256 bits");
    }
    if iv.len() != 12 {
        return not_supported(&ctx, "AES-GCM: the iv must be 12 bytes (96 bits)");
    }
    let op = Sealing {
        encrypt,
        key: &key,
        iv: &iv,
        data: &data,
        aad: &aad,
    };
    let sealed = match tag_bits {
        96 => seal_with_tag::<U12>(&op),
        104 => seal_with_tag::<U13>(&op),
        112 => seal_with_tag::<U14>(&op),
        120 => seal_with_tag::<U15>(&op),
        128 => seal_with_tag::<U16>(&op),
        32 | 64 => {
            return not_supported(&ctx, "AES-GCM: tags shorter than 96 bits are not supported");
        }
        _ => {
            return Err(Exception::throw_dom(
                &ctx,
                "OperationError",
                "AES-GCM: tagLength must be 96, 104, 112, 120 or 128",
            ));
        }
    };
    match sealed {
        Ok(out) => buffer(&ctx, out),
        Err(_) if encrypt => Err(Exception::throw_dom(
            &ctx,
            "OperationError",
            "AES-GCM: the data is too long to encrypt",
        )),
        Err(_) => Err(Exception::throw_dom(
            &ctx,
            "OperationError",
            "AES-GCM: decryption failed (wrong key, iv, additional data or tag, or altered data)",
        )),
    }
}

// --- ECDSA P-256 -------------------------------------------------------------------------

/// A key pair half as the glue keeps it: the public point (65 bytes, uncompressed SEC1) and,
/// for a private key, the 32-byte scalar.
fn ec_parts<'js>(
    ctx: &Ctx<'js>,
    key: &p256::ecdsa::VerifyingKey,
    scalar: Option<Vec<u8>>,
) -> rquickjs::Result<Object<'js>> {
    let parts = Object::new(ctx.clone())?;
    parts.set(
        "point",
        buffer(ctx, key.to_encoded_point(false).as_bytes())?,
    )?;
    if let Some(scalar) = scalar {
        parts.set("scalar", buffer(ctx, scalar)?)?;
    }
    Ok(parts)
}

/// A P-256 key from `raw` (a SEC1 point), `spki` or `pkcs8` DER, or `scalar` (a JWK's `d`,
/// 32 bytes), as `{point, scalar?}`.
fn ec_import<'js>(ctx: Ctx<'js>, format: String, data: String) -> rquickjs::Result<Object<'js>> {
    let data = bytes(data, true);
    match format.as_str() {
        "raw" => match p256::ecdsa::VerifyingKey::from_sec1_bytes(&data) {
            Ok(key) => ec_parts(&ctx, &key, None),
            Err(_) => data_error(&ctx, "importKey: not a P-256 public point"),
        },
        "spki" => match p256::ecdsa::VerifyingKey::from_public_key_der(&data) {
            Ok(key) => ec_parts(&ctx, &key, None),
            Err(_) => data_error(&ctx, "importKey: not a P-256 SubjectPublicKeyInfo"),
        },
        "pkcs8" => match p256::ecdsa::SigningKey::from_pkcs8_der(&data) {
            Ok(key) => ec_parts(&ctx, key.verifying_key(), Some(key.to_bytes().to_vec())),
            Err(_) => data_error(&ctx, "importKey: not a P-256 PKCS #8 private key"),
        },
        "scalar" => match p256::ecdsa::SigningKey::from_slice(&data) {
            Ok(key) if data.len() == 32 => {
                ec_parts(&ctx, key.verifying_key(), Some(key.to_bytes().to_vec()))
            }
            _ => data_error(&ctx, "importKey: d is not a P-256 private scalar"),
        },
        _ => not_supported(&ctx, "importKey: unknown key format"),
    }
}

/// A fresh P-256 key pair as `{point, scalar}`.
fn ec_generate(ctx: Ctx<'_>) -> rquickjs::Result<Object<'_>> {
    loop {
        let mut scalar = [0u8; 32];
        rand::rng().fill_bytes(&mut scalar);
        // Rejection sampling: the scalar must be in [1, n); almost every draw is.
        if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&scalar) {
            return ec_parts(&ctx, key.verifying_key(), Some(scalar.to_vec()));
        }
    }
}

/// An ECDSA signature in Web Crypto's form: r then s, 32 bytes each.
fn ecdsa_sign<'js>(
    ctx: Ctx<'js>,
    hash: String,
    scalar: String,
    data: String,
    binary: bool,
) -> rquickjs::Result<Value<'js>> {
    let Ok(key) = p256::ecdsa::SigningKey::from_slice(&bytes(scalar, true)) else {
        return data_error(&ctx, "sign: not a P-256 private key");
    };
    let digest = prehash(&ctx, &hash, &bytes(data, binary))?;
    let signature: p256::ecdsa::Signature = match key.sign_prehash(&digest) {
        Ok(signature) => signature,
        Err(_) => {
            return Err(Exception::throw_dom(
                &ctx,
                "OperationError",
                "sign: ECDSA signing failed",
            ));
        }
    };
    buffer(&ctx, signature.to_bytes().to_vec())
}

fn ecdsa_verify(
    ctx: Ctx<'_>,
    hash: String,
    point: String,
    signature: String,
    data: String,
    binary: bool,
) -> rquickjs::Result<bool> {
    let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes(point, true)) else {
        return data_error(&ctx, "verify: not a P-256 public key");
    };
    let digest = prehash(&ctx, &hash, &bytes(data, binary))?;
    let Ok(signature) = p256::ecdsa::Signature::from_slice(&bytes(signature, true)) else {
        return Ok(false);
    };
    Ok(key.verify_prehash(&digest, &signature).is_ok())
}

/// The SubjectPublicKeyInfo DER of a P-256 point.
fn ec_spki<'js>(ctx: Ctx<'js>, point: String) -> rquickjs::Result<Value<'js>> {
    let der = p256::PublicKey::from_sec1_bytes(&bytes(point, true))
        .ok()
        .and_then(|key| p256::pkcs8::EncodePublicKey::to_public_key_der(&key).ok());
    match der {
        Some(der) => buffer(&ctx, der.as_bytes()),
        None => data_error(&ctx, "exportKey: not a P-256 public key"),
    }
}

// --- Ed25519 -----------------------------------------------------------------------------

fn ed_parts<'js>(
    ctx: &Ctx<'js>,
    key: &ed25519_dalek::VerifyingKey,
    seed: Option<[u8; 32]>,
) -> rquickjs::Result<Object<'js>> {
    let parts = Object::new(ctx.clone())?;
    parts.set("point", buffer(ctx, key.as_bytes().to_vec())?)?;
    if let Some(seed) = seed {
        parts.set("scalar", buffer(ctx, seed.to_vec())?)?;
    }
    Ok(parts)
}

/// An Ed25519 key from `raw` (the 32-byte public key), `spki` or `pkcs8` DER, or `seed` (a
/// JWK's `d`), as `{point, scalar?}` (the public key and the private seed).
fn ed_import<'js>(ctx: Ctx<'js>, format: String, data: String) -> rquickjs::Result<Object<'js>> {
    let data = bytes(data, true);
    match format.as_str() {
        "raw" => {
            let key = <[u8; 32]>::try_from(data.as_slice())
                .ok()
                .and_then(|raw| ed25519_dalek::VerifyingKey::from_bytes(&raw).ok());
            match key {
                Some(key) => ed_parts(&ctx, &key, None),
                None => data_error(&ctx, "importKey: not a 32-byte Ed25519 public key"),
            }
        }
        "spki" => match ed25519_dalek::VerifyingKey::from_public_key_der(&data) {
            Ok(key) => ed_parts(&ctx, &key, None),
            Err(_) => data_error(&ctx, "importKey: not an Ed25519 SubjectPublicKeyInfo"),
        },
        "pkcs8" => match ed25519_dalek::SigningKey::from_pkcs8_der(&data) {
            Ok(key) => ed_parts(&ctx, &key.verifying_key(), Some(key.to_bytes())),
            Err(_) => data_error(&ctx, "importKey: not an Ed25519 PKCS #8 private key"),
        },
        "seed" => match <[u8; 32]>::try_from(data.as_slice()) {
            Ok(seed) => {
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                ed_parts(&ctx, &key.verifying_key(), Some(seed))
            }
            Err(_) => data_error(&ctx, "importKey: d is not a 32-byte Ed25519 seed"),
        },
        _ => not_supported(&ctx, "importKey: unknown key format"),
    }
}

fn ed_generate(ctx: Ctx<'_>) -> rquickjs::Result<Object<'_>> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    ed_parts(&ctx, &key.verifying_key(), Some(seed))
}

fn ed_sign<'js>(
    ctx: Ctx<'js>,
    seed: String,
    data: String,
    binary: bool,
) -> rquickjs::Result<Value<'js>> {
    let Ok(seed) = <[u8; 32]>::try_from(bytes(seed, true).as_slice()) else {
        return data_error(&ctx, "sign: not an Ed25519 private key");
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let signature = ed25519_dalek::Signer::sign(&key, &bytes(data, binary));
    buffer(&ctx, signature.to_bytes().to_vec())
}

fn ed_verify(
    ctx: Ctx<'_>,
    point: String,
    signature: String,
    data: String,
    binary: bool,
) -> rquickjs::Result<bool> {
    let key = <[u8; 32]>::try_from(bytes(point, true).as_slice())
        .ok()
        .and_then(|raw| ed25519_dalek::VerifyingKey::from_bytes(&raw).ok());
    let Some(key) = key else {
        return data_error(&ctx, "verify: not an Ed25519 public key");
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes(signature, true)) else {
        return Ok(false);
    };
    Ok(ed25519_dalek::Verifier::verify(&key, &bytes(data, binary), &signature).is_ok())
}

fn ed_spki<'js>(ctx: Ctx<'js>, point: String) -> rquickjs::Result<Value<'js>> {
    let der = <[u8; 32]>::try_from(bytes(point, true).as_slice())
        .ok()
        .and_then(|raw| ed25519_dalek::VerifyingKey::from_bytes(&raw).ok())
        .and_then(|key| key.to_public_key_der().ok());
    match der {
        Some(der) => buffer(&ctx, der.as_bytes()),
        None => data_error(&ctx, "exportKey: not an Ed25519 public key"),
    }
}

// --- RSASSA-PKCS1-v1_5 -------------------------------------------------------------------

/// An RSA public key from `spki` DER or `jwk` (`data` is then `n`, `second` is `e`, both
/// big-endian), as `{der, bits, exponent}`: PKCS#1 DER, the modulus length and the public
/// exponent's big-endian bytes.
fn rsa_import<'js>(
    ctx: Ctx<'js>,
    format: String,
    data: String,
    second: rquickjs::function::Opt<String>,
) -> rquickjs::Result<Object<'js>> {
    let data = bytes(data, true);
    let key = match format.as_str() {
        "spki" => rsa::pkcs8::DecodePublicKey::from_public_key_der(&data).ok(),
        "jwk" => {
            let e = bytes(second.0.unwrap_or_default(), true);
            rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&data),
                rsa::BigUint::from_bytes_be(&e),
            )
            .ok()
        }
        _ => {
            return not_supported(
                &ctx,
                "importKey: RSA public keys are imported as spki or jwk",
            );
        }
    };
    let Some(key): Option<rsa::RsaPublicKey> = key else {
        return data_error(
            &ctx,
            "importKey: not an RSA public key (or its modulus is over 4096 bits)",
        );
    };
    let Ok(der) = key.to_pkcs1_der() else {
        return data_error(&ctx, "importKey: the RSA key cannot be encoded");
    };
    let parts = Object::new(ctx.clone())?;
    parts.set("der", buffer(&ctx, der.as_bytes())?)?;
    parts.set("bits", key.n().bits())?;
    parts.set("exponent", buffer(&ctx, key.e().to_bytes_be())?)?;
    parts.set("modulus", buffer(&ctx, key.n().to_bytes_be())?)?;
    Ok(parts)
}

fn rsa_verify(
    ctx: Ctx<'_>,
    hash: String,
    der: String,
    signature: String,
    data: String,
    binary: bool,
) -> rquickjs::Result<bool> {
    let Ok(key) = rsa::RsaPublicKey::from_pkcs1_der(&bytes(der, true)) else {
        return data_error(&ctx, "verify: not an RSA public key");
    };
    let digest = prehash(&ctx, &hash, &bytes(data, binary))?;
    let scheme = match hash.as_str() {
        "SHA-256" => rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(),
        "SHA-384" => rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha384>(),
        _ => rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha512>(),
    };
    Ok(key.verify(scheme, &digest, &bytes(signature, true)).is_ok())
}
