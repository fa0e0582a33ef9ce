/**
 * UTC date strings without V8's time-zone machinery.
 *
 * V8 (up to at least the one in Node 20) formats every Date string through one routine that
 * looks up the local time zone's display name first, even for `toISOString()` and
 * `toUTCString()`, whose output never shows it. The first lookup makes ICU build its
 * time-zone-names tables: about 1 MiB of resident memory, for good, in a process whose only Date
 * strings are UTC (log timestamps, and the `Date` header Node's http and http2 servers add to
 * every response through `toUTCString()`).
 *
 * `installUtcDateFormatting()` replaces those two methods with ones that build the same string
 * from the UTC getters, which do not touch the time zone. The output is byte-for-byte V8's for
 * years 0–9999; anything else (NaN, years outside that range, a receiver that is not a Date) goes
 * to the original method, so errors and extended years stay exactly as they were.
 * `Date.prototype.toJSON` calls `toISOString` and follows.
 *
 * Installed by the launcher (bin/pilot-agent.js) before the CLI loads. Measured on Node 24.21
 * (an HTTP server answering 50 requests and 50 `toISOString` calls, RssAnon after a GC): 1.0–1.1
 * MiB less private memory, and each call ~40 % faster (toUTCString 406 → 229 ns, toISOString
 * 485 → 324 ns); on Node 20.20 the memory is the same and the calls are 20–35 % faster.
 */
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);
const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);
const pad4 = (n: number): string => (n < 10 ? `000${n}` : n < 100 ? `00${n}` : n < 1000 ? `0${n}` : `${n}`);

const getUTCFullYear = Date.prototype.getUTCFullYear;

/** V8's `toISOString()` for years 0–9999, or undefined. */
export function utcIsoString(d: Date): string | undefined {
  const y = getUTCFullYear.call(d);
  if (!(y >= 0 && y <= 9999)) return undefined;
  return `${pad4(y)}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}.${pad3(d.getUTCMilliseconds())}Z`;
}

/** V8's `toUTCString()` (the HTTP date format) for years 0–9999, or undefined. */
export function utcHttpString(d: Date): string | undefined {
  const y = getUTCFullYear.call(d);
  if (!(y >= 0 && y <= 9999)) return undefined;
  return `${DAYS[d.getUTCDay()]}, ${pad2(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${pad4(y)} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} GMT`;
}

let installed = false;

/** Idempotent; affects this realm's `Date.prototype` only. */
export function installUtcDateFormatting(): void {
  if (installed) return;
  installed = true;
  const nativeIso = Date.prototype.toISOString;
  const nativeUtc = Date.prototype.toUTCString;
  const methods = {
    toISOString(this: Date): string {
      return (isDate(this) && utcIsoString(this)) || nativeIso.call(this);
    },
    toUTCString(this: Date): string {
      return (isDate(this) && utcHttpString(this)) || nativeUtc.call(this);
    },
  };
  for (const name of ['toISOString', 'toUTCString'] as const) {
    Object.defineProperty(Date.prototype, name, { value: methods[name], writable: true, enumerable: false, configurable: true });
  }
}

function isDate(v: unknown): v is Date {
  try {
    getUTCFullYear.call(v);
    return true;
  } catch {
    return false;
  }
}
