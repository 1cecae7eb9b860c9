// Intl for en-US: DateTimeFormat (any IANA time zone, offsets from chrono-tz), NumberFormat
// (decimal, percent, currency, unit, compact), PluralRules, Collator, ListFormat and
// RelativeTimeFormat, and what the prototypes' toLocale*String and localeCompare use. QuickJS-ng
// has no Intl of its own. Every locale formats as en-US (resolvedOptions().locale says so); the
// default time zone is UTC, the zone functions run in.
(function (native) {
  "use strict";
  const LOCALE = "en-US";

  function locales(value) {
    if (value === undefined) return [];
    const list = typeof value === "string" ? [value] : Array.from(value);
    for (const tag of list) {
      if (typeof tag !== "string" && typeof tag !== "object") throw new TypeError("Intl: a locale must be a string");
      if (!/^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/.test(String(tag))) throw new RangeError(`Incorrect locale information provided: ${String(tag).slice(0, 32)}`);
    }
    return list.map(String);
  }
  function options(value) {
    if (value === undefined) return Object.create(null);
    if (value === null) throw new TypeError("Intl: options must be an object");
    return Object(value);
  }
  function pick(opts, name, allowed, fallback) {
    const value = opts[name];
    if (value === undefined) return fallback;
    const text = String(value);
    if (allowed !== null && !allowed.includes(text)) throw new RangeError(`Value ${text.slice(0, 32)} out of range for Intl option ${name}`);
    return text;
  }
  function integer(opts, name, min, max, fallback) {
    const value = opts[name];
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new RangeError(`${name} value is out of range.`);
    return Math.floor(n);
  }
  function supportedLocalesOf(list) {
    return locales(list).filter((tag) => /^en(-|$)/i.test(tag));
  }
  function join(parts) {
    return parts.map((part) => part.value).join("");
  }

  // --- numbers ---------------------------------------------------------------------------

  // The decimal digits of a finite, non-negative number or bigint: {int, frac}, from the
  // shortest string that round-trips, so 1.005 rounds to 1.01 as ICU does.
  function digitsOf(x) {
    if (typeof x === "bigint") return { int: String(x < 0n ? -x : x), frac: "" };
    const [mantissa, exponent = "0"] = String(x).split("e");
    const [int, frac = ""] = mantissa.split(".");
    return place(int + frac, int.length + Number(exponent));
  }
  // Digits with the decimal point `point` digits from their start (possibly outside them).
  function place(all, point) {
    let digits = all;
    if (point <= 0) {
      digits = "0".repeat(1 - point) + digits;
      point = 1;
    }
    if (point > digits.length) digits += "0".repeat(point - digits.length);
    return { int: digits.slice(0, point).replace(/^0+(?=\d)/, ""), frac: digits.slice(point) };
  }
  function shift(d, by) {
    return place(d.int + d.frac, d.int.length + by);
  }
  function increment(digits) {
    if (digits === "") return "1";
    const next = String(BigInt(digits) + 1n);
    return next.padStart(digits.length, "0");
  }
  // Rounds half away from zero to `places` fraction digits (negative: to tens, hundreds...).
  function roundAt(d, places) {
    const all = d.int + d.frac;
    const cut = d.int.length + places;
    if (cut >= all.length) return d;
    if (cut < 0) return { int: "0", frac: "0".repeat(Math.max(places, 0)) };
    let kept = all.slice(0, cut);
    if (all.charCodeAt(cut) >= 53) kept = increment(kept);
    kept += "0".repeat(Math.max(-places, 0));
    const fracLength = Math.max(places, 0);
    return { int: kept.slice(0, kept.length - fracLength).replace(/^0+(?=\d)/, "") || "0", frac: kept.slice(kept.length - fracLength) };
  }
  function isZero(d) {
    return /^0*$/.test(d.int + d.frac);
  }
  // The position of the first significant digit: digits before the point for |x| >= 1,
  // otherwise minus the zeros after it.
  function magnitude(d) {
    const int = d.int.replace(/^0+/, "");
    if (int.length > 0) return int.length;
    const zeros = d.frac.match(/^0*/)[0].length;
    return zeros === d.frac.length ? 1 : -zeros;
  }
  function roundDigits(d, r) {
    if (r.significant) {
      let out = roundAt(d, r.maxSig - magnitude(d));
      out = { int: out.int, frac: out.frac.replace(/0+$/, "") };
      const sig = (out.int.replace(/^0+/, "") + out.frac).replace(/^0+/, "").length || 1;
      if (sig < r.minSig) out.frac += "0".repeat(r.minSig - sig);
      return out;
    }
    let out = roundAt(d, r.maxFrac);
    let frac = out.frac.replace(/0+$/, "");
    if (frac.length < r.minFrac) frac = frac.padEnd(r.minFrac, "0");
    return { int: out.int, frac };
  }
  function grouped(int, grouping) {
    if (!grouping || int.length <= 3) return [int];
    const groups = [];
    const head = int.length % 3;
    if (head) groups.push(int.slice(0, head));
    for (let i = head; i < int.length; i += 3) groups.push(int.slice(i, i + 3));
    return groups;
  }

  const CURRENCY_SYMBOLS = { USD: "$", EUR: "€", GBP: "£", JPY: "¥", INR: "₹", CNY: "CN¥", KRW: "₩", CAD: "CA$", AUD: "A$", MXN: "MX$", BRL: "R$", ILS: "₪", VND: "₫", NZD: "NZ$", HKD: "HK$", TWD: "NT$", PHP: "₱", XAF: "FCFA", XOF: "F\u202FCFA" };
  const CURRENCY_DIGITS = { JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, UGX: 0, XAF: 0, XOF: 0, PYG: 0, KWD: 3, BHD: 3, JOD: 3, OMR: 3, TND: 3, IQD: 0, LYD: 3 };
  const CURRENCY_NAMES = { USD: ["US dollar", "US dollars"], EUR: ["euro", "euros"], GBP: ["British pound", "British pounds"], JPY: ["Japanese yen", "Japanese yen"], CAD: ["Canadian dollar", "Canadian dollars"], AUD: ["Australian dollar", "Australian dollars"], CHF: ["Swiss franc", "Swiss francs"], INR: ["Indian rupee", "Indian rupees"], CNY: ["Chinese yuan", "Chinese yuan"] };
  // unit -> [short, narrow, long singular, long plural]
  const UNITS = {
    percent: ["%", "%", "percent", "percent"],
    millisecond: ["ms", "ms", "millisecond", "milliseconds"],
    second: ["sec", "s", "second", "seconds"],
    minute: ["min", "m", "minute", "minutes"],
    hour: ["hr", "h", "hour", "hours"],
    day: ["day", "d", "day", "days", "days"],
    week: ["wk", "w", "week", "weeks", "wks"],
    month: ["mth", "m", "month", "months", "mths"],
    year: ["yr", "y", "year", "years", "yrs"],
    byte: ["byte", "B", "byte", "bytes"],
    kilobyte: ["kB", "kB", "kilobyte", "kilobytes"],
    megabyte: ["MB", "MB", "megabyte", "megabytes"],
    gigabyte: ["GB", "GB", "gigabyte", "gigabytes"],
    terabyte: ["TB", "TB", "terabyte", "terabytes"],
    meter: ["m", "m", "meter", "meters"],
    kilometer: ["km", "km", "kilometer", "kilometers"],
    centimeter: ["cm", "cm", "centimeter", "centimeters"],
    mile: ["mi", "mi", "mile", "miles"],
    foot: ["ft", "′", "foot", "feet"],
    inch: ["in", "″", "inch", "inches"],
    kilogram: ["kg", "kg", "kilogram", "kilograms"],
    gram: ["g", "g", "gram", "grams"],
    pound: ["lb", "lb", "pound", "pounds"],
    liter: ["L", "L", "liter", "liters"],
    celsius: ["°C", "°C", "degree Celsius", "degrees Celsius"],
    fahrenheit: ["°F", "°", "degree Fahrenheit", "degrees Fahrenheit"],
    "kilometer-per-hour": ["km/h", "km/h", "kilometer per hour", "kilometers per hour"],
    "mile-per-hour": ["mph", "mph", "mile per hour", "miles per hour"],
    "meter-per-second": ["m/s", "m/s", "meter per second", "meters per second"],
  };
  const COMPACT = [
    ["K", "thousand"],
    ["M", "million"],
    ["B", "billion"],
    ["T", "trillion"],
  ];

  class NumberFormat {
    #r;
    constructor(locale, opts) {
      locales(locale);
      const o = options(opts);
      const style = pick(o, "style", ["decimal", "percent", "currency", "unit"], "decimal");
      const r = { style, notation: pick(o, "notation", ["standard", "scientific", "engineering", "compact"], "standard") };
      if (style === "currency") {
        if (o.currency === undefined) throw new TypeError("Currency code is required with currency style.");
        const code = String(o.currency);
        if (!/^[A-Za-z]{3}$/.test(code)) throw new RangeError(`Invalid currency code : ${code.slice(0, 16)}`);
        r.currency = code.toUpperCase();
        r.currencyDisplay = pick(o, "currencyDisplay", ["symbol", "narrowSymbol", "code", "name"], "symbol");
        r.currencySign = pick(o, "currencySign", ["standard", "accounting"], "standard");
      }
      if (style === "unit") {
        if (o.unit === undefined) throw new TypeError("Unit is required with unit style.");
        r.unit = String(o.unit);
        if (!(r.unit in UNITS)) throw new RangeError(`Invalid unit argument for Intl.NumberFormat() '${r.unit.slice(0, 32)}'`);
        r.unitDisplay = pick(o, "unitDisplay", ["short", "narrow", "long"], "short");
      }
      const fracDefault = style === "currency" ? (CURRENCY_DIGITS[r.currency] ?? 2) : 0;
      const maxDefault = style === "currency" ? fracDefault : style === "percent" ? 0 : 3;
      r.minInt = integer(o, "minimumIntegerDigits", 1, 21, 1);
      const minFrac = integer(o, "minimumFractionDigits", 0, 100, undefined);
      const maxFrac = integer(o, "maximumFractionDigits", 0, 100, undefined);
      r.minFrac = minFrac ?? Math.min(fracDefault, maxFrac ?? fracDefault);
      r.maxFrac = maxFrac ?? Math.max(r.minFrac, maxDefault);
      if (r.minFrac > r.maxFrac) throw new RangeError("maximumFractionDigits value is out of range.");
      if (o.minimumSignificantDigits !== undefined || o.maximumSignificantDigits !== undefined) {
        r.significant = true;
        r.minSig = integer(o, "minimumSignificantDigits", 1, 21, 1);
        r.maxSig = integer(o, "maximumSignificantDigits", r.minSig, 21, 21);
      }
      r.compactDisplay = pick(o, "compactDisplay", ["short", "long"], "short");
      const grouping = o.useGrouping;
      r.useGrouping = grouping === undefined ? (r.notation === "compact" ? "min2" : "auto") : grouping === false || grouping === "false" ? false : grouping === true ? "always" : String(grouping);
      r.signDisplay = pick(o, "signDisplay", ["auto", "never", "always", "exceptZero", "negative"], "auto");
      this.#r = r;
    }
    static supportedLocalesOf(list) {
      return supportedLocalesOf(list);
    }
    get format() {
      return (value) => join(this.formatToParts(value));
    }
    formatToParts(value) {
      const r = this.#r;
      const x = typeof value === "bigint" ? value : Number(value);
      const negative = typeof x === "bigint" ? x < 0n : x < 0 || Object.is(x, -0);
      const parts = [];
      let zero = false;
      if (typeof x === "number" && Number.isNaN(x)) {
        parts.push({ type: "nan", value: "NaN" });
      } else if (x === Infinity || x === -Infinity) {
        parts.push({ type: "infinity", value: "∞" });
      } else {
        let d = digitsOf(typeof x === "bigint" ? x : Math.abs(x));
        if (r.style === "percent") d = shift(d, 2);
        let suffix = null;
        if (r.notation === "compact") {
          [d, suffix] = compact(d, r);
        } else {
          d = roundDigits(d, r);
        }
        zero = isZero(d);
        const int = d.int.padStart(r.minInt, "0");
        const grouping = r.useGrouping === false ? false : r.useGrouping === "min2" ? int.length >= 5 : true;
        grouped(int, grouping).forEach((group, i) => {
          if (i > 0) parts.push({ type: "group", value: "," });
          parts.push({ type: "integer", value: group });
        });
        if (d.frac.length > 0) parts.push({ type: "decimal", value: "." }, { type: "fraction", value: d.frac });
        if (suffix !== null) {
          if (r.compactDisplay === "long") parts.push({ type: "literal", value: " " });
          parts.push({ type: "compact", value: suffix });
        }
      }
      return this.#decorate(parts, negative, zero);
    }
    #decorate(number, negative, zero) {
      const r = this.#r;
      const nan = number[0].type === "nan";
      let sign = null;
      switch (r.signDisplay) {
        case "auto":
          sign = negative ? "-" : null;
          break;
        case "always":
          sign = negative ? "-" : "+";
          break;
        case "exceptZero":
          sign = zero || nan ? null : negative ? "-" : "+";
          break;
        case "negative":
          sign = negative && !zero ? "-" : null;
          break;
        case "never":
          sign = null;
          break;
      }
      if (nan && r.signDisplay !== "always") sign = null;
      const accounting = r.currencySign === "accounting" && sign === "-";
      const signPart = sign === null || accounting ? [] : [{ type: sign === "-" ? "minusSign" : "plusSign", value: sign }];
      let out;
      if (r.style === "currency") {
        const code = r.currency;
        if (r.currencyDisplay === "name") {
          const names = CURRENCY_NAMES[code] ?? [code, code];
          const one = join(number) === "1" && !negative;
          out = [...signPart, ...number, { type: "literal", value: " " }, { type: "currency", value: one ? names[0] : names[1] }];
        } else {
          const symbol = r.currencyDisplay === "code" ? null : CURRENCY_SYMBOLS[code] ?? (r.currencyDisplay === "narrowSymbol" && code.endsWith("D") ? "$" : null);
          const currency = symbol === null ? [{ type: "currency", value: code }, { type: "literal", value: "\u00A0" }] : [{ type: "currency", value: symbol }];
          out = [...signPart, ...currency, ...number];
        }
      } else if (r.style === "percent") {
        out = [...signPart, ...number, { type: "percentSign", value: "%" }];
      } else if (r.style === "unit") {
        const names = UNITS[r.unit];
        const one = join(number) === "1";
        const label = r.unitDisplay === "long" ? (one ? names[2] : names[3]) : r.unitDisplay === "narrow" ? names[1] : !one && names[4] ? names[4] : names[0];
        const tight = r.unitDisplay === "narrow" ? /^[%°′″a-zA-Z]/.test(label) && label.length <= 2 : r.unit === "percent";
        out = [...signPart, ...number, ...(tight ? [] : [{ type: "literal", value: " " }]), { type: "unit", value: label }];
      } else {
        out = [...signPart, ...number];
      }
      if (accounting) out = [{ type: "literal", value: "(" }, ...out, { type: "literal", value: ")" }];
      return out;
    }
    resolvedOptions() {
      const r = this.#r;
      const out = { locale: LOCALE, numberingSystem: "latn", style: r.style };
      if (r.style === "currency") Object.assign(out, { currency: r.currency, currencyDisplay: r.currencyDisplay, currencySign: r.currencySign });
      if (r.style === "unit") Object.assign(out, { unit: r.unit, unitDisplay: r.unitDisplay });
      out.minimumIntegerDigits = r.minInt;
      if (r.significant) Object.assign(out, { minimumSignificantDigits: r.minSig, maximumSignificantDigits: r.maxSig });
      else Object.assign(out, { minimumFractionDigits: r.minFrac, maximumFractionDigits: r.maxFrac });
      Object.assign(out, { useGrouping: r.useGrouping, notation: r.notation });
      if (r.notation === "compact") out.compactDisplay = r.compactDisplay;
      return Object.assign(out, { signDisplay: r.signDisplay, roundingMode: "halfExpand", roundingIncrement: 1, trailingZeroDisplay: "auto", roundingPriority: "auto" });
    }
    get [Symbol.toStringTag]() {
      return "Intl.NumberFormat";
    }
  }

  // Compact notation: a power of a thousand and its suffix, two significant digits below 10,
  // whole numbers above; rounding up to the next thousand moves to the next suffix.
  function compact(d, r) {
    let index = Math.min(Math.floor((d.int.replace(/^0+/, "").length - 1) / 3), COMPACT.length);
    for (;;) {
      const scaled = index > 0 ? shift(d, -3 * index) : d;
      const rounded = r.significant ? roundDigits(scaled, r) : scaled.int.replace(/^0+/, "").length <= 1 ? roundDigits(scaled, { significant: true, minSig: 1, maxSig: 2 }) : roundDigits(scaled, { minFrac: 0, maxFrac: 0 });
      if (rounded.int.length > 3 && index < COMPACT.length) {
        index++;
        continue;
      }
      const suffix = index > 0 ? COMPACT[index - 1][r.compactDisplay === "long" ? 1 : 0] : null;
      return [rounded, suffix];
    }
  }

  class PluralRules {
    #type;
    #format;
    constructor(locale, opts) {
      locales(locale);
      const o = options(opts);
      this.#type = pick(o, "type", ["cardinal", "ordinal"], "cardinal");
      this.#format = new NumberFormat(LOCALE, { minimumFractionDigits: o.minimumFractionDigits, maximumFractionDigits: o.maximumFractionDigits, minimumSignificantDigits: o.minimumSignificantDigits, maximumSignificantDigits: o.maximumSignificantDigits, useGrouping: false });
    }
    static supportedLocalesOf(list) {
      return supportedLocalesOf(list);
    }
    select(value) {
      const n = Number(value);
      if (!Number.isFinite(n)) return "other";
      const text = this.#format.format(Math.abs(n));
      if (this.#type === "cardinal") return text === "1" ? "one" : "other";
      if (text.includes(".")) return "other";
      const last = Number(text.slice(-1));
      const lastTwo = Number(text.slice(-2));
      if (last === 1 && lastTwo !== 11) return "one";
      if (last === 2 && lastTwo !== 12) return "two";
      if (last === 3 && lastTwo !== 13) return "few";
      return "other";
    }
    resolvedOptions() {
      const categories = this.#type === "cardinal" ? ["one", "other"] : ["few", "one", "two", "other"];
      return { locale: LOCALE, type: this.#type, ...this.#format.resolvedOptions(), pluralCategories: categories };
    }
  }

  // --- collation -------------------------------------------------------------------------

  // An approximation of CLDR root collation for Latin text: letters compare by base letter,
  // then accents, then case (lower first), with `numeric` comparing digit runs by value.
  function collationKey(text, numeric, ignorePunctuation) {
    const base = [];
    const accents = [];
    const cases = [];
    let source = String(text).normalize("NFD");
    if (ignorePunctuation) source = source.replace(/[\p{P}\s]/gu, "");
    for (const ch of source) {
      if (/\p{M}/u.test(ch)) {
        if (accents.length > 0) accents[accents.length - 1] += ch;
        continue;
      }
      const lower = ch.toLowerCase();
      base.push(lower);
      accents.push("");
      cases.push(lower === ch ? 0 : 1);
    }
    if (numeric) {
      const merged = [];
      for (const ch of base) {
        const last = merged[merged.length - 1];
        if (/\d/.test(ch) && typeof last === "object") last.digits += ch;
        else merged.push(/\d/.test(ch) ? { digits: ch } : ch);
      }
      return { base: merged, accents, cases };
    }
    return { base, accents, cases };
  }
  function compareUnits(a, b) {
    const aNum = typeof a === "object";
    const bNum = typeof b === "object";
    if (aNum && bNum) {
      const x = BigInt(a.digits);
      const y = BigInt(b.digits);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const left = aNum ? a.digits : a;
    const right = bNum ? b.digits : b;
    return left < right ? -1 : left > right ? 1 : 0;
  }
  function compareLists(a, b, compare) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const order = compare(a[i], b[i]);
      if (order !== 0) return order;
    }
    return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
  }
  const plain = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

  class Collator {
    #r;
    constructor(locale, opts) {
      locales(locale);
      const o = options(opts);
      const usage = pick(o, "usage", ["sort", "search"], "sort");
      this.#r = {
        usage,
        sensitivity: pick(o, "sensitivity", ["base", "accent", "case", "variant"], "variant"),
        ignorePunctuation: Boolean(o.ignorePunctuation),
        numeric: Boolean(o.numeric),
        caseFirst: pick(o, "caseFirst", ["upper", "lower", "false"], "false"),
      };
    }
    static supportedLocalesOf(list) {
      return supportedLocalesOf(list);
    }
    get compare() {
      return (x, y) => {
        const r = this.#r;
        const a = collationKey(x, r.numeric, r.ignorePunctuation);
        const b = collationKey(y, r.numeric, r.ignorePunctuation);
        const primary = compareLists(a.base, b.base, compareUnits);
        if (primary !== 0 || r.sensitivity === "base") return primary;
        if (r.sensitivity !== "case") {
          const secondary = compareLists(a.accents, b.accents, plain);
          if (secondary !== 0) return secondary;
        }
        if (r.sensitivity === "accent") return 0;
        const upperFirst = r.caseFirst === "upper";
        const tertiary = compareLists(a.cases, b.cases, (p, q) => (upperFirst ? plain(q, p) : plain(p, q)));
        if (tertiary !== 0 || r.sensitivity === "case") return tertiary;
        return plain(String(x), String(y));
      };
    }
    resolvedOptions() {
      return { locale: LOCALE, collation: "default", ...this.#r };
    }
  }

  // --- dates -----------------------------------------------------------------------------

  const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
  const UTC_NAMES = ["UTC", "ETC/UTC", "ETC/GMT", "GMT", "ETC/UNIVERSAL", "UNIVERSAL", "ETC/ZULU", "ZULU", "UCT", "ETC/UCT", "ETC/GREENWICH", "GREENWICH", "GMT0", "ETC/GMT0", "GMT+0", "GMT-0", "ETC/GMT+0", "ETC/GMT-0"];
  const US_ZONES = { EST: "Eastern Standard Time", EDT: "Eastern Daylight Time", CST: "Central Standard Time", CDT: "Central Daylight Time", MST: "Mountain Standard Time", MDT: "Mountain Daylight Time", PST: "Pacific Standard Time", PDT: "Pacific Daylight Time", AKST: "Alaska Standard Time", AKDT: "Alaska Daylight Time", HST: "Hawaii-Aleutian Standard Time", HDT: "Hawaii-Aleutian Daylight Time" };
  const STYLES = ["full", "long", "medium", "short"];
  const DATE_STYLES = {
    full: { weekday: "long", month: "long", day: "numeric", year: "numeric" },
    long: { month: "long", day: "numeric", year: "numeric" },
    medium: { month: "short", day: "numeric", year: "numeric" },
    short: { month: "numeric", day: "numeric", year: "2-digit" },
  };
  const TIME_STYLES = {
    full: { hour: "numeric", minute: "2-digit", second: "2-digit", timeZoneName: "long" },
    long: { hour: "numeric", minute: "2-digit", second: "2-digit", timeZoneName: "short" },
    medium: { hour: "numeric", minute: "2-digit", second: "2-digit" },
    short: { hour: "numeric", minute: "2-digit" },
  };
  const COMPONENTS = {
    weekday: ["narrow", "short", "long"],
    era: ["narrow", "short", "long"],
    year: ["2-digit", "numeric"],
    month: ["2-digit", "numeric", "narrow", "short", "long"],
    day: ["2-digit", "numeric"],
    dayPeriod: ["narrow", "short", "long"],
    hour: ["2-digit", "numeric"],
    minute: ["2-digit", "numeric"],
    second: ["2-digit", "numeric"],
    timeZoneName: ["short", "long", "shortOffset", "longOffset", "shortGeneric", "longGeneric"],
  };

  function canonicalZone(zone) {
    if (zone === undefined) return "UTC";
    const name = String(zone);
    if (UTC_NAMES.includes(name.toUpperCase())) return "UTC";
    const found = native.zoneOffset(0, name);
    if (found === null) throw new RangeError(`Invalid time zone specified: ${name.slice(0, 64)}`);
    return found[2];
  }
  function offsetName(seconds, long) {
    if (seconds === 0) return "GMT";
    const sign = seconds < 0 ? "-" : "+";
    const abs = Math.abs(seconds);
    const hours = Math.floor(abs / 3600);
    const minutes = Math.floor((abs % 3600) / 60);
    if (long) return `GMT${sign}${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}`;
    return `GMT${sign}${hours}${minutes ? `:${String(minutes).padStart(2, "0")}` : ""}`;
  }
  function zoneName(style, zone, seconds, abbreviation) {
    if (zone === "UTC") {
      if (style === "long") return "Coordinated Universal Time";
      if (style === "short") return "UTC";
      return style === "longOffset" ? "GMT" : "GMT";
    }
    switch (style) {
      case "short":
      case "shortGeneric":
        return abbreviation in US_ZONES ? abbreviation : offsetName(seconds, false);
      case "long":
      case "longGeneric":
        return US_ZONES[abbreviation] ?? offsetName(seconds, true);
      case "shortOffset":
        return offsetName(seconds, false);
      default:
        return offsetName(seconds, true);
    }
  }

  class DateTimeFormat {
    #r;
    // `defaults` is ECMA-402's ToDateTimeOptions: "any" (the constructor: year, month and day
    // when no component is asked for), "all" (toLocaleString: date and time), "date" or
    // "time" (toLocaleDateString, toLocaleTimeString: those, when none of them is asked for).
    constructor(locale, opts, defaults = "any") {
      locales(locale);
      const o = options(opts);
      const r = { timeZone: canonicalZone(o.timeZone) };
      const hour12 = o.hour12 === undefined ? undefined : Boolean(o.hour12);
      const hourCycle = pick(o, "hourCycle", ["h11", "h12", "h23", "h24"], undefined);
      r.hourCycle = hour12 === true ? "h12" : hour12 === false ? "h23" : hourCycle ?? "h12";
      r.dateStyle = pick(o, "dateStyle", STYLES, undefined);
      r.timeStyle = pick(o, "timeStyle", STYLES, undefined);
      const fields = {};
      for (const name of Object.keys(COMPONENTS)) {
        const value = pick(o, name, COMPONENTS[name], undefined);
        if (value !== undefined) fields[name] = value;
      }
      const fractional = o.fractionalSecondDigits === undefined ? undefined : integer(o, "fractionalSecondDigits", 1, 3, undefined);
      if (r.dateStyle !== undefined || r.timeStyle !== undefined) {
        if (Object.keys(fields).some((name) => name !== "timeZoneName") || fractional !== undefined) {
          throw new TypeError("Can't set option " + Object.keys(fields)[0] + " when dateStyle or timeStyle is used");
        }
        Object.assign(fields, r.dateStyle ? DATE_STYLES[r.dateStyle] : {}, r.timeStyle ? TIME_STYLES[r.timeStyle] : {});
      } else {
        const hasDate = ["weekday", "year", "month", "day"].some((name) => name in fields);
        const hasTime = ["dayPeriod", "hour", "minute", "second"].some((name) => name in fields) || fractional !== undefined;
        const needed = defaults === "date" ? !hasDate : defaults === "time" ? !hasTime : !hasDate && !hasTime;
        if (needed) {
          if (defaults !== "time") Object.assign(fields, { year: "numeric", month: "numeric", day: "numeric" });
          if (defaults === "time" || defaults === "all") Object.assign(fields, { hour: "numeric", minute: "numeric", second: "numeric" });
        }
      }
      if (fractional !== undefined) r.fractionalSecondDigits = fractional;
      r.fields = fields;
      this.#r = r;
    }
    static supportedLocalesOf(list) {
      return supportedLocalesOf(list);
    }
    get format() {
      return (date) => join(this.formatToParts(date));
    }
    formatToParts(value) {
      const ms = value === undefined ? Date.now() : Number(value instanceof Date ? value.getTime() : value);
      if (!Number.isFinite(ms)) throw new RangeError("Invalid time value");
      const r = this.#r;
      let seconds = 0;
      let abbreviation = "";
      if (r.timeZone !== "UTC") {
        const found = native.zoneOffset(ms, r.timeZone);
        if (found !== null) [seconds, abbreviation] = found;
      }
      const local = new Date(ms + seconds * 1000);
      const f = r.fields;
      const pad = (n, style) => (style === "2-digit" ? String(n).padStart(2, "0").slice(-2) : String(n));
      const date = [];
      const month = local.getUTCMonth();
      const weekday = f.weekday && { type: "weekday", value: f.weekday === "long" ? WEEKDAYS[local.getUTCDay()] : f.weekday === "short" ? WEEKDAYS[local.getUTCDay()].slice(0, 3) : WEEKDAYS[local.getUTCDay()][0] };
      const day = f.day && { type: "day", value: pad(local.getUTCDate(), f.day) };
      const fullYear = local.getUTCFullYear();
      const year = f.year && { type: "year", value: f.year === "2-digit" ? String(Math.abs(fullYear) % 100).padStart(2, "0") : String(fullYear) };
      const lit = (value) => ({ type: "literal", value });
      const textMonth = f.month === "long" || f.month === "short" || f.month === "narrow";
      if (textMonth) {
        const name = f.month === "long" ? MONTHS[month] : f.month === "short" ? MONTHS[month].slice(0, 3) : MONTHS[month][0];
        if (weekday) date.push(weekday, lit(", "));
        date.push({ type: "month", value: name });
        if (day) date.push(lit(" "), day);
        if (year) date.push(lit(day ? ", " : " "), year);
      } else if (f.month) {
        if (weekday) date.push(weekday, lit(", "));
        const numeric = [{ type: "month", value: pad(month + 1, f.month) }, day, year].filter(Boolean);
        numeric.forEach((part, i) => {
          if (i > 0) date.push(lit("/"));
          date.push(part);
        });
      } else {
        const loose = [day, weekday, year].filter(Boolean);
        loose.forEach((part, i) => {
          if (i > 0) date.push(lit(" "));
          date.push(part);
        });
      }
      const time = [];
      const h = local.getUTCHours();
      const twelve = r.hourCycle === "h12" || r.hourCycle === "h11";
      if (f.hour) {
        let hour = h;
        if (r.hourCycle === "h12") hour = h % 12 === 0 ? 12 : h % 12;
        else if (r.hourCycle === "h11") hour = h % 12;
        else if (r.hourCycle === "h24") hour = h === 0 ? 24 : h;
        time.push({ type: "hour", value: twelve ? pad(hour, f.hour) : String(hour).padStart(2, "0") });
      }
      if (f.minute) {
        if (time.length) time.push(lit(":"));
        time.push({ type: "minute", value: f.hour || f.second ? String(local.getUTCMinutes()).padStart(2, "0") : pad(local.getUTCMinutes(), f.minute) });
      }
      if (f.second) {
        if (time.length) time.push(lit(":"));
        time.push({ type: "second", value: f.minute ? String(local.getUTCSeconds()).padStart(2, "0") : pad(local.getUTCSeconds(), f.second) });
      }
      if (r.fractionalSecondDigits !== undefined) {
        if (time.length) time.push(lit("."));
        time.push({ type: "fractionalSecond", value: String(local.getUTCMilliseconds()).padStart(3, "0").slice(0, r.fractionalSecondDigits) });
      }
      if (f.hour && twelve) time.push(lit(" "), { type: "dayPeriod", value: h < 12 ? "AM" : "PM" });
      if (f.timeZoneName) {
        if (time.length || date.length) time.push(lit(" "));
        time.push({ type: "timeZoneName", value: zoneName(f.timeZoneName, r.timeZone, seconds, abbreviation) });
      }
      if (date.length === 0) return time;
      if (time.length === 0) return date;
      const at = f.month === "long" && (r.dateStyle === undefined || r.dateStyle === "full" || r.dateStyle === "long");
      return [...date, lit(at ? " at " : ", "), ...time];
    }
    formatRange(start, end) {
      const a = this.format(start);
      const b = this.format(end);
      return a === b ? a : `${a} – ${b}`;
    }
    resolvedOptions() {
      const r = this.#r;
      const out = { locale: LOCALE, calendar: "gregory", numberingSystem: "latn", timeZone: r.timeZone };
      if (r.fields.hour) Object.assign(out, { hourCycle: r.hourCycle, hour12: r.hourCycle === "h12" || r.hourCycle === "h11" });
      if (r.dateStyle !== undefined || r.timeStyle !== undefined) {
        if (r.dateStyle !== undefined) out.dateStyle = r.dateStyle;
        if (r.timeStyle !== undefined) out.timeStyle = r.timeStyle;
        return out;
      }
      for (const name of Object.keys(COMPONENTS)) if (r.fields[name] !== undefined) out[name] = r.fields[name];
      if (r.fractionalSecondDigits !== undefined) out.fractionalSecondDigits = r.fractionalSecondDigits;
      return out;
    }
    get [Symbol.toStringTag]() {
      return "Intl.DateTimeFormat";
    }
  }

  // --- lists and relative times ----------------------------------------------------------

  class ListFormat {
    #type;
    #style;
    constructor(locale, opts) {
      locales(locale);
      const o = options(opts);
      this.#type = pick(o, "type", ["conjunction", "disjunction", "unit"], "conjunction");
      this.#style = pick(o, "style", ["long", "short", "narrow"], "long");
    }
    format(list) {
      return join(this.formatToParts(list));
    }
    formatToParts(list) {
      const items = Array.from(list, (item) => {
        if (typeof item !== "string") throw new TypeError("Intl.ListFormat: every item must be a string");
        return { type: "element", value: item };
      });
      const word = this.#type === "conjunction" ? (this.#style === "long" ? "and" : "&") : this.#type === "disjunction" ? "or" : null;
      if (this.#type === "conjunction" && this.#style === "narrow") {
        return items.flatMap((item, i) => (i === 0 ? [item] : [{ type: "literal", value: ", " }, item]));
      }
      const out = [];
      items.forEach((item, i) => {
        if (i > 0) {
          const last = i === items.length - 1;
          const separator = word === null ? (this.#style === "narrow" ? " " : ", ") : last ? (items.length === 2 ? ` ${word} ` : `, ${word} `) : ", ";
          out.push({ type: "literal", value: separator });
        }
        out.push(item);
      });
      return out;
    }
    resolvedOptions() {
      return { locale: LOCALE, type: this.#type, style: this.#style };
    }
  }

  const RELATIVE_UNITS = ["year", "quarter", "month", "week", "day", "hour", "minute", "second"];
  class RelativeTimeFormat {
    #numeric;
    #style;
    #number = new NumberFormat(LOCALE);
    constructor(locale, opts) {
      locales(locale);
      const o = options(opts);
      this.#numeric = pick(o, "numeric", ["always", "auto"], "always");
      this.#style = pick(o, "style", ["long", "short", "narrow"], "long");
    }
    format(value, unit) {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new RangeError("Invalid number value");
      const name = String(unit).replace(/s$/, "");
      if (!RELATIVE_UNITS.includes(name)) throw new RangeError(`Invalid unit argument for format() '${String(unit).slice(0, 16)}'`);
      if (this.#numeric === "auto") {
        const words = { day: ["yesterday", "today", "tomorrow"], year: ["last year", "this year", "next year"], month: ["last month", "this month", "next month"], week: ["last week", "this week", "next week"], quarter: ["last quarter", "this quarter", "next quarter"] };
        if (name in words && [-1, 0, 1].includes(n) && !Object.is(n, -0)) return words[name][n + 1];
        if (name === "second" && n === 0) return "now";
      }
      const amount = this.#number.format(Math.abs(n));
      const plural = amount === "1" ? name : `${name}s`;
      return n < 0 || Object.is(n, -0) ? `${amount} ${plural} ago` : `in ${amount} ${plural}`;
    }
    resolvedOptions() {
      return { locale: LOCALE, style: this.#style, numeric: this.#numeric, numberingSystem: "latn" };
    }
  }

  const Intl = {
    DateTimeFormat,
    NumberFormat,
    PluralRules,
    Collator,
    ListFormat,
    RelativeTimeFormat,
    getCanonicalLocales: (list) => locales(list),
    supportedValuesOf(key) {
      if (key === "timeZone") return ["UTC"];
      if (key === "currency") return Object.keys(CURRENCY_SYMBOLS).sort();
      if (key === "unit") return Object.keys(UNITS).sort();
      throw new RangeError(`Invalid key : ${String(key).slice(0, 16)}`);
    },
  };
  Object.defineProperty(Intl, Symbol.toStringTag, { value: "Intl" });

  // What Date, Number, BigInt and String's locale methods call.
  function dateString(date, locale, opts, defaults) {
    if (Number.isNaN(date.getTime())) return "Invalid Date";
    return new DateTimeFormat(locale, opts, defaults).format(date);
  }
  const locale = {
    date: (date, l, o) => dateString(date, l, o, "all"),
    dateOnly: (date, l, o) => dateString(date, l, o, "date"),
    timeOnly: (date, l, o) => dateString(date, l, o, "time"),
    number: (n, l, o) => new NumberFormat(l, o).format(n),
    compare: (a, b, l, o) => new Collator(l, o).compare(a, b),
  };
  return { Intl, locale };
})
