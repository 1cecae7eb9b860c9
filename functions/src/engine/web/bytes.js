// Shared byte helpers of the glue (no globals): bytes cross to Rust as binary strings, one
// char per byte, built 8 KiB at a time.
(function (native) {
  "use strict";
  function view(source, what = "argument") {
    if (source instanceof Uint8Array) return source;
    if (source instanceof ArrayBuffer) return new Uint8Array(source);
    if (ArrayBuffer.isView(source)) {
      return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    }
    throw new TypeError(`${what} must be an ArrayBuffer or an ArrayBuffer view`);
  }
  function binary(bytes) {
    const parts = [];
    for (let i = 0; i < bytes.length; i += 8192) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 8192)));
    }
    return parts.join("");
  }
  function text(value) {
    return String(value).toWellFormed();
  }
  function utf8(value) {
    return new Uint8Array(native.utf8Encode(text(value)));
  }
  // Text or bytes as the natives take them: [data, isBinary].
  function data(value, what) {
    if (typeof value === "string") return [value.toWellFormed(), false];
    return [binary(view(value, what)), true];
  }
  function concat(chunks) {
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    const out = new Uint8Array(length);
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
  return { view, binary, text, utf8, data, concat };
})
