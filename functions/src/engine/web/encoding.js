// TextEncoder, TextDecoder (UTF-8 only), atob and btoa.
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

  class TextDecoder {
    #fatal;
    #ignoreBOM;
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
      if (options.stream) {
        throw new TypeError("TextDecoder: streaming decode is not supported; decode whole buffers");
      }
      if (input === undefined) return "";
      return native.utf8Decode(binary(view(input, "decode: the input")), this.#fatal, this.#ignoreBOM);
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
