// node:crypto: createHash and createHmac (md5, sha1, sha256, sha384, sha512; HMAC without
// md5), randomBytes, randomUUID, randomInt, timingSafeEqual, getRandomValues and webcrypto.
// Hash objects collect their input and hash it once at digest().
(function (native, load) {
  "use strict";
  const { Buffer } = load("buffer");
  const { crypto } = load("crypto");
  const { binary, concat, view } = load("bytes");

  function chunk(data, encoding) {
    if (typeof data === "string") return Buffer.from(data, encoding ?? "utf8");
    return view(data, "update: the data");
  }
  function output(bytes, encoding) {
    const buffer = Buffer.from(bytes);
    return encoding === undefined || encoding === "buffer" ? buffer : buffer.toString(encoding);
  }

  class Hash {
    #algorithm;
    #key;
    #chunks = [];
    #done = false;
    constructor(algorithm, key) {
      this.#algorithm = String(algorithm);
      this.#key = key;
      // Fail at creation on an unknown algorithm, as Node does.
      if (key === undefined) native.digest(this.#algorithm, "", false);
      else native.hmac(this.#algorithm, "", "", false);
    }
    update(data, encoding) {
      if (this.#done) throw new Error("Digest already called");
      this.#chunks.push(new Uint8Array(chunk(data, encoding)));
      return this;
    }
    digest(encoding) {
      if (this.#done) throw new Error("Digest already called");
      this.#done = true;
      const data = binary(concat(this.#chunks));
      const bytes = this.#key === undefined ? native.digest(this.#algorithm, data, true) : native.hmac(this.#algorithm, this.#key, data, true);
      return output(new Uint8Array(bytes), encoding);
    }
    copy() {
      const copy = new Hash(this.#algorithm, this.#key);
      for (const part of this.#chunks) copy.update(part);
      return copy;
    }
  }

  function createHash(algorithm) {
    return new Hash(algorithm);
  }
  function createHmac(algorithm, key) {
    const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : view(key?.export?.() ?? key, "createHmac: the key");
    return new Hash(algorithm, binary(bytes));
  }
  function randomBytes(size, callback) {
    const chunks = [];
    for (let left = size; left > 0; left -= 65536) chunks.push(new Uint8Array(native.randomBytes(Math.min(left, 65536))));
    const bytes = Buffer.from(concat(chunks));
    if (typeof callback === "function") {
      queueMicrotask(() => callback(null, bytes));
      return undefined;
    }
    return bytes;
  }
  function randomInt(min, max) {
    if (max === undefined) [min, max] = [0, min];
    const range = max - min;
    if (!Number.isSafeInteger(range) || range <= 0) throw new RangeError("randomInt: max must be greater than min");
    // Rejection sampling over 48 bits keeps the result uniform.
    const limit = 2 ** 48 - (2 ** 48 % range);
    for (;;) {
      const b = new Uint8Array(native.randomBytes(6));
      const n = b[0] * 2 ** 40 + b[1] * 2 ** 32 + b[2] * 2 ** 24 + b[3] * 2 ** 16 + b[4] * 2 ** 8 + b[5];
      if (n < limit) return min + (n % range);
    }
  }
  function timingSafeEqual(a, b) {
    const x = view(a, "timingSafeEqual: a");
    const y = view(b, "timingSafeEqual: b");
    if (x.length !== y.length) throw new RangeError("Input buffers must have the same byte length");
    let diff = 0;
    for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
    return diff === 0;
  }
  const getHashes = () => ["md5", "sha1", "sha256", "sha384", "sha512"];

  return {
    createHash,
    createHmac,
    randomBytes,
    randomUUID: () => crypto.randomUUID(),
    randomInt,
    timingSafeEqual,
    getRandomValues: (array) => crypto.getRandomValues(array),
    getHashes,
    webcrypto: crypto,
    subtle: crypto.subtle,
  };
})
