// Web Crypto: getRandomValues, randomUUID, and crypto.subtle for digests and HMAC (importKey,
// exportKey, generateKey, sign, verify). Hashes and HMAC are RustCrypto's; randomness is the
// host's CSPRNG. Other algorithms reject with NotSupportedError.
(function (native, load) {
  "use strict";
  const { view, binary, data } = load("bytes");
  const HASHES = { "SHA-1": 160, "SHA-256": 256, "SHA-384": 384, "SHA-512": 512 };
  const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];
  const secret = new WeakMap(); // CryptoKey -> its key bytes (as a binary string)

  function notSupported(what) {
    return new DOMException(`${what} is not supported (digests and HMAC are)`, "NotSupportedError");
  }

  function hashName(hash) {
    const name = typeof hash === "string" ? hash : hash?.name;
    const upper = String(name).toUpperCase();
    if (!(upper in HASHES)) throw notSupported(`the hash ${String(name).slice(0, 32)}`);
    return upper;
  }

  function algorithmName(algorithm) {
    return String(typeof algorithm === "string" ? algorithm : algorithm?.name).toUpperCase();
  }

  class CryptoKey {
    constructor() {
      throw new TypeError("Illegal constructor");
    }
  }
  function makeKey(bytes, hash, extractable, usages) {
    const key = Object.create(CryptoKey.prototype);
    Object.defineProperties(key, {
      type: { value: "secret", enumerable: true },
      extractable: { value: Boolean(extractable), enumerable: true },
      algorithm: { value: Object.freeze({ name: "HMAC", hash: Object.freeze({ name: hash }), length: bytes.length * 8 }), enumerable: true },
      usages: { value: Object.freeze(Array.from(usages)), enumerable: true },
    });
    secret.set(key, binary(bytes));
    return key;
  }

  function hmacKey(key, usage) {
    const bytes = secret.get(key);
    if (bytes === undefined) throw new TypeError("the key must be a CryptoKey");
    if (!key.usages.includes(usage)) {
      throw new DOMException(`the key may not be used to ${usage}`, "InvalidAccessError");
    }
    return bytes;
  }

  function checkHmac(algorithm) {
    if (algorithmName(algorithm) !== "HMAC") throw notSupported(`the algorithm ${algorithmName(algorithm).slice(0, 32)}`);
  }

  function sign(key, bytes) {
    const [input, isBinary] = data(bytes, "data");
    return native.hmac(key.algorithm.hash.name, hmacKey(key, "sign"), input, isBinary);
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
      checkHmac(algorithm);
      const hash = hashName(algorithm.hash);
      let bytes;
      if (format === "raw") {
        bytes = new Uint8Array(view(keyData, "importKey: the key data"));
      } else if (format === "jwk") {
        if (keyData?.kty !== "oct" || typeof keyData.k !== "string") {
          throw new DataError("importKey: a JWK HMAC key needs kty \"oct\" and k");
        }
        const decoded = native.base64Decode(keyData.k);
        if (decoded === null) throw new DataError("importKey: k is not base64url");
        bytes = new Uint8Array(decoded);
      } else {
        throw notSupported(`the key format ${String(format).slice(0, 16)}`);
      }
      if (bytes.length === 0) throw new DataError("importKey: the HMAC key is empty");
      return makeKey(bytes, hash, extractable, usages);
    }
    async exportKey(format, key) {
      const bytes = secret.get(key);
      if (bytes === undefined) throw new TypeError("exportKey: the key must be a CryptoKey");
      if (!key.extractable) throw new DOMException("the key is not extractable", "InvalidAccessError");
      const raw = Uint8Array.from(bytes, (c) => c.charCodeAt(0));
      if (format === "raw") return raw.buffer;
      if (format === "jwk") {
        return { kty: "oct", k: native.base64Encode(bytes, true, true), alg: `HS${key.algorithm.hash.name.slice(4)}`, ext: true, key_ops: key.usages.slice() };
      }
      throw notSupported(`the key format ${String(format).slice(0, 16)}`);
    }
    async generateKey(algorithm, extractable, usages) {
      checkHmac(algorithm);
      const hash = hashName(algorithm.hash);
      const bits = algorithm.length ?? (hash === "SHA-384" || hash === "SHA-512" ? 1024 : 512);
      const bytes = new Uint8Array(native.randomBytes(Math.ceil(bits / 8)));
      return makeKey(bytes, hash, extractable, usages);
    }
    async sign(algorithm, key, bytes) {
      checkHmac(algorithm);
      return sign(key, bytes);
    }
    async verify(algorithm, key, signature, bytes) {
      checkHmac(algorithm);
      const expected = new Uint8Array(native.hmac(key.algorithm.hash.name, hmacKey(key, "verify"), ...data(bytes, "data")));
      const given = view(signature, "verify: the signature");
      if (given.length !== expected.length) return false;
      let diff = 0;
      for (let i = 0; i < given.length; i++) diff |= given[i] ^ expected[i];
      return diff === 0;
    }
  }
  class DataError extends DOMException {
    constructor(message) {
      super(message, "DataError");
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
