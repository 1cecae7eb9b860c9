// structuredClone: the structured clone algorithm for plain data (primitives, plain objects,
// arrays, Date, RegExp, Map, Set, ArrayBuffer and its views, Error, Blob-free boxed
// primitives), keeping shared references and cycles. Functions, symbols, class instances with
// private state and the like throw DataCloneError. `transfer` is not supported.
(function () {
  "use strict";
  const TYPED = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView];
  const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };

  function uncloneable(what) {
    return new DOMException(`${what} could not be cloned`, "DataCloneError");
  }

  function structuredClone(value, options) {
    if (options?.transfer?.length) {
      throw new DOMException("structuredClone: transfer is not supported", "DataCloneError");
    }
    const seen = new Map();
    const copy = (input) => {
      const type = typeof input;
      if (type === "function") throw uncloneable(`function ${input.name || "(anonymous)"}`);
      if (type === "symbol") throw uncloneable("a symbol");
      if (input === null || type !== "object") return input;
      if (seen.has(input)) return seen.get(input);
      let out;
      if (Array.isArray(input)) {
        out = new Array(input.length);
        seen.set(input, out);
        for (const key of Object.keys(input)) out[key] = copy(input[key]);
        return out;
      }
      if (input instanceof Date) out = new Date(input.getTime());
      else if (input instanceof RegExp) out = new RegExp(input.source, input.flags);
      else if (input instanceof Boolean || input instanceof Number || input instanceof String) out = Object(input.valueOf());
      else if (input instanceof ArrayBuffer) out = input.slice(0);
      else if (ArrayBuffer.isView(input)) {
        const kind = TYPED.find((T) => input instanceof T);
        const buffer = copy(input.buffer);
        out = kind === DataView ? new DataView(buffer, input.byteOffset, input.byteLength) : new kind(buffer, input.byteOffset, input.length);
      } else if (input instanceof Map) {
        out = new Map();
        seen.set(input, out);
        for (const [k, v] of input) out.set(copy(k), copy(v));
        return out;
      } else if (input instanceof Set) {
        out = new Set();
        seen.set(input, out);
        for (const v of input) out.add(copy(v));
        return out;
      } else if (input instanceof Error) {
        const Kind = ERRORS[input.name] ?? Error;
        out = new Kind(String(input.message));
        seen.set(input, out);
        if (input.stack !== undefined) out.stack = String(input.stack);
        if ("cause" in input) out.cause = copy(input.cause);
        return out;
      } else {
        const proto = Object.getPrototypeOf(input);
        if (proto !== Object.prototype && proto !== null) {
          const name = input.constructor?.name ?? "object";
          if (input instanceof Promise || input instanceof WeakMap || input instanceof WeakSet || typeof input.then === "function") {
            throw uncloneable(`a ${name}`);
          }
        }
        out = {};
        seen.set(input, out);
        for (const key of Object.keys(input)) out[key] = copy(input[key]);
        return out;
      }
      seen.set(input, out);
      return out;
    };
    return copy(value);
  }
  return { structuredClone };
})
