// setTimeout, setInterval and their clear functions. The queue is in Rust, on the executor's
// event loop (see engine/timers.rs); only callbacks are accepted, not strings of code.
(function (native) {
  "use strict";
  function arm(callback, delay, args, repeat, what) {
    if (typeof callback !== "function") {
      throw new TypeError(`${what}: the callback must be a function (strings of code are not evaluated)`);
    }
    const run = args.length === 0 ? callback : () => callback(...args);
    return native.timerArm(run, Number(delay ?? 0), repeat);
  }
  function setTimeout(callback, delay, ...args) {
    return arm(callback, delay, args, false, "setTimeout");
  }
  function setInterval(callback, delay, ...args) {
    return arm(callback, delay, args, true, "setInterval");
  }
  function clearTimeout(id) {
    if (typeof id === "number") native.timerClear(id);
  }
  return { setTimeout, setInterval, clearTimeout, clearInterval: clearTimeout };
})
