// Event, EventTarget, CustomEvent, AbortController and AbortSignal (no DOM tree: no capture
// or bubbling phases, dispatch reaches the target's own listeners).
(function (native, load) {
  "use strict";
  let setStop;
  let setTarget;

  class Event {
    #type;
    #stopped = false;
    #canceled = false;
    #target = null;
    #bubbles;
    #cancelable;
    #timeStamp = Date.now();
    constructor(type, options = {}) {
      if (arguments.length === 0) throw new TypeError("Event: the type is required");
      this.#type = String(type);
      this.#bubbles = Boolean(options.bubbles);
      this.#cancelable = Boolean(options.cancelable);
    }
    static {
      setStop = (event) => event.#stopped;
      setTarget = (event, target) => {
        event.#target = target;
      };
    }
    get type() {
      return this.#type;
    }
    get target() {
      return this.#target;
    }
    get currentTarget() {
      return this.#target;
    }
    get bubbles() {
      return this.#bubbles;
    }
    get cancelable() {
      return this.#cancelable;
    }
    get defaultPrevented() {
      return this.#canceled;
    }
    get timeStamp() {
      return this.#timeStamp;
    }
    get eventPhase() {
      return this.#target === null ? 0 : 2;
    }
    get isTrusted() {
      return false;
    }
    preventDefault() {
      if (this.#cancelable) this.#canceled = true;
    }
    stopPropagation() {}
    stopImmediatePropagation() {
      this.#stopped = true;
    }
    composedPath() {
      return this.#target === null ? [] : [this.#target];
    }
  }

  class CustomEvent extends Event {
    #detail;
    constructor(type, options = {}) {
      super(type, options);
      this.#detail = options.detail ?? null;
    }
    get detail() {
      return this.#detail;
    }
  }

  class EventTarget {
    #listeners = new Map(); // type -> [{callback, once}]
    addEventListener(type, callback, options = {}) {
      if (callback == null) return;
      const once = typeof options === "object" && Boolean(options.once);
      const signal = typeof options === "object" ? options.signal : undefined;
      if (signal?.aborted) return;
      const key = String(type);
      const list = this.#listeners.get(key) ?? [];
      if (list.some((l) => l.callback === callback)) return;
      const listener = { callback, once };
      list.push(listener);
      this.#listeners.set(key, list);
      signal?.addEventListener("abort", () => this.removeEventListener(key, callback));
    }
    removeEventListener(type, callback) {
      const key = String(type);
      const list = this.#listeners.get(key);
      if (list === undefined) return;
      const kept = list.filter((l) => l.callback !== callback);
      if (kept.length === 0) this.#listeners.delete(key);
      else this.#listeners.set(key, kept);
    }
    dispatchEvent(event) {
      if (!(event instanceof Event)) throw new TypeError("dispatchEvent: the argument must be an Event");
      setTarget(event, this);
      const handler = this[`on${event.type}`];
      const list = (this.#listeners.get(event.type) ?? []).slice();
      if (typeof handler === "function") list.unshift({ callback: handler, once: false });
      for (const listener of list) {
        if (listener.once) this.removeEventListener(event.type, listener.callback);
        const callback = listener.callback;
        try {
          if (typeof callback === "function") callback.call(this, event);
          else callback.handleEvent(event);
        } catch (error) {
          // As in browsers, a throwing listener does not stop the others; it is reported.
          console.error(`uncaught error in an ${event.type} listener: ${error?.stack ?? error}`);
        }
        if (setStop(event)) break;
      }
      return !event.defaultPrevented;
    }
  }

  const SIGNAL = Symbol("signal");
  let abortSignal;
  class AbortSignal extends EventTarget {
    #aborted = false;
    #reason = undefined;
    onabort = null;
    constructor(token) {
      if (token !== SIGNAL) throw new TypeError("Illegal constructor");
      super();
    }
    static {
      abortSignal = (signal, reason) => {
        if (signal.#aborted) return;
        signal.#aborted = true;
        signal.#reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
        signal.dispatchEvent(new Event("abort"));
      };
    }
    get aborted() {
      return this.#aborted;
    }
    get reason() {
      return this.#reason;
    }
    throwIfAborted() {
      if (this.#aborted) throw this.#reason;
    }
    static abort(reason) {
      const signal = newSignal();
      abortSignal(signal, reason);
      return signal;
    }
    static timeout(ms) {
      const signal = newSignal();
      load("timers").setTimeout(() => abortSignal(signal, new DOMException("The operation timed out", "TimeoutError")), ms);
      return signal;
    }
    static any(signals) {
      const signal = newSignal();
      for (const source of signals) {
        if (source.aborted) {
          abortSignal(signal, source.reason);
          return signal;
        }
      }
      for (const source of signals) {
        source.addEventListener("abort", () => abortSignal(signal, source.reason), { once: true });
      }
      return signal;
    }
  }
  function newSignal() {
    return new AbortSignal(SIGNAL);
  }

  class AbortController {
    #signal = newSignal();
    get signal() {
      return this.#signal;
    }
    abort(reason) {
      abortSignal(this.#signal, reason);
    }
  }

  return { Event, EventTarget, CustomEvent, AbortController, AbortSignal };
})
