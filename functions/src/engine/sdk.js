// The in-isolate SDK: `import { kv, fetch } from "ferrobase"`. Every call is one asynchronous
// host operation: the request goes to the host as JSON and the promise settles when the host
// answers. Errors are Error objects with a `code` from the API contract (not_found,
// precondition_failed, permission_denied, ...).
const host = globalThis.__ferrobase_host;

function call(op, args) {
  return new Promise((resolve, reject) => host(JSON.stringify({ op, ...args }), resolve, reject));
}

function encode(value, contentType) {
  if (typeof value === "string") {
    return [value, contentType || "text/plain; charset=utf-8"];
  }
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new TypeError("the value must be a string or JSON-serialisable");
  }
  return [json, contentType || "application/json"];
}

function decode(entry) {
  if (entry.content_type.startsWith("application/json")) {
    try {
      return JSON.parse(entry.value);
    } catch (_) {
      return entry.value;
    }
  }
  return entry.value;
}

export const kv = {
  /** The value under `key` (parsed when stored as JSON), or null. */
  async get(key) {
    const entry = await call("kv.get", { key });
    return entry === null ? null : decode(entry);
  },
  /** `{value, version, contentType}` under `key`, or null: the version feeds `ifVersion`. */
  async getEntry(key) {
    const entry = await call("kv.get", { key });
    if (entry === null) return null;
    return { value: decode(entry), version: entry.version, contentType: entry.content_type };
  },
  /** Stores `value`; options: ttl (seconds), ifVersion, ifAbsent, contentType. */
  put(key, value, options = {}) {
    const [text, contentType] = encode(value, options.contentType);
    return call("kv.put", {
      key,
      value: text,
      content_type: contentType,
      ttl: options.ttl ?? null,
      if_version: options.ifVersion ?? null,
      if_absent: Boolean(options.ifAbsent),
    });
  },
  /** Deletes `key`; resolves to whether it existed. Options: ifVersion. */
  delete(key, options = {}) {
    return call("kv.delete", { key, if_version: options.ifVersion ?? null });
  },
  /** `{items: [{key, version, size, content_type}], next}`; options: prefix, after, limit. */
  list(options = {}) {
    return call("kv.list", {
      prefix: options.prefix ?? "",
      after: options.after ?? null,
      limit: options.limit ?? null,
    });
  },
};

/** The namespace's queues (configure them first through the API). */
export const queue = {
  /**
   * Publishes one message, or an array of `{body, key, delayMs, dedupId}` all or nothing;
   * resolves to the message ids. While handling an event, a retry's publish is deduplicated.
   */
  publish(name, messages, options = {}) {
    const list = Array.isArray(messages)
      ? messages
      : [{ body: messages, key: options.key, delayMs: options.delayMs, dedupId: options.dedupId }];
    return call("queue.publish", {
      queue: name,
      messages: list.map((m) => ({
        body: m.body === undefined ? null : m.body,
        key: m.key ?? null,
        delay_ms: m.delayMs ?? null,
        dedup_id: m.dedupId ?? null,
      })),
    });
  },
};

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUE = new Uint8Array(128);
for (let i = 0; i < BASE64.length; i++) BASE64_VALUE[BASE64.charCodeAt(i)] = i;

// Bytes travel to and from the host as base64 text. Both directions work on typed arrays and
// lookup tables (text is made 8 KiB at a time): a megabyte takes tens of milliseconds.
const BASE64_CODE = new Uint8Array(64);
for (let i = 0; i < BASE64.length; i++) BASE64_CODE[i] = BASE64.charCodeAt(i);

function toBase64(bytes) {
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  const whole = bytes.length - (bytes.length % 3);
  let at = 0;
  for (let i = 0; i < whole; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[at++] = BASE64_CODE[n >> 18];
    out[at++] = BASE64_CODE[(n >> 12) & 63];
    out[at++] = BASE64_CODE[(n >> 6) & 63];
    out[at++] = BASE64_CODE[n & 63];
  }
  if (whole < bytes.length) {
    const two = whole + 1 < bytes.length;
    const n = (bytes[whole] << 16) | ((two ? bytes[whole + 1] : 0) << 8);
    out[at++] = BASE64_CODE[n >> 18];
    out[at++] = BASE64_CODE[(n >> 12) & 63];
    out[at++] = two ? BASE64_CODE[(n >> 6) & 63] : 61; // "="
    out[at++] = 61;
  }
  const parts = [];
  for (let i = 0; i < out.length; i += 8192) {
    parts.push(String.fromCharCode.apply(null, out.subarray(i, i + 8192)));
  }
  return parts.join("");
}

function fromBase64(text) {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 61) end--; // "="
  const bytes = new Uint8Array(Math.floor((end * 3) / 4));
  let at = 0;
  let i = 0;
  for (; i + 4 <= end; i += 4) {
    const n =
      (BASE64_VALUE[text.charCodeAt(i)] << 18) |
      (BASE64_VALUE[text.charCodeAt(i + 1)] << 12) |
      (BASE64_VALUE[text.charCodeAt(i + 2)] << 6) |
      BASE64_VALUE[text.charCodeAt(i + 3)];
    bytes[at++] = n >> 16;
    bytes[at++] = (n >> 8) & 255;
    bytes[at++] = n & 255;
  }
  let n = 0;
  let bits = 0;
  for (; i < end; i++) {
    n = (n << 6) | BASE64_VALUE[text.charCodeAt(i)];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[at++] = (n >> bits) & 255;
    }
  }
  return bytes;
}

function binary(body) {
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return null;
}

/** The namespace's object storage. Bodies are text, or bytes (Uint8Array, ArrayBuffer). */
export const storage = {
  /**
   * `{body, contentType, etag, size}` of an object, or null. `body` is text (invalid UTF-8
   * replaced), or a Uint8Array with the option `{ as: "bytes" }`.
   */
  async get(bucket, key, options = {}) {
    const bytes = options.as === "bytes";
    if (options.as !== undefined && !bytes && options.as !== "text") {
      throw new TypeError('storage.get: `as` must be "text" or "bytes"');
    }
    const object = await call("storage.get", { bucket, key, encoding: bytes ? "base64" : "text" });
    if (object === null) return null;
    const body = bytes ? fromBase64(object.body) : object.body;
    return { body, contentType: object.content_type, etag: object.etag, size: object.size };
  },
  /**
   * Stores `body`: bytes as they are (default type application/octet-stream), a string as
   * text, anything else as JSON. Resolves to `{etag, size}`.
   */
  put(bucket, key, body, options = {}) {
    const bytes = binary(body);
    if (bytes !== null) {
      const contentType = options.contentType || "application/octet-stream";
      return call("storage.put", {
        bucket,
        key,
        body: toBase64(bytes),
        encoding: "base64",
        content_type: contentType,
      });
    }
    const [text, contentType] = encode(body, options.contentType);
    return call("storage.put", { bucket, key, body: text, encoding: "text", content_type: contentType });
  },
  /** Resolves to whether the object existed. */
  delete(bucket, key) {
    return call("storage.delete", { bucket, key });
  },
  /** `{objects: [{key, size, etag, content_type}], prefixes, next}`. */
  list(bucket, options = {}) {
    return call("storage.list", {
      bucket,
      prefix: options.prefix ?? "",
      delimiter: options.delimiter ?? null,
      after: options.after ?? null,
      limit: options.limit ?? null,
    });
  },
};

/** Bytes as a binary string (one char per byte), the form `btoa` takes. */
function binaryString(bytes) {
  const parts = [];
  for (let i = 0; i < bytes.length; i += 8192) {
    parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 8192)));
  }
  return parts.join("");
}

const NULL_BODY_STATUS = [101, 103, 204, 205, 304];

/**
 * Outbound HTTP, limited to the hosts the server allows: `fetch(input, init)` as in browsers,
 * where `input` is a URL, a string or a `Request`, and the answer is a `Response`. Bodies of
 * either direction may be text or bytes (they travel to the host as base64). The host parses
 * and checks the URL again and sends exactly what it checked.
 */
export async function fetch(input, init = undefined) {
  if (!(input instanceof Request) && !URL.canParse(String(input))) {
    // The host's parser says why, with the SDK's `invalid_argument` code.
    await call("fetch", { url: String(input) });
  }
  const request = new Request(input, init);
  if (request.signal.aborted) throw request.signal.reason;
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  const body = hasBody ? new Uint8Array(await request.arrayBuffer()) : null;
  const headers = {};
  for (const [name, value] of request.headers) headers[name] = value;
  const pending = call("fetch", {
    url: request.url,
    method: request.method,
    headers,
    body: body === null || body.length === 0 ? null : btoa(binaryString(body)),
    encoding: "base64",
  });
  const answer = await (request.signal
    ? Promise.race([
        pending,
        new Promise((_, reject) => {
          request.signal.addEventListener("abort", () => reject(request.signal.reason), { once: true });
        }),
      ])
    : pending);
  // The host says how it wrote the body: base64 for bytes as asked, or plain text.
  let bytes = answer.body;
  if (answer.encoding === "base64") {
    const decoded = atob(answer.body);
    bytes = new Uint8Array(decoded.length);
    for (let i = 0; i < decoded.length; i++) bytes[i] = decoded.charCodeAt(i);
  }
  const nullBody = NULL_BODY_STATUS.includes(answer.status) || request.method === "HEAD";
  return new Response(nullBody ? null : bytes, {
    status: answer.status,
    statusText: answer.status_text || "",
    headers: answer.headers,
  });
}

export default { kv, queue, storage, fetch };
