//! The web platform globals and node: modules as functions use them: webhook signatures,
//! UUIDs, URLs, text encoding, timers, structuredClone, Response/Headers, Buffer, and a typeof
//! table of everything a function may expect to find.

use crate::harness::*;

/// Deploys `code` as a module under `name` and returns what one activation returned.
async fn run(f: &Fixture, name: &str, code: &str) -> Value {
    f.deploy(name, spec(code)).await;
    result(&f.invoke(name, json!({})).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_web_global_and_node_module_is_there() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "typeof",
        "import { Buffer as B } from 'node:buffer';\n\
         import { createHash, createHmac, randomUUID, randomBytes } from 'node:crypto';\n\
         import EventEmitter from 'node:events';\n\
         import { format, promisify, TextEncoder as TE } from 'node:util';\n\
         import process2 from 'node:process';\n\
         import * as buffer from 'buffer';\n\
         const names = ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'queueMicrotask', 'TextEncoder', 'TextDecoder', 'URL', 'URLSearchParams', 'crypto', 'structuredClone', 'Request', 'Response', 'Headers', 'AbortController', 'AbortSignal', 'Blob', 'File', 'FormData', 'ReadableStream', 'Event', 'EventTarget', 'CustomEvent', 'atob', 'btoa', 'process', 'Buffer', 'DOMException', 'performance'];\n\
         export default () => {\n\
           const globals = Object.fromEntries(names.map((n) => [n, typeof globalThis[n]]));\n\
           return { globals, intl: typeof Intl, subtle: typeof crypto.subtle.digest,\n\
             modules: [B === Buffer, typeof createHash, typeof createHmac, typeof randomUUID, typeof randomBytes,\n\
               typeof EventEmitter, typeof format, typeof promisify, TE === TextEncoder, process2 === process, buffer.Buffer === Buffer] };\n\
         };",
    )
    .await;
    for (name, kind) in value["globals"].as_object().unwrap() {
        let expected = if ["crypto", "process", "performance"].contains(&name.as_str()) {
            "object"
        } else {
            "function"
        };
        assert_eq!(kind, expected, "typeof {name}");
    }
    assert_eq!(value["subtle"], "function");
    // QuickJS-ng has no Intl; the web platform's en-US one is there.
    assert_eq!(value["intl"], "object");
    assert_eq!(
        value["modules"],
        json!([
            true, "function", "function", "function", "function", "function", "function",
            "function", true, true, true
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_modules_fail_at_deploy_with_a_clear_error() {
    let f = fixture_with(config());
    let error = f
        .service
        .deploy(
            &f.ns,
            "fs",
            spec("import fs from 'node:fs';\nexport default () => 1;"),
        )
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("node:fs"), "{message}");
}

/// A GitHub-style webhook check: HMAC-SHA256 of the body with the shared secret, both through
/// Web Crypto and node:crypto, against the RFC 4231 test case 2 vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_webhook_signatures_match_known_vectors() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "hmac",
        "import { createHmac, createHash } from 'node:crypto';\n\
         export default async () => {\n\
           const enc = new TextEncoder();\n\
           const key = await crypto.subtle.importKey('raw', enc.encode('Jefe'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);\n\
           const body = 'what do ya want for nothing?';\n\
           const sig = new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(body)));\n\
           const hex = [...sig].map((b) => b.toString(16).padStart(2, '0')).join('');\n\
           const ok = await crypto.subtle.verify('HMAC', key, sig, enc.encode(body));\n\
           sig[0] ^= 1;\n\
           const tampered = await crypto.subtle.verify('HMAC', key, sig, enc.encode(body));\n\
           const node = createHmac('sha256', 'Jefe').update('what do ya want ').update('for nothing?').digest('hex');\n\
           const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode('abc')));\n\
           let unsupported;\n\
           try { await crypto.subtle.digest('SHA-3', enc.encode('x')); } catch (e) { unsupported = e.name; }\n\
           return { hex, ok, tampered, node, sha256: Buffer.from(digest).toString('hex'),\n\
             md5: createHash('md5').update('abc').digest('hex'), b64: createHash('sha1').update('abc').digest('base64'), unsupported };\n\
         };",
    )
    .await;
    let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    assert_eq!(value["hex"], expected);
    assert_eq!(value["node"], expected);
    assert_eq!(value["ok"], true);
    assert_eq!(value["tampered"], false);
    assert_eq!(
        value["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(value["md5"], "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(value["b64"], "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    assert_eq!(value["unsupported"], "NotSupportedError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_uuids_are_version_4_and_random_values_fill_arrays() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "uuid",
        "import { randomBytes, randomUUID } from 'node:crypto';\n\
         export default () => {\n\
           const ids = Array.from({ length: 50 }, () => crypto.randomUUID());\n\
           const shape = ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id));\n\
           const words = crypto.getRandomValues(new Uint32Array(8));\n\
           let quota;\n\
           try { crypto.getRandomValues(new Uint8Array(65537)); } catch (e) { quota = e.name; }\n\
           return { shape, distinct: new Set(ids).size, node: /^[0-9a-f-]{36}$/.test(randomUUID()),\n\
             nonzero: words.some((w) => w !== 0), bytes: randomBytes(100000).length, quota };\n\
         };",
    )
    .await;
    assert_eq!(value["shape"], true);
    assert_eq!(value["distinct"], 50);
    assert_eq!(value["node"], true);
    assert_eq!(value["nonzero"], true);
    assert_eq!(value["bytes"], 100000);
    assert_eq!(value["quota"], "QuotaExceededError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_parse_resolve_and_keep_search_params_in_step() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "url",
        "export default () => {\n\
           const u = new URL('../b/c?x=1&y=a%20b#frag', 'https://User:pw@EXAMPLE.com:443/a/d/e');\n\
           const parts = [u.href, u.origin, u.protocol, u.username, u.host, u.port, u.pathname, u.search, u.hash];\n\
           u.searchParams.append('z', 'é&=');\n\
           u.searchParams.delete('x');\n\
           const afterParams = u.href;\n\
           u.search = '?q=2';\n\
           const q = u.searchParams.get('q');\n\
           u.port = '8080'; u.hostname = 'api.example.com'; u.hash = '';\n\
           let invalid;\n\
           try { new URL('not a url'); } catch (e) { invalid = e instanceof TypeError; }\n\
           const p = new URLSearchParams({ b: '2', a: '1 +' });\n\
           p.sort();\n\
           return { parts, afterParams, q, moved: u.href, invalid, canParse: URL.canParse('/x', 'http://h'),\n\
             idn: new URL('http://bücher.example/').hostname, params: p.toString(),\n\
             pairs: [...new URLSearchParams('a=1&a=2&b=%zz')], json: JSON.stringify({ u: new URL('http://h/p') }),\n\
             file: new URL('file:///etc/hosts').pathname, dots: new URL('http://h/a/./b/../c').pathname };\n\
         };",
    )
    .await;
    assert_eq!(
        value["parts"],
        json!([
            "https://User:pw@example.com/a/b/c?x=1&y=a%20b#frag",
            "https://example.com",
            "https:",
            "User",
            "example.com",
            "",
            "/a/b/c",
            "?x=1&y=a%20b",
            "#frag"
        ])
    );
    assert_eq!(
        value["afterParams"],
        "https://User:pw@example.com/a/b/c?y=a+b&z=%C3%A9%26%3D#frag"
    );
    assert_eq!(value["q"], "2");
    assert_eq!(
        value["moved"],
        "https://User:pw@api.example.com:8080/a/b/c?q=2"
    );
    assert_eq!(value["invalid"], true);
    assert_eq!(value["canParse"], true);
    assert_eq!(value["idn"], "xn--bcher-kva.example");
    assert_eq!(value["params"], "a=1+%2B&b=2");
    assert_eq!(
        value["pairs"],
        json!([["a", "1"], ["a", "2"], ["b", "%zz"]])
    );
    assert_eq!(value["json"], r#"{"u":"http://h/p"}"#);
    assert_eq!(value["file"], "/etc/hosts");
    assert_eq!(value["dots"], "/a/c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_round_trips_through_utf8_and_fatal_mode_rejects_bad_bytes() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "text",
        "export default () => {\n\
           const text = 'héllo, 世界 🎉';\n\
           const bytes = new TextEncoder().encode(text);\n\
           const back = new TextDecoder().decode(bytes);\n\
           const bad = new Uint8Array([0x61, 0xff, 0x62]);\n\
           const replaced = new TextDecoder().decode(bad);\n\
           let fatal;\n\
           try { new TextDecoder('utf-8', { fatal: true }).decode(bad); } catch (e) { fatal = e instanceof TypeError; }\n\
           const bom = new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41]));\n\
           const lone = [...new TextEncoder().encode('\\ud800')];\n\
           const into = new TextEncoder().encodeInto('aé', new Uint8Array(2));\n\
           let label;\n\
           try { new TextDecoder('latin1'); } catch (e) { label = e instanceof RangeError; }\n\
           return { length: bytes.length, same: back === text, replaced, fatal, bom, lone, into, label,\n\
             b64: btoa('hi\\xff'), unb64: atob(' aGn/ '), view: new TextDecoder().decode(new DataView(bytes.buffer, 0, 5)) };\n\
         };",
    )
    .await;
    assert_eq!(value["length"], 19);
    assert_eq!(value["same"], true);
    assert_eq!(value["replaced"], "a\u{FFFD}b");
    assert_eq!(value["fatal"], true);
    assert_eq!(value["bom"], "A");
    assert_eq!(value["lone"], json!([0xEF, 0xBF, 0xBD]));
    assert_eq!(value["into"], json!({"read": 1, "written": 1}));
    assert_eq!(value["label"], true);
    assert_eq!(value["b64"], "aGn/");
    assert_eq!(value["unb64"], "hi\u{FF}");
    assert_eq!(value["view"], "h\u{E9}ll");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_in_order_cleared_ones_never_and_the_activation_waits() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "timers",
        "export default async () => {\n\
           const order = [];\n\
           setTimeout(() => order.push('t20'), 20);\n\
           setTimeout(() => order.push('t0-a'), 0);\n\
           const cancelled = setTimeout(() => order.push('cancelled'), 5);\n\
           setTimeout((x, y) => order.push(`t0-b:${x}${y}`), 0, 'p', 'q');\n\
           queueMicrotask(() => order.push('micro'));\n\
           process.nextTick(() => order.push('tick'));\n\
           clearTimeout(cancelled);\n\
           let n = 0;\n\
           await new Promise((resolve) => { const i = setInterval(() => { order.push(`i${++n}`); if (n === 3) { clearInterval(i); resolve(); } }, 1); });\n\
           const later = { done: false };\n\
           setTimeout(() => { later.done = true; }, 30);\n\
           const signal = AbortSignal.timeout(1);\n\
           await new Promise((resolve) => signal.addEventListener('abort', resolve));\n\
           return { order, reason: signal.reason.name };\n\
         };",
    )
    .await;
    let order: Vec<String> = serde_json::from_value(value["order"].clone()).unwrap();
    assert_eq!(&order[..4], ["micro", "tick", "t0-a", "t0-b:pq"]);
    assert!(!order.contains(&"cancelled".to_owned()));
    let intervals: Vec<&String> = order.iter().filter(|o| o.starts_with('i')).collect();
    assert_eq!(intervals, ["i1", "i2", "i3"]);
    assert_eq!(value["reason"], "TimeoutError");

    // The activation stays open for a timer set after the result is known: what the
    // callback logs is in the activation's record.
    f.deploy(
        "after",
        spec("export default () => { setTimeout(() => console.log('late'), 10); return 'returned'; };"),
    )
    .await;
    let done = f.invoke("after", json!({})).await;
    assert_eq!(result(&done), "returned");
    assert!(
        done.record.logs.iter().any(|line| line.contains("late")),
        "{:?}",
        done.record.logs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_intervals_end_at_the_deadline_and_timers_cannot_be_set_at_load() {
    let f = fixture_with(config());
    let mut forever = spec("export default () => { setInterval(() => {}, 5); return 1; };");
    forever.timeout_ms = 300;
    f.deploy("forever", forever).await;
    let done = f.invoke("forever", json!({})).await;
    assert_eq!(done.record.outcome, OutcomeKind::Timeout);

    let error = f
        .service
        .deploy(
            &f.ns,
            "atload",
            spec("setTimeout(() => {}, 1);\nexport default () => 1;"),
        )
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("timers can only be set"),
        "{error}"
    );

    // A throwing timer callback fails the activation with its error.
    f.deploy(
        "throws",
        spec("export default () => { setTimeout(() => { throw new Error('boom in timer'); }, 1); return 1; };"),
    )
    .await;
    let done = f.invoke("throws", json!({})).await;
    assert_eq!(done.record.outcome, OutcomeKind::Error);
    assert!(
        done.record
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("boom in timer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_clone_copies_maps_dates_nesting_and_cycles() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "clone",
        "export default () => {\n\
           const date = new Date(86400000);\n\
           const inner = { list: [1, { deep: true }] };\n\
           const source = { date, map: new Map([['k', inner]]), set: new Set([1, 2]), inner, bytes: new Uint8Array([1, 2, 3]), re: /a+/gi };\n\
           source.self = source;\n\
           const copy = structuredClone(source);\n\
           copy.inner.list[1].deep = false;\n\
           let fn;\n\
           try { structuredClone({ f() {} }); } catch (e) { fn = e.name; }\n\
           return { cycle: copy.self === copy, shared: copy.map.get('k') === copy.inner, date: copy.date instanceof Date && copy.date !== date && copy.date.getTime() === 86400000,\n\
             untouched: inner.list[1].deep, set: [...copy.set], bytes: [...copy.bytes], re: copy.re.flags + copy.re.source, fn };\n\
         };",
    )
    .await;
    assert_eq!(
        value,
        json!({"cycle": true, "shared": true, "date": true, "untouched": true, "set": [1, 2], "bytes": [1, 2, 3], "re": "gia+", "fn": "DataCloneError"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_requests_and_headers_behave_like_fetch_types() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "http",
        "export default async () => {\n\
           const h = new Headers({ 'Content-Type': 'text/plain' });\n\
           h.append('X-Multi', 'a'); h.append('x-multi', 'b');\n\
           const r = Response.json({ ok: 1 }, { status: 201, headers: { 'X-Id': '7' } });\n\
           const body = await r.json();\n\
           let reused;\n\
           try { await r.text(); } catch (e) { reused = e instanceof TypeError; }\n\
           const t = new Response('héllo');\n\
           const copy = t.clone();\n\
           const req = new Request('https://api.example.com/x?y=1', { method: 'post', body: new URLSearchParams({ a: '1' }), headers: [['Accept', 'application/json']] });\n\
           const blob = new Blob(['ab', new Uint8Array([99])], { type: 'Text/Plain' });\n\
           let badName;\n\
           try { h.set('bad name', 'x'); } catch (e) { badName = e instanceof TypeError; }\n\
           let badStatus;\n\
           try { new Response('x', { status: 99 }); } catch (e) { badStatus = e instanceof RangeError; }\n\
           return { type: h.get('CONTENT-TYPE'), multi: h.get('X-MULTI'), entries: [...h], has: h.has('content-TYPE'),\n\
             status: r.status, ok: r.ok, ct: r.headers.get('content-type'), id: r.headers.get('x-id'), body, reused,\n\
             text: await t.text(), bytes: (await copy.arrayBuffer()).byteLength, method: req.method, reqBody: await req.text(),\n\
             reqType: req.headers.get('content-type'), accept: req.headers.get('accept'),\n\
             blob: [blob.size, blob.type, await blob.text(), await blob.slice(1).text()], badName, badStatus,\n\
             redirect: Response.redirect('https://example.com/', 301).headers.get('location') };\n\
         };",
    )
    .await;
    assert_eq!(value["type"], "text/plain");
    assert_eq!(value["multi"], "a, b");
    assert_eq!(
        value["entries"],
        json!([["content-type", "text/plain"], ["x-multi", "a, b"]])
    );
    assert_eq!(value["has"], true);
    assert_eq!(value["status"], 201);
    assert_eq!(value["ok"], true);
    assert_eq!(value["ct"], "application/json");
    assert_eq!(value["id"], "7");
    assert_eq!(value["body"], json!({"ok": 1}));
    assert_eq!(value["reused"], true);
    assert_eq!(value["text"], "héllo");
    assert_eq!(value["bytes"], 6);
    assert_eq!(value["method"], "POST");
    assert_eq!(value["reqBody"], "a=1");
    assert_eq!(
        value["reqType"],
        "application/x-www-form-urlencoded;charset=UTF-8"
    );
    assert_eq!(value["accept"], "application/json");
    assert_eq!(value["blob"], json!([3, "text/plain", "abc", "bc"]));
    assert_eq!(value["badName"], true);
    assert_eq!(value["badStatus"], true);
    assert_eq!(value["redirect"], "https://example.com/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffers_speak_base64_hex_and_utf8() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "buffer",
        "import { Buffer } from 'node:buffer';\n\
         import { EventEmitter } from 'node:events';\n\
         import { format, promisify } from 'node:util';\n\
         export default async () => {\n\
           const b = Buffer.from('héllo');\n\
           const e = new EventEmitter();\n\
           const seen = [];\n\
           e.once('x', (v) => seen.push(v)); e.emit('x', 1); e.emit('x', 2);\n\
           const later = promisify((a, cb) => cb(null, a * 2));\n\
           return { b64: b.toString('base64'), hex: b.toString('hex'), url: Buffer.from([251, 255]).toString('base64url'),\n\
             fromB64: Buffer.from('aOlsbG8=', 'base64').toString('latin1'), fromHex: Buffer.from('68c3a96c6c6f', 'hex').toString(),\n\
             concat: Buffer.concat([Buffer.from('a'), Buffer.from('b')]).toString(), isBuffer: Buffer.isBuffer(b.subarray(1)),\n\
             equals: Buffer.from('x').equals(Buffer.from('x')), len: Buffer.byteLength('é'), u32: Buffer.from([0, 0, 1, 0]).readUInt32BE(0),\n\
             json: JSON.stringify(Buffer.from('hi')), seen, format: format('%s=%d %j', 'n', 42, { a: 1 }), doubled: await later(21),\n\
             env: process.env };\n\
         };",
    )
    .await;
    assert_eq!(value["b64"], "aMOpbGxv");
    assert_eq!(value["hex"], "68c3a96c6c6f");
    assert_eq!(value["url"], "-_8");
    assert_eq!(value["fromB64"], "h\u{E9}llo");
    assert_eq!(value["fromHex"], "héllo");
    assert_eq!(value["concat"], "ab");
    assert_eq!(value["isBuffer"], true);
    assert_eq!(value["equals"], true);
    assert_eq!(value["len"], 2);
    assert_eq!(value["u32"], 256);
    assert_eq!(value["json"], r#"{"type":"Buffer","data":[104,105]}"#);
    assert_eq!(value["seen"], json!([1]));
    assert_eq!(value["format"], r#"n=42 {"a":1}"#);
    assert_eq!(value["doubled"], 42);
    assert_eq!(value["env"], json!({}));
}

/// Globals are per isolate: what one function does to them, another never sees, and
/// `process.env` is the function's own configured env.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_globals_do_not_leak_between_functions() {
    let f = fixture_with(config());
    let mut polluter = spec(
        "export default () => { globalThis.URL = 'mine'; Headers.prototype.get = () => 'hacked'; process.env.LEAK = 'x'; return process.env.MODE; };",
    );
    polluter.env.insert("MODE".into(), "polluter".into());
    f.deploy("polluter", polluter).await;
    assert_eq!(result(&f.invoke("polluter", json!({})).await), "polluter");
    let value = run(
        &f,
        "victim",
        "export default () => ({ url: typeof URL, get: new Headers({ a: 'b' }).get('a'), env: process.env });",
    )
    .await;
    assert_eq!(value, json!({"url": "function", "get": "b", "env": {}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_controllers_signal_listeners_once_with_their_reason() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "abort",
        "export default () => {\n\
           const seen = [];\n\
           const controller = new AbortController();\n\
           controller.signal.addEventListener('abort', (e) => seen.push(`listener:${e.type}`), { once: true });\n\
           controller.signal.onabort = () => seen.push('onabort');\n\
           controller.abort(new Error('stop'));\n\
           controller.abort('again');\n\
           let thrown;\n\
           try { controller.signal.throwIfAborted(); } catch (e) { thrown = e.message; }\n\
           const target = new EventTarget();\n\
           const event = new CustomEvent('ping', { detail: 7, cancelable: true });\n\
           target.addEventListener('ping', (e) => { seen.push(`ping:${e.detail}`); e.preventDefault(); });\n\
           const notCanceled = target.dispatchEvent(event);\n\
           const any = AbortSignal.any([new AbortController().signal, AbortSignal.abort('why')]);\n\
           let illegal;\n\
           try { new AbortSignal(); } catch (e) { illegal = e instanceof TypeError; }\n\
           return { seen, aborted: controller.signal.aborted, thrown, notCanceled, any: [any.aborted, any.reason], illegal,\n\
             defaultReason: AbortSignal.abort().reason.name };\n\
         };",
    )
    .await;
    assert_eq!(
        value,
        json!({"seen": ["onabort", "listener:abort", "ping:7"], "aborted": true, "thrown": "stop", "notCanceled": false, "any": [true, "why"], "illegal": true, "defaultReason": "AbortError"})
    );
}
