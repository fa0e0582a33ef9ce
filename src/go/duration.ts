/**
 * PURE: Go's `time.ParseDuration` and `Duration.String()`, and the protobuf-JSON duration
 * form. Durations are kept as milliseconds (a float: `1.5µs` is 0.0015) everywhere in the config.
 */
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses Go duration syntax (`45s`, `1m30s`, `500ms`, `0`); undefined when invalid. */
export function parseGoDuration(text: string): number | undefined {
  let s = text;
  if (s === '') return undefined;
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  const re = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m) return undefined;
    const [whole, intPart = '', fracPart] = m;
    if (intPart === '' && (fracPart === undefined || fracPart === '')) return undefined;
    const value = Number(`${intPart || '0'}.${fracPart ?? '0'}`);
    total += value * (UNIT_MS[m[3] as string] as number);
    s = s.slice(whole.length);
  }
  return sign * total;
}

/** Protobuf JSON form of a duration: seconds with 0, 3, 6 or 9 fractional digits (`45s`, `0.250s`). */
export function formatProtoDuration(ms: number): string {
  const totalNanos = Math.round(ms * 1e6);
  const sign = totalNanos < 0 ? '-' : '';
  const abs = Math.abs(totalNanos);
  const secs = Math.floor(abs / 1e9);
  const nanos = abs % 1e9;
  if (nanos === 0) return `${sign}${secs}s`;
  let frac = String(nanos).padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${sign}${secs}.${frac}s`;
}

/** Go's `Duration.String()` (used in log messages): `45s`, `1m30s`, `500ms`. */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) {
    if (rest >= 1) return `${sign}${trimNum(rest)}ms`;
    if (rest >= 1e-3) return `${sign}${trimNum(rest * 1e3)}µs`;
    return `${sign}${trimNum(rest * 1e6)}ns`;
  }
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = trimNum(rest / 1000);
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}

function trimNum(n: number): string {
  return String(Number(n.toFixed(9)));
}
