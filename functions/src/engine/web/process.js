// A minimal `process`: `env` is a copy of the activation's `ctx.env` (the function's
// configured env, never the server's), `nextTick` as a microtask, and the fields libraries probe. It does not claim to be
// Node: `process.versions.node` is absent, so libraries do not go looking for `require`.
(function (native, load) {
  "use strict";
  function nextTick(callback, ...args) {
    if (typeof callback !== "function") throw new TypeError("process.nextTick: the callback must be a function");
    queueMicrotask(() => callback(...args));
  }
  const started = performance.now();
  const state = load("state");
  const process = {
    get env() {
      return state.env;
    },
    set env(value) {
      state.env = value;
    },
    argv: [],
    execArgv: [],
    platform: "linux",
    release: { name: "ferrobase" },
    versions: {},
    nextTick,
    cwd: () => "/",
    uptime: () => (performance.now() - started) / 1000,
    hrtime: Object.assign(
      (previous) => {
        const now = performance.now();
        const seconds = Math.floor(now / 1000);
        const nanos = Math.floor((now % 1000) * 1e6);
        if (!previous) return [seconds, nanos];
        let s = seconds - previous[0];
        let n = nanos - previous[1];
        if (n < 0) {
          s -= 1;
          n += 1e9;
        }
        return [s, n];
      },
      { bigint: () => BigInt(Math.floor(performance.now() * 1e6)) },
    ),
    exit(code) {
      throw new Error(`process.exit(${Number(code ?? 0)}) is not available in a function; return or throw instead`);
    },
  };
  return { process };
})
