// ReadableStream (default streams: any chunks, one reader at a time, async iteration, tee,
// ReadableStream.from), which Request/Response `body` and Blob.stream() hand out. There are no
// byte streams (BYOB readers), WritableStream or TransformStream.
(function (native, load) {
  "use strict";
  const states = new WeakMap(); // ReadableStream -> its state
  const KEY = Symbol("internal");

  function state(stream) {
    const found = states.get(stream);
    if (found === undefined) throw new TypeError("not a ReadableStream");
    return found;
  }

  function finishClose(s) {
    s.status = "closed";
    for (const request of s.reads.splice(0)) request.resolve({ value: undefined, done: true });
    s.reader?.settle(null);
  }

  function fail(s, error) {
    if (s.status !== "readable") return;
    s.status = "errored";
    s.error = error;
    s.queue = [];
    for (const request of s.reads.splice(0)) request.reject(error);
    s.reader?.settle(error);
  }

  function pull(s) {
    if (!s.started || s.status !== "readable" || s.closeRequested || s.source.pull === undefined) return;
    if (s.pulling) {
      s.pullAgain = true;
      return;
    }
    if (s.highWaterMark - s.queue.length <= 0 && s.reads.length === 0) return;
    s.pulling = true;
    Promise.resolve()
      .then(() => s.source.pull.call(s.source, s.controller))
      .then(
        () => {
          s.pulling = false;
          if (s.pullAgain) {
            s.pullAgain = false;
            pull(s);
          }
        },
        (error) => fail(s, error),
      );
  }

  class ReadableStreamDefaultController {
    #s;
    constructor(key, s) {
      if (key !== KEY) throw new TypeError("Illegal constructor");
      this.#s = s;
    }
    get desiredSize() {
      const s = this.#s;
      if (s.status === "errored") return null;
      if (s.status === "closed") return 0;
      return s.highWaterMark - s.queue.length;
    }
    enqueue(chunk) {
      const s = this.#s;
      if (s.closeRequested || s.status !== "readable") throw new TypeError("ReadableStream: cannot enqueue into a closed stream");
      const request = s.reads.shift();
      if (request) request.resolve({ value: chunk, done: false });
      else s.queue.push(chunk);
      pull(s);
    }
    close() {
      const s = this.#s;
      if (s.closeRequested || s.status !== "readable") throw new TypeError("ReadableStream: the stream is already closing");
      s.closeRequested = true;
      if (s.queue.length === 0) finishClose(s);
    }
    error(error) {
      fail(this.#s, error);
    }
  }

  class ReadableStreamDefaultReader {
    #s;
    #closed;
    #settleClosed;
    constructor(stream) {
      const s = state(stream);
      if (s.reader !== null) throw new TypeError("ReadableStream: the stream is locked to a reader");
      this.#s = s;
      let resolve;
      let reject;
      this.#closed = new Promise((yes, no) => {
        resolve = yes;
        reject = no;
      });
      this.#closed.catch(() => {});
      this.#settleClosed = (error) => (error === null ? resolve(undefined) : reject(error));
      s.reader = { settle: (error) => this.#settleClosed(error) };
      if (s.status === "closed") resolve(undefined);
      if (s.status === "errored") reject(s.error);
    }
    get closed() {
      return this.#closed;
    }
    read() {
      const s = this.#s;
      if (s === null) return Promise.reject(new TypeError("ReadableStream: the reader's lock was released"));
      s.disturbed = true;
      if (s.queue.length > 0) {
        const value = s.queue.shift();
        if (s.closeRequested && s.queue.length === 0) finishClose(s);
        else pull(s);
        return Promise.resolve({ value, done: false });
      }
      if (s.status === "closed") return Promise.resolve({ value: undefined, done: true });
      if (s.status === "errored") return Promise.reject(s.error);
      const pending = new Promise((resolve, reject) => s.reads.push({ resolve, reject }));
      pull(s);
      return pending;
    }
    releaseLock() {
      const s = this.#s;
      if (s === null) return;
      const error = new TypeError("ReadableStream: the reader's lock was released");
      for (const request of s.reads.splice(0)) request.reject(error);
      if (s.status === "readable") this.#settleClosed(error);
      s.reader = null;
      this.#s = null;
    }
    cancel(reason) {
      if (this.#s === null) return Promise.reject(new TypeError("ReadableStream: the reader's lock was released"));
      return cancel(this.#s, reason);
    }
  }

  function cancel(s, reason) {
    s.disturbed = true;
    if (s.status === "closed") return Promise.resolve(undefined);
    if (s.status === "errored") return Promise.reject(s.error);
    s.queue = [];
    finishClose(s);
    return Promise.resolve()
      .then(() => s.source.cancel?.call(s.source, reason))
      .then(() => undefined);
  }

  class ReadableStream {
    constructor(source = {}, strategy = {}) {
      if (source.type === "bytes") throw new RangeError("ReadableStream: byte streams are not supported; use a default stream of Uint8Array chunks");
      const highWaterMark = strategy.highWaterMark === undefined ? 1 : Number(strategy.highWaterMark);
      if (!(highWaterMark >= 0)) throw new RangeError("ReadableStream: highWaterMark must be a non-negative number");
      const s = { status: "readable", queue: [], reads: [], reader: null, error: undefined, source, highWaterMark, started: false, pulling: false, pullAgain: false, closeRequested: false, disturbed: false };
      s.controller = new ReadableStreamDefaultController(KEY, s);
      states.set(this, s);
      Promise.resolve()
        .then(() => source.start?.call(source, s.controller))
        .then(
          () => {
            s.started = true;
            pull(s);
          },
          (error) => fail(s, error),
        );
    }
    static from(iterable) {
      const iterator = iterable[Symbol.asyncIterator]?.() ?? iterable[Symbol.iterator]();
      return new ReadableStream({
        async pull(controller) {
          const { value, done } = await iterator.next();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        async cancel(reason) {
          await iterator.return?.(reason);
        },
      });
    }
    get locked() {
      return state(this).reader !== null;
    }
    cancel(reason) {
      const s = state(this);
      if (s.reader !== null) return Promise.reject(new TypeError("ReadableStream: a locked stream cannot be cancelled"));
      return cancel(s, reason);
    }
    getReader(options = {}) {
      if (options?.mode !== undefined) throw new TypeError("ReadableStream: only default readers are supported (no BYOB)");
      return new ReadableStreamDefaultReader(this);
    }
    tee() {
      const reader = this.getReader();
      const branches = [];
      let reading = null;
      let done = false;
      const step = async () => {
        const { value, done: finished } = await reader.read();
        if (finished) {
          done = true;
          for (const branch of branches) if (!branch.cancelled) branch.controller.close();
          return;
        }
        for (const branch of branches) if (!branch.cancelled) branch.controller.enqueue(value);
      };
      const make = () => {
        const branch = { controller: null, cancelled: false };
        branches.push(branch);
        return new ReadableStream({
          start(controller) {
            branch.controller = controller;
          },
          pull() {
            if (done) return undefined;
            reading ??= step()
              .catch((error) => {
                for (const b of branches) b.controller.error(error);
              })
              .finally(() => {
                reading = null;
              });
            return reading;
          },
          cancel() {
            branch.cancelled = true;
            if (branches.every((b) => b.cancelled)) return reader.cancel();
            return undefined;
          },
        });
      };
      return [make(), make()];
    }
    values(options = {}) {
      const reader = this.getReader();
      const preventCancel = Boolean(options?.preventCancel);
      return {
        next: () => reader.read(),
        return: async (value) => {
          if (!preventCancel) await reader.cancel(value);
          reader.releaseLock();
          return { value, done: true };
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
    }
    [Symbol.asyncIterator](options) {
      return this.values(options);
    }
    get [Symbol.toStringTag]() {
      return "ReadableStream";
    }
  }

  // A stream of one chunk (a body held whole), and a stream's chunks as bytes.
  function streamOf(bytes) {
    return new ReadableStream({
      start(controller) {
        if (bytes.length > 0) controller.enqueue(bytes);
        controller.close();
      },
    });
  }
  async function collect(stream) {
    const { concat, utf8, view } = load("bytes");
    const chunks = [];
    for await (const chunk of stream) {
      chunks.push(typeof chunk === "string" ? utf8(chunk) : new Uint8Array(view(chunk, "a body stream's chunk")));
    }
    return concat(chunks);
  }
  function isDisturbed(stream) {
    return state(stream).disturbed || state(stream).reader !== null;
  }

  return { ReadableStream, ReadableStreamDefaultReader, ReadableStreamDefaultController, streamOf, collect, isDisturbed };
})
