// Installs the web platform globals lazily: each global starts as an accessor that, on first
// use, evaluates its group's glue (once per isolate) and replaces itself with a plain value.
// An isolate pays only for what its function touches; even the natives object is made on the
// first load.
(function (natives) {
  "use strict";
  const groups = {
    encoding: ["TextEncoder", "TextDecoder", "atob", "btoa"],
    url: ["URL", "URLSearchParams"],
    crypto: ["crypto", "Crypto", "SubtleCrypto", "CryptoKey"],
    timers: ["setTimeout", "setInterval", "clearTimeout", "clearInterval"],
    events: ["Event", "EventTarget", "CustomEvent", "AbortController", "AbortSignal"],
    clone: ["structuredClone"],
    http: ["Headers", "Request", "Response", "Blob", "File", "FormData"],
    buffer: ["Buffer"],
    process: ["process"],
    intl: ["Intl"],
    streams: ["ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamDefaultController"],
  };
  const cache = Object.create(null);
  let native;
  // Per-activation state the glue reads (`process.env`), set by the function returned below.
  const state = {
    ctx: undefined,
    copy: undefined,
    get env() {
      this.copy ??= Object.assign({}, this.ctx?.env);
      return this.copy;
    },
    set env(value) {
      this.copy = value;
    },
  };
  cache.state = state;
  function load(group) {
    let exports = cache[group];
    if (exports === undefined) {
      native ??= natives();
      exports = native.source(group)(native, load);
      cache[group] = exports;
    }
    return exports;
  }
  function settle(name, value) {
    Object.defineProperty(globalThis, name, {
      value,
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  for (const group of Object.keys(groups)) {
    for (const name of groups[group]) {
      Object.defineProperty(globalThis, name, {
        configurable: true,
        enumerable: false,
        get() {
          const value = load(group)[name];
          settle(name, value);
          return value;
        },
        set(value) {
          settle(name, value);
        },
      });
    }
  }
  // The locale methods of the built-in prototypes format through the `intl` group (QuickJS-ng
  // has no Intl of its own); the group loads on the first call.
  function patch(proto, name, method) {
    Object.defineProperty(proto, name, { value: method, writable: true, configurable: true, enumerable: false });
  }
  const getTime = Date.prototype.getTime;
  patch(Date.prototype, "toLocaleString", function toLocaleString(locales, options) {
    return load("intl").locale.date(new Date(getTime.call(this)), locales, options);
  });
  patch(Date.prototype, "toLocaleDateString", function toLocaleDateString(locales, options) {
    return load("intl").locale.dateOnly(new Date(getTime.call(this)), locales, options);
  });
  patch(Date.prototype, "toLocaleTimeString", function toLocaleTimeString(locales, options) {
    return load("intl").locale.timeOnly(new Date(getTime.call(this)), locales, options);
  });
  const numberValue = Number.prototype.valueOf;
  patch(Number.prototype, "toLocaleString", function toLocaleString(locales, options) {
    return load("intl").locale.number(numberValue.call(this), locales, options);
  });
  const bigintValue = BigInt.prototype.valueOf;
  patch(BigInt.prototype, "toLocaleString", function toLocaleString(locales, options) {
    return load("intl").locale.number(bigintValue.call(this), locales, options);
  });
  patch(String.prototype, "localeCompare", function localeCompare(that, locales, options) {
    if (this == null) throw new TypeError("String.prototype.localeCompare called on null or undefined");
    return load("intl").locale.compare(String(this), String(that), locales, options);
  });
  // Node's name for the global object, which OpenWhisk actions and npm libraries use.
  Object.defineProperty(globalThis, "global", {
    value: globalThis,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  // The node: modules reach the glue through this; it only ever hands out what the globals
  // above hand out.
  Object.defineProperty(globalThis, Symbol.for("ferrobase.load"), { value: load });
  // Called by the host as each activation starts, with its ctx.
  return function activate(ctx) {
    state.ctx = ctx;
    state.copy = undefined;
  };
})
