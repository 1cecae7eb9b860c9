// TextEncoder, TextDecoder (UTF-8 only; fatal, ignoreBOM and streaming), atob and btoa.
(function (native, load) {
  "use strict";
  const { view, binary, text } = load("bytes");
  const UTF8_LABELS = new Set(["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"]);

  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return new Uint8Array(native.utf8Encode(text(input)));
    }
    encodeInto(source, destination) {
      if (!(destination instanceof Uint8Array)) {
        throw new TypeError("encodeInto: the destination must be a Uint8Array");
      }
      const str = text(source);
      let read = 0;
      let written = 0;
      // Whole code points only, as many as fit.
      for (const ch of str) {
        const bytes = new Uint8Array(native.utf8Encode(ch));
        if (written + bytes.length > destination.length) break;
        destination.set(bytes, written);
        written += bytes.length;
        read += ch.length;
      }
      return { read, written };
    }
  }

  // How many bytes at the end of `bytes` begin a UTF-8 sequence that the next chunk may
  // complete: those wait for it. Everything before them decodes the same alone as it would
  // in the whole stream, because the byte after it is not a continuation byte.
  function incompleteTail(bytes) {
    for (let back = 1; back <= Math.min(3, bytes.length); back++) {
      const byte = bytes[bytes.length - back];
      if ((byte & 0xc0) === 0x80) continue;
      const needs = byte >= 0xf0 && byte <= 0xf4 ? 4 : byte >= 0xe0 && byte <= 0xef ? 3 : byte >= 0xc2 && byte <= 0xdf ? 2 : 1;
      if (needs <= back) return 0;
      // A tail that can no longer become a character is an error now, as the standard says.
      if (back >= 2) {
        const second = bytes[bytes.length - back + 1];
        const [low, high] = byte === 0xe0 ? [0xa0, 0xbf] : byte === 0xed ? [0x80, 0x9f] : byte === 0xf0 ? [0x90, 0xbf] : byte === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
        if (second < low || second > high) return 0;
      }
      return back;
    }
    return 0;
  }

  class TextDecoder {
    #fatal;
    #ignoreBOM;
    #pending = new Uint8Array(0); // the incomplete tail of the last streamed chunk
    #started = false; // whether bytes of the current stream have been decoded (its BOM is past)
    constructor(label = "utf-8", options = {}) {
      const name = String(label).trim().toLowerCase();
      if (!UTF8_LABELS.has(name)) {
        throw new RangeError(`TextDecoder: the encoding "${name.slice(0, 64)}" is not supported (only UTF-8 is)`);
      }
      this.#fatal = Boolean(options.fatal);
      this.#ignoreBOM = Boolean(options.ignoreBOM);
    }
    get encoding() {
      return "utf-8";
    }
    get fatal() {
      return this.#fatal;
    }
    get ignoreBOM() {
      return this.#ignoreBOM;
    }
    decode(input, options = {}) {
      const stream = Boolean(options?.stream);
      let bytes = input === undefined ? new Uint8Array(0) : view(input, "decode: the input");
      if (this.#pending.length > 0) {
        const joined = new Uint8Array(this.#pending.length + bytes.length);
        joined.set(this.#pending);
        joined.set(bytes, this.#pending.length);
        bytes = joined;
      }
      const keep = stream ? incompleteTail(bytes) : 0;
      this.#pending = bytes.slice(bytes.length - keep);
      const now = bytes.subarray(0, bytes.length - keep);
      // A BOM is only ever at the start of a stream; after that it is a character.
      const ignoreBOM = this.#ignoreBOM || this.#started;
      let out;
      try {
        out = now.length === 0 ? "" : native.utf8Decode(binary(now), this.#fatal, ignoreBOM);
      } catch (error) {
        this.#reset();
        throw error;
      }
      if (now.length > 0) this.#started = true;
      if (!stream) this.#reset();
      return out;
    }
    #reset() {
      this.#pending = new Uint8Array(0);
      this.#started = false;
    }
  }

  function invalidCharacter(message) {
    return new DOMException(message, "InvalidCharacterError");
  }

  function btoa(data) {
    if (arguments.length === 0) throw new TypeError("btoa: 1 argument required");
    const str = String(data);
    for (let i = 0; i < str.length; i++) {
      if (str.charCodeAt(i) > 255) {
        throw invalidCharacter("btoa: the string contains characters outside of Latin1");
      }
    }
    return native.base64Encode(str, true, false);
  }

  function atob(data) {
    if (arguments.length === 0) throw new TypeError("atob: 1 argument required");
    const str = String(data);
    if (/[^A-Za-z0-9+/=\t\n\f\r ]/.test(str)) {
      throw invalidCharacter("atob: the string is not correctly encoded");
    }
    const compact = str.replace(/[\t\n\f\r ]/g, "");
    const body = compact.length % 4 === 0 ? compact.replace(/==?$/, "") : compact;
    if (body.length % 4 === 1 || body.includes("=")) {
      throw invalidCharacter("atob: the string is not correctly encoded");
    }
    const bytes = native.base64Decode(body);
    if (bytes === null) throw invalidCharacter("atob: the string is not correctly encoded");
    return binary(new Uint8Array(bytes));
  }

  return { TextEncoder, TextDecoder, atob, btoa };
})
