//! `crypto.subtle` beyond digests and HMAC, the way webhook and token checks use it: AES-GCM,
//! ECDSA P-256, Ed25519 and RS256 JWT verification, against known vectors (NIST GCM test case
//! 16, RFC 8032 test 1) and keys and signatures made once with Node's Web Crypto, plus the
//! DOMException names of bad key data and failed decryption.

use crate::harness::*;

/// Deploys `code` under `name` and returns what one activation with `event` returned.
async fn run(name: &str, code: &str, event: Value) -> Value {
    let f = fixture_with(config());
    f.deploy(name, spec(code)).await;
    result(&f.invoke(name, event).await)
}

/// A JS prelude: hex and base64 helpers and `failure(promise)`, the error name it rejects with.
const HELPERS: &str = "const hex = (b) => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString('hex');\n\
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));\n\
const unb64 = (s) => new Uint8Array(Buffer.from(s, 'base64'));\n\
const failure = async (p) => { try { await p; return 'resolved'; } catch (e) { return e.name; } };\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_gcm_matches_the_nist_vector_and_rejects_tampering() {
    let code = format!(
        "{HELPERS}export default async (e) => {{\n\
           const s = crypto.subtle;\n\
           const key = await s.importKey('raw', unhex(e.key), 'AES-GCM', true, ['encrypt', 'decrypt']);\n\
           const iv = unhex(e.iv), additionalData = unhex(e.aad), pt = unhex(e.pt);\n\
           const sealed = await s.encrypt({{ name: 'AES-GCM', iv, additionalData }}, key, pt);\n\
           const short = await s.encrypt({{ name: 'AES-GCM', iv, additionalData, tagLength: 96 }}, key, pt);\n\
           const opened = await s.decrypt({{ name: 'AES-GCM', iv, additionalData }}, key, sealed);\n\
           const flipped = new Uint8Array(sealed).slice(); flipped[3] ^= 1;\n\
           const small = await s.importKey('raw', unhex(e.key).slice(0, 16), {{ name: 'aes-gcm' }}, false, ['encrypt', 'decrypt']);\n\
           const hello = await s.encrypt({{ name: 'AES-GCM', iv }}, small, new TextEncoder().encode('hello'));\n\
           const generated = await s.generateKey({{ name: 'AES-GCM', length: 256 }}, false, ['encrypt', 'decrypt']);\n\
           const round = await s.decrypt({{ name: 'AES-GCM', iv }}, generated, await s.encrypt({{ name: 'AES-GCM', iv }}, generated, pt));\n\
           return {{\n\
             sealed: hex(sealed), short: hex(short), opened: hex(opened), hello: hex(hello), round: hex(round) === e.pt,\n\
             jwk: (await s.exportKey('jwk', key)).alg, algorithm: key.algorithm,\n\
             tampered: await failure(s.decrypt({{ name: 'AES-GCM', iv, additionalData }}, key, flipped)),\n\
             wrongAad: await failure(s.decrypt({{ name: 'AES-GCM', iv }}, key, sealed)),\n\
             wrongTag: await failure(s.decrypt({{ name: 'AES-GCM', iv, additionalData, tagLength: 96 }}, key, sealed)),\n\
             truncated: await failure(s.decrypt({{ name: 'AES-GCM', iv }}, key, new Uint8Array(8))),\n\
             badLength: await failure(s.importKey('raw', new Uint8Array(17), 'AES-GCM', false, ['encrypt'])),\n\
             badJwk: await failure(s.importKey('jwk', {{ kty: 'RSA', k: 'AAAA' }}, 'AES-GCM', false, ['encrypt'])),\n\
             badUsage: await failure(s.importKey('raw', new Uint8Array(16), 'AES-GCM', false, ['sign'])),\n\
             badTag: await failure(s.encrypt({{ name: 'AES-GCM', iv, tagLength: 100 }}, key, pt)),\n\
             noIv: await failure(s.encrypt({{ name: 'AES-GCM' }}, key, pt)),\n\
             hmacKey: await failure(s.encrypt({{ name: 'AES-GCM', iv }}, await s.importKey('raw', new Uint8Array(16), {{ name: 'HMAC', hash: 'SHA-256' }}, false, ['sign']), pt)),\n\
           }};\n\
         }};"
    );
    let pt = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    let value = run(
        "aes",
        &code,
        json!({
            "key": "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "iv": "cafebabefacedbaddecaf888",
            "aad": "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "pt": pt,
        }),
    )
    .await;
    // NIST GCM test case 16: ciphertext then the 128-bit tag.
    let ciphertext = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
    assert_eq!(
        value["sealed"],
        format!("{ciphertext}76fc6ece0f4e1768cddf8853bb2d551b")
    );
    assert_eq!(
        value["short"],
        format!("{ciphertext}76fc6ece0f4e1768cddf8853")
    );
    assert_eq!(value["opened"], pt);
    // What Node's Web Crypto gives for the first half of the key, no additional data.
    assert_eq!(value["hello"], "f3d7408bb6b6351cb8ffde4b6a9429ac5111b9985c");
    assert_eq!(value["round"], true);
    assert_eq!(value["jwk"], "A256GCM");
    assert_eq!(
        value["algorithm"],
        json!({"name": "AES-GCM", "length": 256})
    );
    for case in ["tampered", "wrongAad", "wrongTag", "truncated", "badTag"] {
        assert_eq!(value[case], "OperationError", "{case}");
    }
    assert_eq!(value["badLength"], "DataError");
    assert_eq!(value["badJwk"], "DataError");
    assert_eq!(value["badUsage"], "SyntaxError");
    assert_eq!(value["noIv"], "TypeError");
    assert_eq!(value["hmacKey"], "InvalidAccessError");
}

/// An ES256 token check: a P-256 key and signature made by Node, imported as spki, raw and
/// JWK; a key pair made here signs and verifies its own messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_p256_verifies_node_signatures_and_signs_its_own() {
    let code = format!(
        "{HELPERS}export default async (e) => {{\n\
           const s = crypto.subtle;\n\
           const alg = {{ name: 'ECDSA', namedCurve: 'P-256' }};\n\
           const params = {{ name: 'ECDSA', hash: 'SHA-256' }};\n\
           const msg = new TextEncoder().encode(e.msg);\n\
           const sig = unb64(e.sig);\n\
           const spki = await s.importKey('spki', unb64(e.spki), alg, true, ['verify']);\n\
           const raw = await s.importKey('raw', unb64(e.raw), alg, true, ['verify']);\n\
           const jwk = await s.importKey('jwk', e.jwk, alg, true, ['verify']);\n\
           const priv = await s.importKey('jwk', {{ ...e.jwk, d: e.d }}, alg, true, ['sign']);\n\
           const pkcs8 = await s.importKey('pkcs8', unb64(e.pkcs8), alg, false, ['sign']);\n\
           const tampered = sig.slice(); tampered[10] ^= 1;\n\
           const own = await s.sign(params, priv, msg);\n\
           const pair = await s.generateKey(alg, false, ['sign', 'verify']);\n\
           const pairSig = await s.sign(params, pair.privateKey, msg);\n\
           const sha384 = await s.sign({{ name: 'ECDSA', hash: 'SHA-384' }}, pkcs8, msg);\n\
           return {{\n\
             spki: await s.verify(params, spki, sig, msg), raw: await s.verify(params, raw, sig, msg), jwk: await s.verify(params, jwk, sig, msg),\n\
             tampered: await s.verify(params, spki, tampered, msg), otherMessage: await s.verify(params, spki, sig, new TextEncoder().encode('x')),\n\
             shortSig: await s.verify(params, spki, sig.slice(0, 10), msg),\n\
             own: own.byteLength === 64 && await s.verify(params, spki, own, msg),\n\
             pair: await s.verify(params, pair.publicKey, pairSig, msg), pairOther: await s.verify(params, spki, pairSig, msg),\n\
             sha384: await s.verify({{ name: 'ECDSA', hash: 'SHA-384' }}, raw, sha384, msg) && !(await s.verify(params, raw, sha384, msg)),\n\
             exportedRaw: Buffer.from(await s.exportKey('raw', jwk)).toString('base64'),\n\
             exportedSpki: Buffer.from(await s.exportKey('spki', raw)).toString('base64'),\n\
             exportedJwk: await s.exportKey('jwk', spki), types: [spki.type, priv.type, pair.publicKey.type, pair.privateKey.type], algorithm: spki.algorithm,\n\
             badPoint: await failure(s.importKey('raw', unb64(e.raw).slice(0, 64), alg, true, ['verify'])),\n\
             badSpki: await failure(s.importKey('spki', new Uint8Array([48, 3, 1, 2, 3]), alg, true, ['verify'])),\n\
             badJwk: await failure(s.importKey('jwk', {{ ...e.jwk, crv: 'P-384' }}, alg, true, ['verify'])),\n\
             badD: await failure(s.importKey('jwk', {{ ...e.jwk, d: 'AAAA' }}, alg, true, ['sign'])),\n\
             curve: await failure(s.importKey('raw', unb64(e.raw), {{ name: 'ECDSA', namedCurve: 'P-384' }}, true, ['verify'])),\n\
             publicSigns: await failure(s.sign(params, spki, msg)),\n\
           }};\n\
         }};"
    );
    let value = run(
        "ecdsa",
        &code,
        json!({
            "msg": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0",
            "sig": "aVUrYvctjyCpZHNKS9aMoBn9R6tHnIM5peYkHvzDOBXBzVKgG7NxaZNY0plHk71BGHD+w3kNtflFgCuxMBieZw==",
            "spki": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7UXzSe5dq4WM2I1gszvGB/P6SceuRyoLz8eojrRtDr4NxtetJ+RnyMlGjBA1m9wrLztQy5R8nmnQMd9VzuNVXg==",
            "raw": "BO1F80nuXauFjNiNYLM7xgfz+knHrkcqC8/HqI60bQ6+DcbXrSfkZ8jJRowQNZvcKy87UMuUfJ5p0DHfVc7jVV4=",
            "jwk": {"kty": "EC", "crv": "P-256", "x": "7UXzSe5dq4WM2I1gszvGB_P6SceuRyoLz8eojrRtDr4", "y": "DcbXrSfkZ8jJRowQNZvcKy87UMuUfJ5p0DHfVc7jVV4"},
            "d": "R3tokDkdCWRCD_XjmiPlNrb6w7DWyDug8hE1z7TYshY",
            "pkcs8": "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgR3tokDkdCWRCD/XjmiPlNrb6w7DWyDug8hE1z7TYshahRANCAATtRfNJ7l2rhYzYjWCzO8YH8/pJx65HKgvPx6iOtG0Ovg3G160n5GfIyUaMEDWb3CsvO1DLlHyeadAx31XO41Ve",
        }),
    )
    .await;
    for case in ["spki", "raw", "jwk", "own", "pair", "sha384"] {
        assert_eq!(value[case], true, "{case}");
    }
    for case in ["tampered", "otherMessage", "shortSig", "pairOther"] {
        assert_eq!(value[case], false, "{case}");
    }
    assert_eq!(
        value["exportedRaw"],
        "BO1F80nuXauFjNiNYLM7xgfz+knHrkcqC8/HqI60bQ6+DcbXrSfkZ8jJRowQNZvcKy87UMuUfJ5p0DHfVc7jVV4="
    );
    assert_eq!(
        value["exportedSpki"],
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7UXzSe5dq4WM2I1gszvGB/P6SceuRyoLz8eojrRtDr4NxtetJ+RnyMlGjBA1m9wrLztQy5R8nmnQMd9VzuNVXg=="
    );
    assert_eq!(
        value["exportedJwk"]["x"],
        "7UXzSe5dq4WM2I1gszvGB_P6SceuRyoLz8eojrRtDr4"
    );
    assert_eq!(
        value["exportedJwk"]["y"],
        "DcbXrSfkZ8jJRowQNZvcKy87UMuUfJ5p0DHfVc7jVV4"
    );
    assert_eq!(
        value["types"],
        json!(["public", "private", "public", "private"])
    );
    assert_eq!(
        value["algorithm"],
        json!({"name": "ECDSA", "namedCurve": "P-256"})
    );
    for case in ["badPoint", "badSpki", "badJwk", "badD"] {
        assert_eq!(value[case], "DataError", "{case}");
    }
    assert_eq!(value["curve"], "NotSupportedError");
    assert_eq!(value["publicSigns"], "InvalidAccessError");
}

/// A Discord-style interaction check: Ed25519 against RFC 8032 test 1, keys as raw, spki, JWK
/// and PKCS #8, and a signature Node made over a webhook body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_verifies_rfc_8032_and_node_signatures() {
    let code = format!(
        "{HELPERS}export default async (e) => {{\n\
           const s = crypto.subtle;\n\
           const empty = new Uint8Array(0), body = new TextEncoder().encode('webhook body');\n\
           const raw = await s.importKey('raw', unhex(e.public), 'Ed25519', true, ['verify']);\n\
           const spki = await s.importKey('spki', unb64(e.spki), {{ name: 'Ed25519' }}, true, ['verify']);\n\
           const jwk = await s.importKey('jwk', {{ kty: 'OKP', crv: 'Ed25519', x: Buffer.from(unhex(e.public)).toString('base64url') }}, 'Ed25519', true, ['verify']);\n\
           const pkcs8 = await s.importKey('pkcs8', unb64(e.pkcs8), 'Ed25519', true, ['sign']);\n\
           const sig = unhex(e.sig), tampered = sig.slice(); tampered[0] ^= 1;\n\
           const pair = await s.generateKey('Ed25519', false, ['sign', 'verify']);\n\
           return {{\n\
             rfc: await s.verify('Ed25519', raw, sig, empty), spki: await s.verify('Ed25519', spki, sig, empty), jwk: await s.verify('Ed25519', jwk, sig, empty),\n\
             tampered: await s.verify('Ed25519', raw, tampered, empty), other: await s.verify('Ed25519', raw, sig, body),\n\
             short: await s.verify('Ed25519', raw, sig.slice(1), empty),\n\
             node: await s.verify('Ed25519', raw, unhex(e.nodeSig), body),\n\
             signed: hex(await s.sign('Ed25519', pkcs8, body)),\n\
             rfcSign: hex(await s.sign('Ed25519', pkcs8, empty)),\n\
             pair: await s.verify('Ed25519', pair.publicKey, await s.sign('Ed25519', pair.privateKey, body), body),\n\
             exportedSpki: Buffer.from(await s.exportKey('spki', raw)).toString('base64'),\n\
             exportedJwk: await s.exportKey('jwk', pkcs8),\n\
             badRaw: await failure(s.importKey('raw', unhex(e.public).slice(1), 'Ed25519', true, ['verify'])),\n\
             badSpki: await failure(s.importKey('spki', unb64(e.pkcs8), 'Ed25519', true, ['verify'])),\n\
             badJwk: await failure(s.importKey('jwk', {{ kty: 'EC', crv: 'Ed25519', x: 'AAAA' }}, 'Ed25519', true, ['verify'])),\n\
             badUsage: await failure(s.importKey('raw', unhex(e.public), 'Ed25519', true, ['encrypt'])),\n\
             unknown: await failure(s.importKey('raw', unhex(e.public), 'X448', true, ['verify'])),\n\
           }};\n\
         }};"
    );
    let rfc_sig = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    let node_sig = "4d833fe018dd38121e1293f24bebc023f602ed27851914683722fe905830bb320ec28e3e02705030757badb0acda9f8f5d1d1ca190baa5368e8f8be9fb3b3509";
    let value = run(
        "ed25519",
        &code,
        json!({
            "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "spki": "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            "pkcs8": "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g",
            "sig": rfc_sig,
            "nodeSig": node_sig,
        }),
    )
    .await;
    for case in ["rfc", "spki", "jwk", "node", "pair"] {
        assert_eq!(value[case], true, "{case}");
    }
    for case in ["tampered", "other", "short"] {
        assert_eq!(value[case], false, "{case}");
    }
    // Ed25519 signatures are deterministic: the same as Node's and RFC 8032's.
    assert_eq!(value["signed"], node_sig);
    assert_eq!(value["rfcSign"], rfc_sig);
    assert_eq!(
        value["exportedSpki"],
        "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    );
    assert_eq!(
        value["exportedJwk"]["x"],
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    assert_eq!(
        value["exportedJwk"]["d"],
        "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
    );
    for case in ["badRaw", "badSpki", "badJwk"] {
        assert_eq!(value[case], "DataError", "{case}");
    }
    assert_eq!(value["badUsage"], "SyntaxError");
    assert_eq!(value["unknown"], "NotSupportedError");
}

/// An RS256 JWT check with the issuer's public key as spki and as a JWKS entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_jwt_signatures_verify_with_spki_and_jwk_keys() {
    let code = format!(
        "{HELPERS}export default async (e) => {{\n\
           const s = crypto.subtle;\n\
           const alg = {{ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }};\n\
           const [header, payload, signature] = e.jwt.split('.');\n\
           const signed = new TextEncoder().encode(`${{header}}.${{payload}}`);\n\
           const sig = new Uint8Array(Buffer.from(signature, 'base64url'));\n\
           const spki = await s.importKey('spki', unb64(e.spki), alg, true, ['verify']);\n\
           const jwk = await s.importKey('jwk', {{ kty: 'RSA', n: e.n, e: 'AQAB', alg: 'RS256' }}, alg, true, ['verify']);\n\
           const tampered = sig.slice(); tampered[100] ^= 1;\n\
           return {{\n\
             spki: await s.verify('RSASSA-PKCS1-v1_5', spki, sig, signed), jwk: await s.verify(alg, jwk, sig, signed),\n\
             tampered: await s.verify(alg, spki, tampered, signed), otherPayload: await s.verify(alg, spki, sig, new TextEncoder().encode(header + '.e30')),\n\
             short: await s.verify(alg, spki, sig.slice(1), signed),\n\
             claims: JSON.parse(Buffer.from(payload, 'base64url').toString()),\n\
             modulusLength: spki.algorithm.modulusLength, exponent: [...spki.algorithm.publicExponent], hash: jwk.algorithm.hash.name,\n\
             exportedN: (await s.exportKey('jwk', spki)).n === e.n,\n\
             badSpki: await failure(s.importKey('spki', unb64(e.spki).slice(0, 100), alg, true, ['verify'])),\n\
             badJwk: await failure(s.importKey('jwk', {{ kty: 'oct', n: e.n, e: 'AQAB' }}, alg, true, ['verify'])),\n\
             noHash: await failure(s.importKey('spki', unb64(e.spki), {{ name: 'RSASSA-PKCS1-v1_5' }}, true, ['verify'])),\n\
             private: await failure(s.importKey('jwk', {{ kty: 'RSA', n: e.n, e: 'AQAB', d: 'AQAB' }}, alg, true, ['sign'])),\n\
           }};\n\
         }};"
    );
    let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE5MDAwMDAwMDB9.HGX95YYGQFviVqa1jV46A6hFkcpvgifr3p0fTpDvSUtaD7q6pV-P66F4IZO7JhBrZ7eAmcB-3nqNiXg7CJPYLyJpaeYWOUXDgG4WpV_3ALsS2wbH_SAUMBEkKe3wX_WQmpAToc9I8YSolAmHYYFLexA28V-0tb8Mq1qrONrOIYrBzAt15D49FjAtMBUFf2RWuVx5aJ_qNNj41faXLCFFUQEDXlWG3waWobCjMDAOXVmUEmENPk_4Au5WSnY71xpfiDkrQHaiPCxyzh98bRCPAabwrcAyEAqzUhy3bIq_L8oIrLtqWAtaQ-9yMJQ55J5-GC5rCAYqBctTJ9Qt4t0J5w";
    let value = run(
        "rs256",
        &code,
        json!({
            "jwt": jwt,
            "spki": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAmo9Envl85ybIul5YYcKB3JTpEkxWvGYR6lN436TV4micDqEqvSm2ouvJ6AcGJrkYh3u8XAbdIM8Zuy+BjzU61GUoDGWK74NiAQwo1/7i4BbGWqhVsyg2K3gu0bZU0frYC++qu30FdLveC+lToBUAD0gErsHs4AjIoEgWZAWYFVaUu9BW877jNNO/EYB4olh3NrM9vGsBBcsrrxJYWOr+wxgODIgl2hKXwRODSKYIK36WI2l3uRGXw8+ihdFjYKXligU2m1+fcLuHIUJSZz5WKHqzHjjGoWd48LGSSzwrB/QeIbfZL6NLt5YTILoTwg7yOXJN02tav29IQX4PIy4jIQIDAQAB",
            "n": "mo9Envl85ybIul5YYcKB3JTpEkxWvGYR6lN436TV4micDqEqvSm2ouvJ6AcGJrkYh3u8XAbdIM8Zuy-BjzU61GUoDGWK74NiAQwo1_7i4BbGWqhVsyg2K3gu0bZU0frYC--qu30FdLveC-lToBUAD0gErsHs4AjIoEgWZAWYFVaUu9BW877jNNO_EYB4olh3NrM9vGsBBcsrrxJYWOr-wxgODIgl2hKXwRODSKYIK36WI2l3uRGXw8-ihdFjYKXligU2m1-fcLuHIUJSZz5WKHqzHjjGoWd48LGSSzwrB_QeIbfZL6NLt5YTILoTwg7yOXJN02tav29IQX4PIy4jIQ",
        }),
    )
    .await;
    assert_eq!(value["spki"], true);
    assert_eq!(value["jwk"], true);
    for case in ["tampered", "otherPayload", "short"] {
        assert_eq!(value[case], false, "{case}");
    }
    assert_eq!(value["claims"], json!({"sub": "user-1", "exp": 1900000000}));
    assert_eq!(value["modulusLength"], 2048);
    assert_eq!(value["exponent"], json!([1, 0, 1]));
    assert_eq!(value["hash"], "SHA-256");
    assert_eq!(value["exportedN"], true);
    assert_eq!(value["badSpki"], "DataError");
    assert_eq!(value["badJwk"], "DataError");
    assert_eq!(value["noHash"], "NotSupportedError");
    assert_eq!(value["private"], "NotSupportedError");
}
