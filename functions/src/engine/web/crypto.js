// Web Crypto: getRandomValues, randomUUID, and crypto.subtle: digest (SHA-1/256/384/512); HMAC
// importKey/exportKey/generateKey/sign/verify; AES-GCM importKey/exportKey/generateKey/
// encrypt/decrypt; ECDSA P-256 and Ed25519 importKey/exportKey/generateKey/sign/verify;
// RSASSA-PKCS1-v1_5 public-key importKey/exportKey/verify. The algorithms are RustCrypto's
// (natives.rs, keys.rs); randomness is the host's CSPRNG. Anything else rejects with
// NotSupportedError.
(function (native, load) {
  "use strict";
  const { view, binary, data } = load("bytes");
  const HASHES = { "SHA-1": 160, "SHA-256": 256, "SHA-384": 384, "SHA-512": 512 };
  const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];
  // Web Crypto's algorithm names, by their upper-case spelling (names match case-insensitively).
  const NAMES = { HMAC: "HMAC", "AES-GCM": "AES-GCM", ECDSA: "ECDSA", ED25519: "Ed25519", "RSASSA-PKCS1-V1_5": "RSASSA-PKCS1-v1_5" };
  // The usages a key of each algorithm and type may have.
  const USAGES = {
    HMAC: { secret: ["sign", "verify"] },
    "AES-GCM": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
    ECDSA: { public: ["verify"], private: ["sign"] },
    Ed25519: { public: ["verify"], private: ["sign"] },
    "RSASSA-PKCS1-v1_5": { public: ["verify"], private: ["sign"] },
  };
  // CryptoKey -> its material as binary strings: `bytes` (a secret key), `point` and `scalar`
  // (EC and Ed25519 public and private halves), `der` (an RSA public key, PKCS#1).
  const material = new WeakMap();

  function notSupported(what) {
    return new DOMException(`${what} is not supported`, "NotSupportedError");
  }
  function dataError(message) {
    return new DOMException(message, "DataError");
  }

  function hashName(hash) {
    const name = typeof hash === "string" ? hash : hash?.name;
    const upper = String(name).toUpperCase();
    if (!(upper in HASHES)) throw notSupported(`the hash ${String(name).slice(0, 32)}`);
    return upper;
  }

  function algorithmName(algorithm) {
    const given = String(typeof algorithm === "string" ? algorithm : algorithm?.name);
    const name = NAMES[given.toUpperCase()];
    if (name === undefined) throw notSupported(`the algorithm ${given.slice(0, 32)}`);
    return name;
  }

  function b64url(value, what) {
    if (typeof value !== "string") throw dataError(`importKey: the JWK has no ${what}`);
    const decoded = native.base64Decode(value);
    if (decoded === null) throw dataError(`importKey: the JWK's ${what} is not base64url`);
    return new Uint8Array(decoded);
  }
  function toB64url(bytes) {
    return native.base64Encode(bytes, true, true);
  }
  function bytesOf(binaryString) {
    return Uint8Array.from(binaryString, (c) => c.charCodeAt(0));
  }

  class CryptoKey {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
  }
  function makeKey(type, algorithm, extractable, usages, keyMaterial) {
    const name = algorithm.name;
    const allowed = USAGES[name][type] ?? [];
    const list = Array.from(usages ?? []);
    for (const usage of list) {
      if (!allowed.includes(usage)) {
        throw new DOMException(`a ${type} ${name} key cannot be used to ${String(usage).slice(0, 16)}`, "SyntaxError");
      }
    }
    if (type !== "public" && list.length === 0) {
      throw new DOMException(`a ${type} key needs at least one usage`, "SyntaxError");
    }
    const key = Object.create(CryptoKey.prototype);
    Object.defineProperties(key, {
      type: { value: type, enumerable: true },
      extractable: { value: Boolean(extractable), enumerable: true },
      algorithm: { value: Object.freeze(algorithm), enumerable: true },
      usages: { value: Object.freeze(list), enumerable: true },
    });
    material.set(key, keyMaterial);
    return key;
  }

  // The material of `key` for `usage` with `algorithm`, or the error Web Crypto gives.
  function use(key, usage, algorithm) {
    const found = material.get(key);
    if (found === undefined) throw new TypeError("the key must be a CryptoKey");
    if (algorithm !== undefined && key.algorithm.name !== algorithmName(algorithm)) {
      throw new DOMException(`the key is a ${key.algorithm.name} key, not ${algorithmName(algorithm)}`, "InvalidAccessError");
    }
    if (!key.usages.includes(usage)) {
      throw new DOMException(`the key may not be used to ${usage}`, "InvalidAccessError");
    }
    return found;
  }

  // --- importKey, one function per algorithm ----------------------------------------------

  function secretBytes(format, keyData, kty = "oct") {
    if (format === "raw") return new Uint8Array(view(keyData, "importKey: the key data"));
    if (format === "jwk") {
      if (keyData?.kty !== kty) throw dataError(`importKey: the JWK's kty must be "${kty}"`);
      return b64url(keyData.k, "k");
    }
    throw notSupported(`the key format ${String(format).slice(0, 16)} for a secret key`);
  }

  function importHmac(format, keyData, algorithm, extractable, usages) {
    const hash = hashName(algorithm.hash);
    const bytes = secretBytes(format, keyData);
    if (bytes.length === 0) throw dataError("importKey: the HMAC key is empty");
    return makeKey("secret", { name: "HMAC", hash: Object.freeze({ name: hash }), length: bytes.length * 8 }, extractable, usages, { bytes: binary(bytes) });
  }

  function importAes(format, keyData, extractable, usages) {
    const bytes = secretBytes(format, keyData);
    if (![16, 24, 32].includes(bytes.length)) throw dataError("importKey: an AES key is 128, 192 or 256 bits");
    return makeKey("secret", { name: "AES-GCM", length: bytes.length * 8 }, extractable, usages, { bytes: binary(bytes) });
  }

  // An EC or Ed25519 key from the natives' `{point, scalar?}`.
  function pairHalf(name, algorithm, parts, extractable, usages) {
    const keyMaterial = { point: binary(new Uint8Array(parts.point)) };
    if (parts.scalar !== undefined) keyMaterial.scalar = binary(new Uint8Array(parts.scalar));
    return makeKey(parts.scalar === undefined ? "public" : "private", algorithm, extractable, usages, keyMaterial);
  }

  function importCurve(format, keyData, algorithm, extractable, usages, curve) {
    const ec = curve === "ECDSA";
    if (ec && String(algorithm.namedCurve).toUpperCase() !== "P-256") {
      throw notSupported(`the curve ${String(algorithm.namedCurve).slice(0, 16)} (P-256 is)`);
    }
    const normalized = ec ? { name: "ECDSA", namedCurve: "P-256" } : { name: "Ed25519" };
    const parse = ec ? native.ecImport : native.edImport;
    let parts;
    if (format === "raw" || format === "spki" || format === "pkcs8") {
      parts = parse(format, binary(view(keyData, "importKey: the key data")));
    } else if (format === "jwk") {
      const [kty, crv] = ec ? ["EC", "P-256"] : ["OKP", "Ed25519"];
      if (keyData?.kty !== kty || keyData.crv !== crv) throw dataError(`importKey: the JWK must have kty "${kty}" and crv "${crv}"`);
      let point;
      if (ec) {
        const x = b64url(keyData.x, "x");
        const y = b64url(keyData.y, "y");
        if (x.length !== 32 || y.length !== 32) throw dataError("importKey: x and y of a P-256 JWK are 32 bytes each");
        point = binary(Uint8Array.of(4, ...x, ...y));
      } else {
        point = binary(b64url(keyData.x, "x"));
      }
      parts = parse("raw", point);
      if (keyData.d !== undefined) {
        const priv = parse(ec ? "scalar" : "seed", binary(b64url(keyData.d, "d")));
        if (binary(new Uint8Array(priv.point)) !== point) throw dataError("importKey: the JWK's d does not match its public key");
        parts = priv;
      }
    } else {
      throw notSupported(`the key format ${String(format).slice(0, 16)}`);
    }
    return pairHalf(curve, normalized, parts, extractable, usages);
  }

  function importRsa(format, keyData, algorithm, extractable, usages) {
    const hash = hashName(algorithm.hash);
    if (hash === "SHA-1") throw notSupported("RSASSA-PKCS1-v1_5 with SHA-1");
    let parts;
    if (format === "spki") {
      parts = native.rsaImport("spki", binary(view(keyData, "importKey: the key data")));
    } else if (format === "jwk") {
      if (keyData?.kty !== "RSA") throw dataError('importKey: the JWK\'s kty must be "RSA"');
      if (keyData.d !== undefined) throw notSupported("importing an RSA private key");
      parts = native.rsaImport("jwk", binary(b64url(keyData.n, "n")), binary(b64url(keyData.e, "e")));
    } else {
      throw notSupported(`the key format ${String(format).slice(0, 16)} for an RSA key (spki and jwk are)`);
    }
    const normalized = {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: parts.bits,
      publicExponent: new Uint8Array(parts.exponent),
      hash: Object.freeze({ name: hash }),
    };
    const modulus = binary(new Uint8Array(parts.modulus));
    return makeKey("public", normalized, extractable, usages, { der: binary(new Uint8Array(parts.der)), modulus, exponent: binary(normalized.publicExponent) });
  }

  // --- exportKey ---------------------------------------------------------------------------

  function exportCurve(format, key, found) {
    const ec = key.algorithm.name === "ECDSA";
    if (format === "raw" && key.type === "public") return bytesOf(found.point).buffer;
    if (format === "spki" && key.type === "public") {
      return ec ? native.ecSpki(found.point) : native.edSpki(found.point);
    }
    if (format === "jwk") {
      const jwk = ec
        ? { kty: "EC", crv: "P-256", x: toB64url(found.point.slice(1, 33)), y: toB64url(found.point.slice(33)) }
        : { kty: "OKP", crv: "Ed25519", x: toB64url(found.point) };
      if (found.scalar !== undefined) jwk.d = toB64url(found.scalar);
      return Object.assign(jwk, { ext: true, key_ops: key.usages.slice() });
    }
    throw notSupported(`exporting a ${key.type} ${key.algorithm.name} key as ${String(format).slice(0, 16)}`);
  }

  function exportKey(format, key) {
    const found = material.get(key);
    if (found === undefined) throw new TypeError("exportKey: the key must be a CryptoKey");
    if (!key.extractable) throw new DOMException("the key is not extractable", "InvalidAccessError");
    switch (key.algorithm.name) {
      case "HMAC":
      case "AES-GCM": {
        if (format === "raw") return bytesOf(found.bytes).buffer;
        if (format === "jwk") {
          const alg = key.algorithm.name === "HMAC" ? `HS${key.algorithm.hash.name.slice(4)}` : `A${key.algorithm.length}GCM`;
          return { kty: "oct", k: toB64url(found.bytes), alg, ext: true, key_ops: key.usages.slice() };
        }
        break;
      }
      case "ECDSA":
      case "Ed25519":
        return exportCurve(format, key, found);
      case "RSASSA-PKCS1-v1_5":
        if (format === "jwk") {
          return { kty: "RSA", n: toB64url(found.modulus), e: toB64url(found.exponent), alg: `RS${key.algorithm.hash.name.slice(4)}`, ext: true, key_ops: key.usages.slice() };
        }
        break;
    }
    throw notSupported(`exporting a ${key.algorithm.name} key as ${String(format).slice(0, 16)}`);
  }

  // --- generateKey -------------------------------------------------------------------------

  function keyPair(name, algorithm, parts, extractable, usages) {
    const list = Array.from(usages ?? []);
    const allowed = USAGES[name];
    for (const usage of list) {
      if (!allowed.public.includes(usage) && !allowed.private.includes(usage)) {
        throw new DOMException(`a ${name} key cannot be used to ${String(usage).slice(0, 16)}`, "SyntaxError");
      }
    }
    const publicKey = pairHalf(name, algorithm, { point: parts.point }, true, list.filter((u) => allowed.public.includes(u)));
    const privateKey = pairHalf(name, algorithm, parts, extractable, list.filter((u) => allowed.private.includes(u)));
    return { publicKey, privateKey };
  }

  function generateKey(algorithm, extractable, usages) {
    const name = algorithmName(algorithm);
    switch (name) {
      case "HMAC": {
        const hash = hashName(algorithm.hash);
        const bits = algorithm.length ?? (hash === "SHA-384" || hash === "SHA-512" ? 1024 : 512);
        const bytes = new Uint8Array(native.randomBytes(Math.ceil(bits / 8)));
        return importHmac("raw", bytes, algorithm, extractable, usages);
      }
      case "AES-GCM": {
        if (![128, 192, 256].includes(algorithm.length)) {
          throw new DOMException("generateKey: an AES key length is 128, 192 or 256", "OperationError");
        }
        return importAes("raw", native.randomBytes(algorithm.length / 8), extractable, usages);
      }
      case "ECDSA":
        if (String(algorithm.namedCurve).toUpperCase() !== "P-256") throw notSupported(`the curve ${String(algorithm.namedCurve).slice(0, 16)} (P-256 is)`);
        return keyPair(name, { name, namedCurve: "P-256" }, native.ecGenerate(), extractable, usages);
      case "Ed25519":
        return keyPair(name, { name }, native.edGenerate(), extractable, usages);
      default:
        throw notSupported(`generating ${name} keys`);
    }
  }

  // --- sign, verify, encrypt, decrypt ------------------------------------------------------

  function sign(algorithm, key, bytes) {
    const found = use(key, "sign", algorithm);
    const [input, isBinary] = data(bytes, "sign: the data");
    switch (key.algorithm.name) {
      case "HMAC":
        return native.hmac(key.algorithm.hash.name, found.bytes, input, isBinary);
      case "ECDSA":
        return native.ecdsaSign(hashName(algorithm.hash), found.scalar, input, isBinary);
      case "Ed25519":
        return native.edSign(found.scalar, input, isBinary);
      default:
        throw notSupported(`signing with ${key.algorithm.name}`);
    }
  }

  function verify(algorithm, key, signature, bytes) {
    const found = use(key, "verify", algorithm);
    const given = view(signature, "verify: the signature");
    const [input, isBinary] = data(bytes, "verify: the data");
    switch (key.algorithm.name) {
      case "HMAC": {
        const expected = new Uint8Array(native.hmac(key.algorithm.hash.name, found.bytes, input, isBinary));
        if (given.length !== expected.length) return false;
        let diff = 0;
        for (let i = 0; i < given.length; i++) diff |= given[i] ^ expected[i];
        return diff === 0;
      }
      case "ECDSA":
        return native.ecdsaVerify(hashName(algorithm.hash), found.point, binary(given), input, isBinary);
      case "Ed25519":
        return native.edVerify(found.point, binary(given), input, isBinary);
      case "RSASSA-PKCS1-v1_5":
        return native.rsaVerify(key.algorithm.hash.name, found.der, binary(given), input, isBinary);
    }
    throw notSupported(`verifying with ${key.algorithm.name}`);
  }

  function aesGcm(encrypt, algorithm, key, bytes) {
    const found = use(key, encrypt ? "encrypt" : "decrypt", algorithm);
    if (algorithm?.iv === undefined) throw new TypeError("AES-GCM: the iv is required");
    const iv = binary(view(algorithm.iv, "AES-GCM: the iv"));
    const aad = algorithm.additionalData === undefined ? "" : binary(view(algorithm.additionalData, "AES-GCM: additionalData"));
    const tagLength = algorithm.tagLength === undefined ? 128 : Number(algorithm.tagLength);
    return native.aesGcm(encrypt, found.bytes, iv, binary(view(bytes, "AES-GCM: the data")), aad, tagLength);
  }

  class SubtleCrypto {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
    async digest(algorithm, bytes) {
      const [input, isBinary] = data(bytes, "digest: the data");
      return native.digest(hashName(algorithm), input, isBinary);
    }
    async importKey(format, keyData, algorithm, extractable, usages) {
      const name = algorithmName(algorithm);
      switch (name) {
        case "HMAC":
          return importHmac(format, keyData, algorithm, extractable, usages);
        case "AES-GCM":
          return importAes(format, keyData, extractable, usages);
        case "ECDSA":
        case "Ed25519":
          return importCurve(format, keyData, algorithm, extractable, usages, name);
        case "RSASSA-PKCS1-v1_5":
          return importRsa(format, keyData, algorithm, extractable, usages);
      }
    }
    async exportKey(format, key) {
      return exportKey(format, key);
    }
    async generateKey(algorithm, extractable, usages) {
      return generateKey(algorithm, extractable, usages);
    }
    async sign(algorithm, key, bytes) {
      return sign(algorithm, key, bytes);
    }
    async verify(algorithm, key, signature, bytes) {
      return verify(algorithm, key, signature, bytes);
    }
    async encrypt(algorithm, key, bytes) {
      return aesGcm(true, algorithm, key, bytes);
    }
    async decrypt(algorithm, key, bytes) {
      return aesGcm(false, algorithm, key, bytes);
    }
  }

  class Crypto {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
    get subtle() {
      return subtle;
    }
    getRandomValues(array) {
      if (!INTEGER_ARRAYS.some((type) => array instanceof type)) {
        throw new DOMException("getRandomValues: the argument must be an integer typed array", "TypeMismatchError");
      }
      if (array.byteLength > 65536) {
        throw new DOMException("getRandomValues: at most 65536 bytes at a time", "QuotaExceededError");
      }
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(new Uint8Array(native.randomBytes(array.byteLength)));
      return array;
    }
    randomUUID() {
      return native.randomUUID();
    }
  }
  const subtle = Object.create(SubtleCrypto.prototype);
  const crypto = Object.create(Crypto.prototype);
  return { crypto, Crypto, SubtleCrypto, CryptoKey };
})
