// Headers, Request, Response, Blob, File and FormData. A body is a string, bytes, a Blob, an
// ArrayBuffer or view, URLSearchParams, FormData (sent as multipart/form-data) or a
// ReadableStream, read once through text(), json(), arrayBuffer(), bytes(), blob() or
// formData() (multipart/form-data by multer, or urlencoded), or through `body`, a
// ReadableStream (a body held whole is one chunk).
(function (native, load) {
  "use strict";
  const { view, utf8, binary, concat } = load("bytes");
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const NULL_BODY_STATUS = [101, 103, 204, 205, 304];
  const REDIRECT_STATUS = [301, 302, 303, 307, 308];
  let blobBytes;
  let freezeHeaders;
  let formEntries;

  function decode(bytes) {
    return native.utf8Decode(load("bytes").binary(bytes), false, false);
  }

  class Blob {
    #bytes;
    #type;
    constructor(parts = [], options = {}) {
      const chunks = [];
      for (const part of parts) {
        if (part instanceof Blob) chunks.push(part.#bytes);
        else if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) chunks.push(new Uint8Array(view(part)));
        else chunks.push(utf8(part));
      }
      this.#bytes = load("bytes").concat(chunks);
      const type = options.type === undefined ? "" : String(options.type);
      this.#type = /^[\x20-\x7E]*$/.test(type) ? type.toLowerCase() : "";
    }
    static {
      blobBytes = (blob) => blob.#bytes;
    }
    get size() {
      return this.#bytes.length;
    }
    get type() {
      return this.#type;
    }
    slice(start = 0, end = this.#bytes.length, type = "") {
      return new Blob([this.#bytes.slice(start, end)], { type });
    }
    async text() {
      return decode(this.#bytes);
    }
    async arrayBuffer() {
      return this.#bytes.slice().buffer;
    }
    async bytes() {
      return this.#bytes.slice();
    }
    stream() {
      return load("streams").streamOf(this.#bytes.slice());
    }
    get [Symbol.toStringTag]() {
      return "Blob";
    }
  }

  class File extends Blob {
    #name;
    #lastModified;
    constructor(parts, name, options = {}) {
      super(parts, options);
      this.#name = String(name);
      this.#lastModified = options.lastModified === undefined ? Date.now() : Number(options.lastModified);
    }
    get name() {
      return this.#name;
    }
    get lastModified() {
      return this.#lastModified;
    }
    get [Symbol.toStringTag]() {
      return "File";
    }
  }

  // A FormData entry: [name, string or File], as the XHR standard converts what is appended.
  function formEntry(name, value, filename) {
    const key = String(name).toWellFormed();
    if (value instanceof Blob) {
      if (!(value instanceof File) || filename !== undefined) {
        const fileName = filename !== undefined ? String(filename) : value instanceof File ? value.name : "blob";
        const options = { type: value.type };
        if (value instanceof File) options.lastModified = value.lastModified;
        value = new File([value], fileName, options);
      }
      return [key, value];
    }
    return [key, String(value).toWellFormed()];
  }

  class FormData {
    #entries = [];
    constructor(form) {
      if (form !== undefined) throw new TypeError("FormData: there are no form elements in a function; append entries instead");
    }
    static {
      formEntries = (form) => form.#entries;
    }
    append(name, value, filename) {
      if (arguments.length < 2) throw new TypeError("FormData.append: 2 arguments required");
      this.#entries.push(formEntry(name, value, filename));
    }
    set(name, value, filename) {
      if (arguments.length < 2) throw new TypeError("FormData.set: 2 arguments required");
      const entry = formEntry(name, value, filename);
      const at = this.#entries.findIndex(([key]) => key === entry[0]);
      if (at < 0) {
        this.#entries.push(entry);
        return;
      }
      this.#entries = this.#entries.filter(([key], i) => i <= at || key !== entry[0]);
      this.#entries[at] = entry;
    }
    get(name) {
      const key = String(name);
      const found = this.#entries.find(([k]) => k === key);
      return found === undefined ? null : found[1];
    }
    getAll(name) {
      const key = String(name);
      return this.#entries.filter(([k]) => k === key).map(([, value]) => value);
    }
    has(name) {
      const key = String(name);
      return this.#entries.some(([k]) => k === key);
    }
    delete(name) {
      const key = String(name);
      this.#entries = this.#entries.filter(([k]) => k !== key);
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this) callback.call(thisArg, value, name, this);
    }
    *entries() {
      for (let i = 0; i < this.#entries.length; i++) yield this.#entries[i].slice();
    }
    *keys() {
      for (const [name] of this.entries()) yield name;
    }
    *values() {
      for (const [, value] of this.entries()) yield value;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    get [Symbol.toStringTag]() {
      return "FormData";
    }
  }

  // FormData as a multipart/form-data body: [bytes, content type].
  function multipart(form) {
    const boundary = `----FerrobaseFormBoundary${native.randomUUID().replaceAll("-", "")}`;
    const escape = (text) => text.replaceAll("\n", "%0A").replaceAll("\r", "%0D").replaceAll('"', "%22");
    const chunks = [];
    for (const [name, value] of formEntries(form)) {
      let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escape(name)}"`;
      if (typeof value === "string") {
        chunks.push(utf8(`${head}\r\n\r\n${value.replace(/\r(?!\n)|(?<!\r)\n/g, "\r\n")}\r\n`));
      } else {
        head += `; filename="${escape(value.name)}"\r\nContent-Type: ${value.type || "application/octet-stream"}\r\n\r\n`;
        chunks.push(utf8(head), blobBytes(value), utf8("\r\n"));
      }
    }
    chunks.push(utf8(`--${boundary}--\r\n`));
    return [concat(chunks), `multipart/form-data; boundary=${boundary}`];
  }

  function headerName(name) {
    const text = String(name);
    if (!TOKEN.test(text)) throw new TypeError(`Headers: invalid header name ${JSON.stringify(text.slice(0, 64))}`);
    return text.toLowerCase();
  }
  function headerValue(value) {
    const text = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (/[\0\r\n]/.test(text)) throw new TypeError("Headers: a header value may not contain NUL, CR or LF");
    return text;
  }

  class Headers {
    #map = new Map(); // lowercased name -> [values]
    #immutable = false;
    constructor(init) {
      if (init == null) return;
      if (init instanceof Headers) {
        for (const [name, values] of init.#map) this.#map.set(name, values.slice());
      } else if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const entry = Array.from(pair);
          if (entry.length !== 2) throw new TypeError("Headers: each pair must have exactly two items");
          this.append(entry[0], entry[1]);
        }
      } else if (typeof init === "object") {
        for (const name of Object.keys(init)) this.append(name, init[name]);
      } else {
        throw new TypeError("Headers: init must be an object, an iterable of pairs, or Headers");
      }
    }
    static {
      freezeHeaders = (headers) => {
        headers.#immutable = true;
        return headers;
      };
    }
    #check() {
      if (this.#immutable) throw new TypeError("Headers: these headers are immutable");
    }
    append(name, value) {
      this.#check();
      const key = headerName(name);
      const list = this.#map.get(key);
      if (list) list.push(headerValue(value));
      else this.#map.set(key, [headerValue(value)]);
    }
    set(name, value) {
      this.#check();
      this.#map.set(headerName(name), [headerValue(value)]);
    }
    delete(name) {
      this.#check();
      this.#map.delete(headerName(name));
    }
    get(name) {
      const list = this.#map.get(headerName(name));
      return list === undefined ? null : list.join(", ");
    }
    getSetCookie() {
      return (this.#map.get("set-cookie") ?? []).slice();
    }
    has(name) {
      return this.#map.has(headerName(name));
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this) callback.call(thisArg, value, name, this);
    }
    *entries() {
      const names = [...this.#map.keys()].sort();
      for (const name of names) {
        const values = this.#map.get(name);
        if (values === undefined) continue;
        if (name === "set-cookie") for (const value of values) yield [name, value];
        else yield [name, values.join(", ")];
      }
    }
    *keys() {
      for (const [name] of this.entries()) yield name;
    }
    *values() {
      for (const [, value] of this.entries()) yield value;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    get [Symbol.toStringTag]() {
      return "Headers";
    }
  }

  // A body from what `new Response(body)` or `fetch(url, {body})` take: [text or bytes, type].
  function extract(body) {
    if (body == null) return [null, null];
    if (typeof body === "string") return [body, "text/plain;charset=UTF-8"];
    if (body instanceof Blob) return [blobBytes(body), body.type || null];
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return [new Uint8Array(view(body)).slice(), null];
    if (body instanceof FormData) return multipart(body);
    if (body instanceof load("url").URLSearchParams) {
      return [body.toString(), "application/x-www-form-urlencoded;charset=UTF-8"];
    }
    if (body instanceof load("streams").ReadableStream) return [body, null];
    return [String(body), "text/plain;charset=UTF-8"];
  }

  // The body half shared by Request and Response.
  class Body {
    #body = null; // null, a string, a Uint8Array, or a ReadableStream
    #used = false;
    #isStream() {
      return this.#body !== null && typeof this.#body === "object" && !(this.#body instanceof Uint8Array);
    }
    _init(body, headers) {
      const [content, type] = extract(body);
      this.#body = content;
      if (type !== null && !headers.has("content-type")) headers.set("content-type", type);
    }
    #take() {
      if (this.bodyUsed) throw new TypeError("the body has already been read");
      this.#used = true;
      return this.#body;
    }
    // The whole body: null, a string or bytes (a stream is read to its end).
    async #content() {
      const body = this.#take();
      if (body === null || typeof body === "string" || body instanceof Uint8Array) return body;
      return load("streams").collect(body);
    }
    _peek() {
      if (this.bodyUsed) throw new TypeError("cannot clone: the body has already been read");
      if (this.#isStream()) {
        const [mine, theirs] = this.#body.tee();
        this.#body = mine;
        return theirs;
      }
      return this.#body;
    }
    get bodyUsed() {
      return this.#used || (this.#isStream() && load("streams").isDisturbed(this.#body));
    }
    // A stream of the body; a body held whole becomes a stream of one chunk on first use.
    get body() {
      if (this.#body === null) return null;
      if (!this.#isStream()) {
        const bytes = typeof this.#body === "string" ? utf8(this.#body) : this.#body;
        this.#body = load("streams").streamOf(bytes);
      }
      return this.#body;
    }
    async text() {
      const body = await this.#content();
      if (body === null) return "";
      return typeof body === "string" ? body : decode(body);
    }
    async json() {
      return JSON.parse(await this.text());
    }
    async bytes() {
      const body = await this.#content();
      if (body === null) return new Uint8Array(0);
      return typeof body === "string" ? utf8(body) : body.slice();
    }
    async arrayBuffer() {
      return (await this.bytes()).buffer;
    }
    async blob() {
      const type = this.headers.get("content-type") ?? "";
      return new Blob([await this.bytes()], { type });
    }
    async formData() {
      const contentType = this.headers.get("content-type") ?? "";
      const essence = contentType.split(";")[0].trim().toLowerCase();
      const bytes = await this.bytes();
      const form = new FormData();
      if (essence === "multipart/form-data") {
        for (const part of native.multipartParse(contentType, binary(bytes))) {
          if (part.filename === undefined) form.append(part.name, part.value);
          else form.append(part.name, new File([part.value], part.filename, { type: part.type }));
        }
      } else if (essence === "application/x-www-form-urlencoded") {
        const pairs = native.formParse(decode(bytes));
        for (let i = 0; i + 1 < pairs.length; i += 2) form.append(pairs[i], pairs[i + 1]);
      } else {
        throw new TypeError(`formData: the content type ${JSON.stringify(contentType.slice(0, 64))} is neither multipart/form-data nor application/x-www-form-urlencoded`);
      }
      return form;
    }
  }
  // `_init` and `_peek` are internals; hide them from enumeration at least.
  for (const name of ["_init", "_peek"]) Object.defineProperty(Body.prototype, name, { enumerable: false });

  const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];
  class Request extends Body {
    #url;
    #method;
    #headers;
    #signal;
    #redirect;
    constructor(input, init = {}) {
      super();
      const from = input instanceof Request ? input : null;
      const { URL } = load("url");
      this.#url = from ? from.url : new URL(String(input)).href;
      const method = init.method ?? from?.method ?? "GET";
      if (!TOKEN.test(String(method))) throw new TypeError("Request: invalid method");
      const upper = String(method).toUpperCase();
      this.#method = METHODS.includes(upper) ? upper : String(method);
      this.#headers = new Headers(init.headers ?? from?.headers);
      this.#signal = init.signal ?? from?.signal ?? new (load("events").AbortController)().signal;
      this.#redirect = init.redirect ?? from?.redirect ?? "follow";
      const body = init.body !== undefined ? init.body : from ? from._peek() : null;
      if (body != null && (this.#method === "GET" || this.#method === "HEAD")) {
        throw new TypeError("Request: a GET or HEAD request cannot have a body");
      }
      this._init(body, this.#headers);
    }
    get url() {
      return this.#url;
    }
    get method() {
      return this.#method;
    }
    get headers() {
      return this.#headers;
    }
    get signal() {
      return this.#signal;
    }
    get redirect() {
      return this.#redirect;
    }
    clone() {
      return new Request(this);
    }
    get [Symbol.toStringTag]() {
      return "Request";
    }
  }

  class Response extends Body {
    #status;
    #statusText;
    #headers;
    #type = "default";
    #url = "";
    constructor(body = null, init = {}) {
      super();
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`Response: the status must be an integer from 200 to 599, not ${String(init.status).slice(0, 16)}`);
      }
      if (body != null && NULL_BODY_STATUS.includes(status)) {
        throw new TypeError(`Response: a ${status} response cannot have a body`);
      }
      this.#status = status;
      this.#statusText = init.statusText === undefined ? "" : String(init.statusText);
      this.#headers = new Headers(init.headers);
      this._init(body, this.#headers);
    }
    static json(data, init = {}) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError("Response.json: the data is not JSON-serialisable");
      const headers = new Headers(init.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(text, { ...init, headers });
    }
    static redirect(url, status = 302) {
      if (!REDIRECT_STATUS.includes(status)) throw new RangeError("Response.redirect: the status must be a redirect status");
      const { URL } = load("url");
      const response = new Response(null, { status, headers: { location: new URL(String(url)).href } });
      freezeHeaders(response.#headers);
      return response;
    }
    static error() {
      const response = new Response(null, { status: 200 });
      response.#status = 0;
      response.#type = "error";
      freezeHeaders(response.#headers);
      return response;
    }
    get status() {
      return this.#status;
    }
    get ok() {
      return this.#status >= 200 && this.#status <= 299;
    }
    get statusText() {
      return this.#statusText;
    }
    get headers() {
      return this.#headers;
    }
    get type() {
      return this.#type;
    }
    get url() {
      return this.#url;
    }
    get redirected() {
      return false;
    }
    clone() {
      const body = this._peek();
      const copy = new Response(body instanceof Uint8Array ? body.slice() : body, {
        status: this.#status === 0 ? 200 : this.#status,
        statusText: this.#statusText,
        headers: this.#headers,
      });
      copy.#status = this.#status;
      copy.#type = this.#type;
      copy.#url = this.#url;
      return copy;
    }
    get [Symbol.toStringTag]() {
      return "Response";
    }
  }

  return { Headers, Request, Response, Blob, File, FormData };
})
