// URL and URLSearchParams: parsing, setters and form encoding are the `url` crate's (WHATWG).
(function (native) {
  "use strict";
  const PARTS = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"];
  const HREF = 0;
  const SEARCH = 9;
  const owners = new WeakMap(); // URLSearchParams -> its URL
  let setQuery;
  let resetParams;

  function bounded(text) {
    const str = String(text);
    return str.length > 100 ? `${str.slice(0, 100)}...` : str;
  }

  class URLSearchParams {
    #list = [];
    constructor(init = "") {
      if (init instanceof URLSearchParams) {
        this.#list = init.#list.map(([k, v]) => [k, v]);
      } else if (init !== null && typeof init === "object") {
        if (typeof init[Symbol.iterator] === "function") {
          for (const pair of init) {
            const entry = Array.from(pair);
            if (entry.length !== 2) {
              throw new TypeError("URLSearchParams: each pair must have exactly two items");
            }
            this.#list.push([String(entry[0]).toWellFormed(), String(entry[1]).toWellFormed()]);
          }
        } else {
          for (const key of Object.keys(init)) {
            this.#list.push([key.toWellFormed(), String(init[key]).toWellFormed()]);
          }
        }
      } else {
        this.#parse(String(init));
      }
    }
    #parse(text) {
      const flat = native.formParse(text.toWellFormed());
      this.#list = [];
      for (let i = 0; i < flat.length; i += 2) this.#list.push([flat[i], flat[i + 1]]);
    }
    #update() {
      const url = owners.get(this);
      if (url !== undefined) setQuery(url, this.toString());
    }
    static {
      resetParams = (params, search) => params.#parse(search);
    }
    get size() {
      return this.#list.length;
    }
    append(name, value) {
      this.#list.push([String(name).toWellFormed(), String(value).toWellFormed()]);
      this.#update();
    }
    delete(name, value) {
      const key = String(name);
      this.#list = this.#list.filter(([k, v]) => k !== key || (value !== undefined && v !== String(value)));
      this.#update();
    }
    get(name) {
      const key = String(name);
      const found = this.#list.find(([k]) => k === key);
      return found === undefined ? null : found[1];
    }
    getAll(name) {
      const key = String(name);
      return this.#list.filter(([k]) => k === key).map(([, v]) => v);
    }
    has(name, value) {
      const key = String(name);
      return this.#list.some(([k, v]) => k === key && (value === undefined || v === String(value)));
    }
    set(name, value) {
      const key = String(name).toWellFormed();
      const val = String(value).toWellFormed();
      const at = this.#list.findIndex(([k]) => k === key);
      if (at === -1) {
        this.#list.push([key, val]);
      } else {
        this.#list[at][1] = val;
        this.#list = this.#list.filter(([k], i) => k !== key || i === at);
      }
      this.#update();
    }
    sort() {
      // Stable, by UTF-16 code units, as the standard says.
      this.#list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      this.#update();
    }
    forEach(callback, thisArg) {
      for (const [k, v] of this.#list) callback.call(thisArg, v, k, this);
    }
    *entries() {
      for (const [k, v] of this.#list) yield [k, v];
    }
    *keys() {
      for (const [k] of this.#list) yield k;
    }
    *values() {
      for (const [, v] of this.#list) yield v;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    toString() {
      return native.formSerialize(this.#list.flat());
    }
    get [Symbol.toStringTag]() {
      return "URLSearchParams";
    }
  }

  class URL {
    #parts;
    #params;
    constructor(url, base) {
      const parts = URL.#parse(url, base);
      if (parts === null) {
        throw new TypeError(`Invalid URL: ${bounded(url)}`);
      }
      this.#parts = parts;
    }
    static #parse(url, base) {
      const input = String(url).toWellFormed();
      return base === undefined
        ? native.urlParse(input)
        : native.urlParse(input, String(base).toWellFormed());
    }
    static canParse(url, base) {
      return URL.#parse(url, base) !== null;
    }
    static parse(url, base) {
      return URL.canParse(url, base) ? new URL(url, base) : null;
    }
    #set(part, value) {
      const parts = native.urlSet(this.#parts[HREF], part, String(value).toWellFormed());
      if (parts === null) throw new TypeError(`Invalid URL: ${bounded(value)}`);
      this.#parts = parts;
      if (part === "href" || part === "search") if (this.#params !== undefined) resetParams(this.#params, this.#parts[SEARCH]);
    }
    static {
      setQuery = (url, query) => {
        url.#parts = native.urlSet(url.#parts[HREF], "search", query);
      };
      PARTS.forEach((part, index) => {
        const descriptor = {
          get() {
            return this.#parts[index];
          },
          configurable: true,
          enumerable: true,
        };
        if (part !== "origin") {
          descriptor.set = function (value) {
            this.#set(part, value);
          };
        }
        Object.defineProperty(URL.prototype, part, descriptor);
      });
    }
    get searchParams() {
      if (this.#params === undefined) {
        this.#params = new URLSearchParams(this.#parts[SEARCH]);
        owners.set(this.#params, this);
      }
      return this.#params;
    }
    toString() {
      return this.#parts[HREF];
    }
    toJSON() {
      return this.#parts[HREF];
    }
    get [Symbol.toStringTag]() {
      return "URL";
    }
  }
  return { URL, URLSearchParams };
})
