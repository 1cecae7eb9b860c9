// Types for Ferrobase functions: the `ferrobase` module available inside every function, and
// the shapes a function receives and returns. Add this package to a project's devDependencies
// (or reference this file) to type-check functions before deploying them.

declare module "ferrobase" {
  /** An SDK call that failed; `code` is one of the API's error codes. */
  export interface FerrobaseError extends Error {
    code:
      | "invalid_argument"
      | "permission_denied"
      | "not_found"
      | "conflict"
      | "precondition_failed"
      | "too_large"
      | "resource_exhausted"
      | "internal"
      | "unavailable";
  }

  export interface PutOptions {
    /** Seconds until the entry expires. */
    ttl?: number;
    /** Only write if the current version is this one (compare-and-set). */
    ifVersion?: number;
    /** Only write if the key does not exist. */
    ifAbsent?: boolean;
    /** Defaults to text/plain for strings and application/json for anything else. */
    contentType?: string;
  }

  export interface Entry<T = unknown> {
    value: T;
    version: number;
    contentType: string;
  }

  export interface ListedKey {
    key: string;
    version: number;
    size: number;
    content_type: string;
  }

  /** The key-value store of the function's namespace (no other namespace is reachable). */
  export const kv: {
    /** The value (parsed when stored as JSON), or null when absent or expired. */
    get<T = unknown>(key: string): Promise<T | null>;
    /** The value with its version, for compare-and-set. */
    getEntry<T = unknown>(key: string): Promise<Entry<T> | null>;
    put(key: string, value: unknown, options?: PutOptions): Promise<{ key: string; version: number }>;
    /** Resolves to whether the key existed. */
    delete(key: string, options?: { ifVersion?: number }): Promise<boolean>;
    list(options?: { prefix?: string; after?: string; limit?: number }): Promise<{
      items: ListedKey[];
      next: string | null;
    }>;
  };

  /** The namespace's queues (configured through the API first). */
  export const queue: {
    /**
     * Publishes one message, or several all or nothing; resolves to their ids. While a
     * function handles an event, a retry's publish is deduplicated.
     */
    publish(
      name: string,
      messages: unknown | Array<{ body: unknown; key?: string; delayMs?: number; dedupId?: string }>,
      options?: { key?: string; delayMs?: number; dedupId?: string },
    ): Promise<{ ids: string[] }>;
  };

  /** The namespace's object storage. Bodies are text, or bytes. */
  export const storage: {
    /** The body as text (invalid UTF-8 replaced), or as bytes with `{ as: "bytes" }`. */
    get(
      bucket: string,
      key: string,
      options?: { as?: "text" },
    ): Promise<{ body: string; contentType: string; etag: string; size: number } | null>;
    get(
      bucket: string,
      key: string,
      options: { as: "bytes" },
    ): Promise<{ body: Uint8Array; contentType: string; etag: string; size: number } | null>;
    /**
     * Bytes are stored as they are (default type application/octet-stream), strings as text,
     * anything else as JSON.
     */
    put(
      bucket: string,
      key: string,
      body: Uint8Array | ArrayBuffer | ArrayBufferView | string | unknown,
      options?: { contentType?: string },
    ): Promise<{ etag: string; size: number }>;
    /** Resolves to whether the object existed. */
    delete(bucket: string, key: string): Promise<boolean>;
    list(
      bucket: string,
      options?: { prefix?: string; delimiter?: string; after?: string; limit?: number },
    ): Promise<{
      objects: Array<{ key: string; size: number; etag: string; content_type: string }>;
      prefixes: string[];
      next: string | null;
    }>;
  };

  export interface FetchResponse {
    status: number;
    ok: boolean;
    headers: Record<string, string>;
    text(): Promise<string>;
    json<T = unknown>(): Promise<T>;
  }

  /**
   * Outbound HTTP to hosts on the server's allow-list (public addresses only, unless the
   * server allows private ones); redirects are followed, each hop checked. Bodies are text.
   * A refusal rejects with `code` "permission_denied" and a message starting "fetch refused:".
   */
  export function fetch(
    url: string,
    init?: { method?: string; headers?: Record<string, string>; body?: string },
  ): Promise<FetchResponse>;

  /** The second argument of every function. */
  export interface Context {
    activationId: string;
    functionName: string;
    version: number;
    namespace: string;
    /** Milliseconds since the epoch after which the activation is stopped. */
    deadline: number;
    /** What started the activation. */
    cause: { kind: "request" } | { kind: "event"; id: string; attempt: number };
    /** The values deployed with the function as `env`. */
    env: Record<string, string>;
  }

  /** The event of a web action (`/web/{ns}/{name}/...`). */
  export interface WebRequest {
    method: string;
    path: string;
    query: Record<string, string>;
    headers: Record<string, string>;
    body: string;
    /** The body parsed as JSON, when it is JSON. */
    json: unknown | null;
    /** The caller, when a valid bearer token came with the request. */
    auth: { sub: string; role: "admin" | "service" | "user"; ns: string | null } | null;
  }

  /** What a web action may return to shape its HTTP response. */
  export interface WebResponse {
    status?: number;
    headers?: Record<string, string>;
    body?: unknown;
  }

  const sdk: { kv: typeof kv; queue: typeof queue; storage: typeof storage; fetch: typeof fetch };
  export default sdk;
}

/** `fetch` is also a global inside functions. */
declare function fetch(
  url: string,
  init?: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<import("ferrobase").FetchResponse>;
