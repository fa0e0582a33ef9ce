/**
 * PURE formatting for the agent's log records (src/log.ts wires them into pino):
 * - `istioTime()`: the record time as Istio's agent writes it, RFC 3339 UTC with microseconds
 *   (`2006-01-02T15:04:05.000000Z`), wall-clock accurate to 1 ms, sub-millisecond digits from
 *   the monotonic clock;
 * - `istioText(record)`: one pino JSON record → Istio's text line
 *   `<time>\t<level>\t[<scope>\t]<msg>[\t<k>=<v> …]\n`. Fields keep pino's order (bindings,
 *   then the call's fields); a key written twice keeps its first position and its last value,
 *   as `JSON.parse` would. Strings print bare, every other value as its JSON text (so a BigInt
 *   keeps all its digits);
 * - `uniqueKeys(record)`: the JSON record with each key once, the same first-position/last-value
 *   rule (pino appends a child's bindings and the call's fields without replacing).
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

/** A record's top-level members: unquoted key → raw JSON value; a repeated key keeps its first position and its last value. */
function members(record: string): { fields: Map<string, string>; count: number } {
  const fields = new Map<string, string>();
  let count = 0;
  // pino writes `{"k":v,…}` with no whitespace; keys and values are scanned, not parsed.
  for (let i = 1; record.charCodeAt(i) === 34 /* " */; count++) {
    const keyEnd = stringEnd(record, i);
    const valueEnd = valueEndAt(record, keyEnd + 1);
    fields.set(unquote(record.slice(i, keyEnd)), record.slice(keyEnd + 1, valueEnd));
    i = valueEnd + 1;
  }
  return { fields, count };
}

export function istioText(record: string): string {
  const { fields } = members(record);
  const text = (raw: string | undefined) => (raw === undefined ? '' : raw.charCodeAt(0) === 34 ? unquote(raw) : raw);
  const level = fields.get('level') ?? '';
  const head = `${text(fields.get('time'))}\t${LEVEL_NAMES[level] ?? level}\t`;
  const scope = text(fields.get('scope'));
  const msg = text(fields.get('msg'));
  let extras = '';
  for (const [key, raw] of fields) {
    if (key !== 'level' && key !== 'time' && key !== 'scope' && key !== 'msg') extras += `${extras ? ' ' : ''}${key}=${text(raw)}`;
  }
  return `${head}${scope ? `${scope}\t` : ''}${msg}${extras ? `\t${extras}` : ''}\n`;
}

/** pino's JSON record with each key once (a child's binding or a call's field replaces an earlier one in place). */
export function uniqueKeys(record: string): string {
  const { fields, count } = members(record);
  if (fields.size === count) return record;
  let out = '';
  for (const [key, raw] of fields) out += `${out ? ',' : '{'}${JSON.stringify(key)}:${raw}`;
  return `${out}}\n`;
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
