// Node's Buffer: a Uint8Array subclass with the encodings utf8, hex, base64, base64url,
// latin1 (binary), ascii and utf16le, and the common helpers (from, alloc, concat, compare,
// equals, toString, toJSON, integer reads and writes).
(function (native, load) {
  "use strict";
  const { view, binary, utf8 } = load("bytes");
  const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

  function normalize(encoding) {
    const name = String(encoding ?? "utf8").toLowerCase();
    switch (name) {
      case "utf8":
      case "utf-8":
        return "utf8";
      case "hex":
      case "base64":
      case "base64url":
      case "ascii":
        return name;
      case "latin1":
      case "binary":
        return "latin1";
      case "ucs2":
      case "ucs-2":
      case "utf16le":
      case "utf-16le":
        return "utf16le";
      default:
        throw new TypeError(`Unknown encoding: ${name.slice(0, 32)}`);
    }
  }

  function encode(string, encoding) {
    const str = String(string);
    switch (normalize(encoding)) {
      case "utf8":
        return utf8(str);
      case "hex": {
        const length = str.length >>> 1;
        const out = new Uint8Array(length);
        let i = 0;
        for (; i < length; i++) {
          const byte = parseInt(str.substr(i * 2, 2), 16);
          if (Number.isNaN(byte)) break;
          out[i] = byte;
        }
        return out.subarray(0, i);
      }
      case "base64":
      case "base64url": {
        // Like Node: both alphabets, invalid characters skipped.
        const clean = str.replace(/[^A-Za-z0-9+/\-_]/g, "");
        const bytes = native.base64Decode(clean);
        return bytes === null ? new Uint8Array(0) : new Uint8Array(bytes);
      }
      case "ascii":
      case "latin1":
        return Uint8Array.from(str, (c) => c.charCodeAt(0) & 255);
      case "utf16le": {
        const out = new Uint8Array(str.length * 2);
        for (let i = 0; i < str.length; i++) {
          const unit = str.charCodeAt(i);
          out[i * 2] = unit & 255;
          out[i * 2 + 1] = unit >> 8;
        }
        return out;
      }
    }
  }

  function decode(bytes, encoding) {
    switch (normalize(encoding)) {
      case "utf8":
        return native.utf8Decode(binary(bytes), false, true);
      case "hex": {
        let out = "";
        for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]];
        return out;
      }
      case "base64":
        return native.base64Encode(binary(bytes), true, false);
      case "base64url":
        return native.base64Encode(binary(bytes), true, true);
      case "ascii":
        return binary(bytes.map((b) => b & 127));
      case "latin1":
        return binary(bytes);
      case "utf16le": {
        let out = "";
        for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode(bytes[i] | (bytes[i + 1] << 8));
        return out;
      }
    }
  }

  class Buffer extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === "string") return wrap(encode(value, encodingOrOffset));
      if (value instanceof ArrayBuffer) {
        const offset = encodingOrOffset ?? 0;
        return new Buffer(value, offset, length ?? value.byteLength - offset);
      }
      if (ArrayBuffer.isView(value)) return wrap(new Uint8Array(view(value)).slice());
      if (value?.type === "Buffer" && Array.isArray(value.data)) return wrap(Uint8Array.from(value.data));
      if (Array.isArray(value) || (value !== null && typeof value === "object" && typeof value.length === "number")) {
        return wrap(Uint8Array.from(value));
      }
      throw new TypeError("Buffer.from: the value must be a string, an array, an ArrayBuffer or a view");
    }
    static alloc(size, fill, encoding) {
      const buffer = new Buffer(size);
      if (fill !== undefined && fill !== 0) buffer.fill(fill, 0, size, encoding);
      return buffer;
    }
    static allocUnsafe(size) {
      return new Buffer(size);
    }
    static isBuffer(value) {
      return value instanceof Buffer;
    }
    static isEncoding(encoding) {
      try {
        normalize(encoding);
        return typeof encoding === "string";
      } catch {
        return false;
      }
    }
    static byteLength(value, encoding) {
      if (typeof value === "string") return encode(value, encoding).length;
      return view(value).byteLength;
    }
    static concat(list, totalLength) {
      const joined = load("bytes").concat(list.map((b) => view(b)));
      const out = wrap(joined);
      return totalLength === undefined ? out : Buffer.from(out.subarray(0, totalLength));
    }
    static compare(a, b) {
      const length = Math.min(a.length, b.length);
      for (let i = 0; i < length; i++) {
        if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
      }
      return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
    }
    fill(value, offset = 0, end = this.length, encoding) {
      if (typeof value === "string") {
        const pattern = encode(value, encoding);
        if (pattern.length === 0) return super.fill(0, offset, end);
        for (let i = offset; i < end; i++) this[i] = pattern[(i - offset) % pattern.length];
        return this;
      }
      return super.fill(value, offset, end);
    }
    toString(encoding, start = 0, end = this.length) {
      return decode(this.subarray(start, end), encoding);
    }
    toJSON() {
      return { type: "Buffer", data: Array.from(this) };
    }
    equals(other) {
      return Buffer.compare(this, other) === 0;
    }
    compare(other) {
      return Buffer.compare(this, other);
    }
    slice(start, end) {
      return this.subarray(start, end);
    }
    write(string, offset = 0, length = this.length - offset, encoding = "utf8") {
      const bytes = encode(string, encoding).subarray(0, Math.min(length, this.length - offset));
      this.set(bytes, offset);
      return bytes.length;
    }
    #view() {
      return new DataView(this.buffer, this.byteOffset, this.byteLength);
    }
    readUInt8(offset = 0) {
      return this.#view().getUint8(offset);
    }
    readUInt16BE(offset = 0) {
      return this.#view().getUint16(offset);
    }
    readUInt16LE(offset = 0) {
      return this.#view().getUint16(offset, true);
    }
    readUInt32BE(offset = 0) {
      return this.#view().getUint32(offset);
    }
    readUInt32LE(offset = 0) {
      return this.#view().getUint32(offset, true);
    }
    readInt32BE(offset = 0) {
      return this.#view().getInt32(offset);
    }
    readInt32LE(offset = 0) {
      return this.#view().getInt32(offset, true);
    }
    writeUInt8(value, offset = 0) {
      this.#view().setUint8(offset, value);
      return offset + 1;
    }
    writeUInt16BE(value, offset = 0) {
      this.#view().setUint16(offset, value);
      return offset + 2;
    }
    writeUInt32BE(value, offset = 0) {
      this.#view().setUint32(offset, value);
      return offset + 4;
    }
    writeUInt32LE(value, offset = 0) {
      this.#view().setUint32(offset, value, true);
      return offset + 4;
    }
  }
  for (const alias of ["readUint8", "readUint16BE", "readUint16LE", "readUint32BE", "readUint32LE"]) {
    Buffer.prototype[alias] = Buffer.prototype[alias.replace("Uint", "UInt")];
  }

  function wrap(bytes) {
    return new Buffer(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  return { Buffer };
})
