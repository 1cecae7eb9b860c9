//! The web platform in an isolate: the WinterTC minimum common API subset that serverless
//! runtimes ship, plus the Node modules functions most often import.
//!
//! Globals, by group (each group is one `.js` file here):
//!
//! | group | globals |
//! |---|---|
//! | `encoding` | `TextEncoder`, `TextDecoder` (UTF-8 only; `fatal`, `ignoreBOM`, `{stream: true}`), `atob`, `btoa` |
//! | `url` | `URL`, `URLSearchParams` (WHATWG, the `url` crate) |
//! | `crypto` | `crypto` (`getRandomValues`, `randomUUID`, `subtle`: digest SHA-1/256/384/512; HMAC, AES-GCM (96-bit IV, 96–128-bit tags), ECDSA P-256 and Ed25519 importKey/exportKey/generateKey and sign/verify or encrypt/decrypt; RSASSA-PKCS1-v1_5 public keys (spki, jwk) verify — natives in `keys.rs`), `Crypto`, `SubtleCrypto`, `CryptoKey` |
//! | `timers` | `setTimeout`, `setInterval`, `clearTimeout`, `clearInterval` (see `engine::timers`) |
//! | `events` | `Event`, `EventTarget`, `CustomEvent`, `AbortController`, `AbortSignal` |
//! | `clone` | `structuredClone` |
//! | `http` | `Headers`, `Request`, `Response`, `Blob`, `File`, `FormData` (`formData()` reads multipart via `multipart.rs` and urlencoded; `body` and `Blob.stream()` are streams) |
//! | `streams` | `ReadableStream` (default streams only), `ReadableStreamDefaultReader`, `ReadableStreamDefaultController` |
//! | `buffer` | `Buffer` |
//! | `process` | `process` (`env`: a copy of `ctx.env`; `nextTick`) |
//! | `intl` | `Intl` (en-US `DateTimeFormat` with IANA zones from `intl.rs`, `NumberFormat`, `PluralRules`, `Collator`, `ListFormat`, `RelativeTimeFormat`) |
//!
//! `Date.prototype.toLocale{,Date,Time}String`, `Number.prototype.toLocaleString`,
//! `BigInt.prototype.toLocaleString` and `String.prototype.localeCompare` are replaced by
//! small functions that load the `intl` group on their first call. QuickJS-ng itself provides
//! `queueMicrotask`, `DOMException`, `performance.now()` and `globalThis`; it has no `Intl`.
//!
//! Modules: `node:buffer`, `node:crypto`, `node:events`, `node:util`, `node:process`,
//! `node:timers` (and the same without `node:`), besides `ferrobase`.
//!
//! Installation is lazy: at isolate creation only the small `bootstrap.js` runs, defining each
//! global as an accessor; the first access evaluates its group (once per isolate) and turns the
//! accessor into a plain value. An isolate pays only for the groups its function uses, and an
//! idle stem holds none of them. Each isolate has its own context, so nothing one function does
//! to these globals is seen by another.

mod intl;
mod keys;
mod multipart;
mod natives;

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::loader::{Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Exception, Function, Module, Object, Persistent};

use super::timers::{ArmError, MAX_PENDING_TIMERS, Repeat, Timers, delay};

const BOOTSTRAP: &str = include_str!("bootstrap.js");

/// The glue of one group, by name: a script evaluating to `function (native, load)` that
/// returns the group's exports.
fn group_source(name: &str) -> Option<&'static str> {
    Some(match name {
        "bytes" => include_str!("bytes.js"),
        "encoding" => include_str!("encoding.js"),
        "url" => include_str!("url.js"),
        "crypto" => include_str!("crypto.js"),
        "timers" => include_str!("timers.js"),
        "events" => include_str!("events.js"),
        "clone" => include_str!("clone.js"),
        "http" => include_str!("http.js"),
        "buffer" => include_str!("buffer.js"),
        "process" => include_str!("process.js"),
        "node_events" => include_str!("node_events.js"),
        "node_util" => include_str!("node_util.js"),
        "node_crypto" => include_str!("node_crypto.js"),
        "intl" => include_str!("intl.js"),
        "streams" => include_str!("streams.js"),
        _ => return None,
    })
}

/// A built-in module: its exports, each `(group, name)`, and its default export's group (the
/// whole group object) or `None` for an object of the named exports.
struct BuiltinModule {
    exports: &'static [(&'static str, &'static str)],
    default: Option<(&'static str, &'static str)>,
}

fn builtin_module(specifier: &str) -> Option<BuiltinModule> {
    let name = specifier.strip_prefix("node:").unwrap_or(specifier);
    Some(match name {
        "buffer" => BuiltinModule {
            exports: &[
                ("buffer", "Buffer"),
                ("http", "Blob"),
                ("http", "File"),
                ("encoding", "atob"),
                ("encoding", "btoa"),
            ],
            default: None,
        },
        "crypto" => BuiltinModule {
            exports: &[
                ("node_crypto", "createHash"),
                ("node_crypto", "createHmac"),
                ("node_crypto", "randomBytes"),
                ("node_crypto", "randomUUID"),
                ("node_crypto", "randomInt"),
                ("node_crypto", "timingSafeEqual"),
                ("node_crypto", "getRandomValues"),
                ("node_crypto", "getHashes"),
                ("node_crypto", "webcrypto"),
                ("node_crypto", "subtle"),
            ],
            default: None,
        },
        "events" => BuiltinModule {
            exports: &[("node_events", "EventEmitter"), ("node_events", "once")],
            default: Some(("node_events", "EventEmitter")),
        },
        "util" => BuiltinModule {
            exports: &[
                ("node_util", "format"),
                ("node_util", "inspect"),
                ("node_util", "promisify"),
                ("node_util", "callbackify"),
                ("node_util", "isDeepStrictEqual"),
                ("node_util", "types"),
                ("node_util", "TextEncoder"),
                ("node_util", "TextDecoder"),
            ],
            default: None,
        },
        "process" => BuiltinModule {
            exports: &[],
            default: Some(("process", "process")),
        },
        "timers" => BuiltinModule {
            exports: &[
                ("timers", "setTimeout"),
                ("timers", "setInterval"),
                ("timers", "clearTimeout"),
                ("timers", "clearInterval"),
            ],
            default: None,
        },
        _ => return None,
    })
}

/// The ES module source of a built-in module: named exports read from the glue groups.
fn module_source(module: &BuiltinModule) -> String {
    let mut source = String::from("const load = globalThis[Symbol.for(\"ferrobase.load\")];\n");
    for (group, name) in module.exports {
        source.push_str(&format!(
            "export const {name} = load(\"{group}\").{name};\n"
        ));
    }
    match module.default {
        Some((group, name)) => {
            source.push_str(&format!("export default load(\"{group}\").{name};\n"));
        }
        None => {
            let names: Vec<&str> = module.exports.iter().map(|(_, name)| *name).collect();
            source.push_str(&format!("export default {{ {} }};\n", names.join(", ")));
        }
    }
    source
}

/// Resolves `ferrobase` and the built-in modules to themselves; anything else (relative
/// paths, packages) is an import error.
#[derive(Debug)]
pub struct BuiltinResolver {
    pub sdk: &'static str,
}

impl Resolver for BuiltinResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        if name == self.sdk || builtin_module(name).is_some() {
            Ok(name.to_owned())
        } else {
            Err(rquickjs::Error::new_resolving_message(
                base,
                name,
                "only \"ferrobase\" and the node: built-ins (buffer, crypto, events, util, process, timers) can be imported",
            ))
        }
    }
}

/// Compiles a built-in module on its first import.
#[derive(Debug)]
pub struct BuiltinLoader;

impl Loader for BuiltinLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        match builtin_module(name) {
            Some(module) => Module::declare(ctx.clone(), name, module_source(&module)),
            None => Err(rquickjs::Error::new_loading(name)),
        }
    }
}

/// Installs the lazy globals; returns the function to call with each activation's `ctx`. The
/// natives object (with the timer functions bound to `timers`) is made when the glue first
/// needs it and is reachable only from the glue.
pub fn install<'js>(
    ctx: &Ctx<'js>,
    timers: &Rc<RefCell<Timers>>,
) -> rquickjs::Result<Function<'js>> {
    let timers = timers.clone();
    let make = Function::new(ctx.clone(), move |ctx: Ctx<'js>| {
        natives_with_timers(&ctx, &timers)
    })?;
    let bootstrap: Function = ctx.eval(BOOTSTRAP)?;
    bootstrap.call((make,))
}

/// The natives of `natives.rs`, the glue's source loader and the timer functions.
fn natives_with_timers<'js>(
    ctx: &Ctx<'js>,
    timers: &Rc<RefCell<Timers>>,
) -> rquickjs::Result<Object<'js>> {
    let natives = natives::natives(ctx)?;
    natives.set(
        "source",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, name: String| -> rquickjs::Result<Function<'js>> {
                let Some(source) = group_source(&name) else {
                    return Err(Exception::throw_internal(&ctx, "unknown glue group"));
                };
                ctx.eval(source)
            },
        )?,
    )?;
    {
        let timers = timers.clone();
        natives.set(
            "timerArm",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>,
                      callback: Function<'js>,
                      ms: f64,
                      repeat: bool|
                      -> rquickjs::Result<u32> {
                    let wait = delay(ms);
                    let repeat = if repeat {
                        Repeat::Every(wait)
                    } else {
                        Repeat::Once
                    };
                    let callback = Persistent::save(&ctx, callback);
                    match timers.borrow_mut().arm(callback, wait, repeat) {
                        Ok(id) => Ok(id),
                        Err(ArmError::NotRunning) => Err(Exception::throw_message(
                            &ctx,
                            "timers can only be set while the function runs, not at module load",
                        )),
                        Err(ArmError::TooMany) => Err(Exception::throw_range(
                            &ctx,
                            &format!("at most {MAX_PENDING_TIMERS} timers may be pending"),
                        )),
                    }
                },
            )?,
        )?;
    }
    {
        let timers = timers.clone();
        natives.set(
            "timerClear",
            Function::new(ctx.clone(), move |id: f64| {
                if id >= 1.0 && id <= f64::from(u32::MAX) {
                    timers.borrow_mut().cancel(id as u32);
                }
            })?,
        )?;
    }
    Ok(natives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_module_reads_existing_groups() {
        for name in ["buffer", "crypto", "events", "util", "process", "timers"] {
            let module = builtin_module(&format!("node:{name}")).expect("known");
            for (group, _) in module.exports.iter().chain(module.default.iter()) {
                assert!(group_source(group).is_some(), "{name}: {group}");
            }
        }
        assert!(builtin_module("fs").is_none());
    }
}
