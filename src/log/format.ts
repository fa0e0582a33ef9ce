/**
 * PURE formatting for the agent's log records (src/log.ts wires them into pino):
 * - `istioTime()`: the record time as Istio's agent writes it, RFC 3339 UTC with microseconds
 *   (`2006-01-02T15:04:05.000000Z`), wall-clock accurate to 1 ms, sub-millisecond digits from
 *   the monotonic clock;
 * - `istioText(record)`: one pino JSON record → Istio's text line
 *   `<time>\t<level>\t[<scope>\t]<msg>[\t<k>=<v> …]\n`. Fields keep pino's order (bindings,
 *   then the call's fields); a key written twice keeps its first position and its last value,
 *   as `JSON.parse` would. Strings print bare, every other value as its JSON text (so a BigInt
 *   keeps all its digits).
 */
const LEVEL_NAMES: Readonly<Record<string, string>> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
/** Wall-clock milliseconds at monotonic 0; re-anchored whenever the two clocks part by 1 ms. */
let origin = Date.now() - monotonicMs();

export function istioTime(): string {
  const wall = Date.now();
  let t = origin + monotonicMs();
  if (t < wall - 1 || t >= wall + 1) {
    origin = wall - monotonicMs();
    t = wall;
  }
  const iso = new Date(t).toISOString();
  return `${iso.slice(0, 23)}${String(Math.floor(t * 1000) % 1000).padStart(3, '0')}Z`;
}

export function istioText(record: string): string {
  let level = '';
  let time = '';
  let scope = '';
  let msg = '';
  const fields = new Map<string, string>();
  // pino writes `{"k":v,…}` with no whitespace; keys and values are scanned, not parsed.
  for (let i = 1; record.charCodeAt(i) === 34 /* " */; ) {
    const keyEnd = stringEnd(record, i);
    const key = unquote(record.slice(i, keyEnd));
    const valueEnd = valueEndAt(record, keyEnd + 1);
    const raw = record.slice(keyEnd + 1, valueEnd);
    const text = raw.charCodeAt(0) === 34 ? unquote(raw) : raw;
    if (key === 'level') level = LEVEL_NAMES[raw] ?? raw;
    else if (key === 'time') time = text;
    else if (key === 'msg') msg = text;
    else if (key === 'scope') scope = text;
    else fields.set(key, text);
    i = valueEnd + 1;
  }
  let extras = '';
  for (const [key, text] of fields) extras += `${extras ? ' ' : ''}${key}=${text}`;
  return `${time}\t${level}\t${scope ? `${scope}\t` : ''}${msg}${extras ? `\t${extras}` : ''}\n`;
}

function unquote(json: string): string {
  return json.includes('\\') ? (JSON.parse(json) as string) : json.slice(1, -1);
}

/** Index just past the JSON string starting at `start` (its opening quote). */
function stringEnd(s: string, start: number): number {
  for (let i = start + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 92 /* \ */) i++;
    else if (c === 34) return i + 1;
  }
  return s.length;
}

/** Index just past the JSON value starting at `start`. */
function valueEndAt(s: string, start: number): number {
  let depth = 0;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      i = stringEnd(s, i) - 1;
      if (depth === 0) return i + 1;
    } else if (c === 123 /* { */ || c === 91 /* [ */) depth++;
    else if (c === 125 /* } */ || c === 93 /* ] */) {
      if (depth === 0) return i;
      if (--depth === 0) return i + 1;
    } else if (c === 44 /* , */ && depth === 0) return i;
  }
  return s.length;
}
