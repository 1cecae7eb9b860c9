// Node's EventEmitter (node:events), without domains or captureRejections.
(function () {
  "use strict";
  class EventEmitter {
    #events = new Map(); // name -> [{listener, once}]
    #max = EventEmitter.defaultMaxListeners;
    static defaultMaxListeners = 10;
    #list(name) {
      let list = this.#events.get(name);
      if (list === undefined) {
        list = [];
        this.#events.set(name, list);
      }
      return list;
    }
    #add(name, listener, once, prepend) {
      if (typeof listener !== "function") throw new TypeError("The listener must be a function");
      if (this.#events.has("newListener")) this.emit("newListener", name, listener);
      const list = this.#list(name);
      const entry = { listener, once };
      if (prepend) list.unshift(entry);
      else list.push(entry);
      return this;
    }
    on(name, listener) {
      return this.#add(name, listener, false, false);
    }
    addListener(name, listener) {
      return this.on(name, listener);
    }
    prependListener(name, listener) {
      return this.#add(name, listener, false, true);
    }
    once(name, listener) {
      return this.#add(name, listener, true, false);
    }
    prependOnceListener(name, listener) {
      return this.#add(name, listener, true, true);
    }
    off(name, listener) {
      const list = this.#events.get(name);
      if (list === undefined) return this;
      const at = list.findLastIndex((e) => e.listener === listener);
      if (at !== -1) {
        list.splice(at, 1);
        if (list.length === 0) this.#events.delete(name);
        if (this.#events.has("removeListener")) this.emit("removeListener", name, listener);
      }
      return this;
    }
    removeListener(name, listener) {
      return this.off(name, listener);
    }
    removeAllListeners(name) {
      if (name === undefined) this.#events.clear();
      else this.#events.delete(name);
      return this;
    }
    emit(name, ...args) {
      const list = this.#events.get(name);
      if (list === undefined || list.length === 0) {
        if (name === "error") {
          const error = args[0];
          throw error instanceof Error ? error : new Error(`Unhandled error. (${String(error)})`);
        }
        return false;
      }
      for (const entry of list.slice()) {
        if (entry.once) this.off(name, entry.listener);
        entry.listener.apply(this, args);
      }
      return true;
    }
    listeners(name) {
      return (this.#events.get(name) ?? []).map((e) => e.listener);
    }
    rawListeners(name) {
      return this.listeners(name);
    }
    listenerCount(name) {
      return this.#events.get(name)?.length ?? 0;
    }
    eventNames() {
      return [...this.#events.keys()];
    }
    setMaxListeners(n) {
      this.#max = n;
      return this;
    }
    getMaxListeners() {
      return this.#max;
    }
  }
  EventEmitter.EventEmitter = EventEmitter;
  function once(emitter, name) {
    return new Promise((resolve, reject) => {
      const onError = (error) => {
        emitter.off(name, onEvent);
        reject(error);
      };
      const onEvent = (...args) => {
        if (name !== "error") emitter.off("error", onError);
        resolve(args);
      };
      emitter.once(name, onEvent);
      if (name !== "error") emitter.once("error", onError);
    });
  }
  EventEmitter.once = once;
  return { EventEmitter, once };
})
