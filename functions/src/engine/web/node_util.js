// node:util: format, inspect (a compact JSON-like view), promisify, callbackify, isDeepStrictEqual
// and types, plus TextEncoder and TextDecoder.
(function (native, load) {
  "use strict";
  function inspect(value, options = {}) {
    const depth = options.depth ?? 2;
    const seen = new Set();
    const show = (v, level) => {
      if (typeof v === "string") return level === 0 ? v : JSON.stringify(v);
      if (typeof v === "bigint") return `${v}n`;
      if (typeof v === "symbol") return v.toString();
      if (typeof v === "function") return `[Function: ${v.name || "(anonymous)"}]`;
      if (v === null || typeof v !== "object") return String(v);
      if (seen.has(v)) return "[Circular]";
      if (v instanceof Error) return v.stack ?? `${v.name}: ${v.message}`;
      if (v instanceof Date) return v.toISOString();
      if (v instanceof RegExp) return v.toString();
      if (level > depth) return Array.isArray(v) ? "[Array]" : "[Object]";
      seen.add(v);
      let out;
      if (Array.isArray(v)) out = `[ ${v.map((x) => show(x, level + 1)).join(", ")} ]`;
      else if (v instanceof Map) out = `Map(${v.size}) { ${[...v].map(([k, x]) => `${show(k, level + 1)} => ${show(x, level + 1)}`).join(", ")} }`;
      else if (v instanceof Set) out = `Set(${v.size}) { ${[...v].map((x) => show(x, level + 1)).join(", ")} }`;
      else {
        const entries = Object.keys(v).map((k) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${show(v[k], level + 1)}`);
        out = entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
      }
      seen.delete(v);
      return out;
    };
    return show(value, typeof value === "string" ? 1 : 1);
  }

  function format(first, ...args) {
    if (typeof first !== "string") return [first, ...args].map((v) => (typeof v === "string" ? v : inspect(v))).join(" ");
    let index = 0;
    let out = first.replace(/%([sdifjoOc%])/g, (match, kind) => {
      if (kind === "%") return "%";
      if (index >= args.length) return match;
      const arg = args[index++];
      switch (kind) {
        case "s":
          return typeof arg === "string" ? arg : typeof arg === "object" && arg !== null ? inspect(arg) : String(arg);
        case "d":
        case "i":
          return typeof arg === "bigint" ? `${arg}n` : String(kind === "i" ? Math.trunc(Number(arg)) : Number(arg));
        case "f":
          return String(parseFloat(arg));
        case "j":
          try {
            return JSON.stringify(arg);
          } catch {
            return "[Circular]";
          }
        case "c":
          return "";
        default:
          return inspect(arg);
      }
    });
    for (; index < args.length; index++) {
      const arg = args[index];
      out += ` ${typeof arg === "string" ? arg : inspect(arg)}`;
    }
    return out;
  }

  const custom = Symbol.for("nodejs.util.promisify.custom");
  function promisify(original) {
    if (typeof original !== "function") throw new TypeError("promisify: the argument must be a function");
    if (typeof original[custom] === "function") return original[custom];
    return function (...args) {
      return new Promise((resolve, reject) => {
        original.call(this, ...args, (error, ...values) => {
          if (error) reject(error);
          else resolve(values.length > 1 ? values : values[0]);
        });
      });
    };
  }
  promisify.custom = custom;

  function callbackify(original) {
    return function (...args) {
      const callback = args.pop();
      original.apply(this, args).then((value) => queueMicrotask(() => callback(null, value)), (error) => queueMicrotask(() => callback(error)));
    };
  }

  function isDeepStrictEqual(a, b) {
    if (Object.is(a, b)) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
    if (a instanceof Date) return a.getTime() === b.getTime();
    if (a instanceof Map || a instanceof Set) return isDeepStrictEqual([...a], [...b]);
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    return keys.every((k) => Object.hasOwn(b, k) && isDeepStrictEqual(a[k], b[k]));
  }

  const types = {
    isDate: (v) => v instanceof Date,
    isRegExp: (v) => v instanceof RegExp,
    isMap: (v) => v instanceof Map,
    isSet: (v) => v instanceof Set,
    isPromise: (v) => v instanceof Promise,
    isTypedArray: (v) => ArrayBuffer.isView(v) && !(v instanceof DataView),
    isUint8Array: (v) => v instanceof Uint8Array,
    isArrayBuffer: (v) => v instanceof ArrayBuffer,
    isNativeError: (v) => v instanceof Error,
  };

  const { TextEncoder, TextDecoder } = load("encoding");
  return { format, inspect, promisify, callbackify, isDeepStrictEqual, types, TextEncoder, TextDecoder };
})
