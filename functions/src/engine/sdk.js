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

/** The namespace's object storage; bodies are text. */
export const storage = {
  /** `{body, contentType, etag, size}` of an object, or null. */
  async get(bucket, key) {
    const object = await call("storage.get", { bucket, key });
    if (object === null) return null;
    return { body: object.body, contentType: object.content_type, etag: object.etag, size: object.size };
  },
  /** Stores `body` (a string, or JSON for anything else); resolves to `{etag, size}`. */
  put(bucket, key, body, options = {}) {
    const [text, contentType] = encode(body, options.contentType);
    return call("storage.put", { bucket, key, body: text, content_type: contentType });
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

/** Outbound HTTP, limited to the hosts the server allows. The body is text. */
export async function fetch(url, init = {}) {
  const headers = {};
  for (const [name, value] of Object.entries(init.headers || {})) headers[name] = String(value);
  const response = await call("fetch", {
    url: String(url),
    method: init.method || "GET",
    headers,
    body: init.body == null ? null : String(init.body),
  });
  return {
    status: response.status,
    ok: response.status >= 200 && response.status < 300,
    headers: response.headers,
    text: async () => response.body,
    json: async () => JSON.parse(response.body),
  };
}

export default { kv, queue, storage, fetch };
