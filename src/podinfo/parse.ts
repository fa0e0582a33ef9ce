/**
 * PURE parser for the kubelet's downward-API files (`labels`, `annotations`):
 * one `key="value"` line per entry, value quoted like Go's `%q` (SPEC §8).
 */

export type PodInfoParse = { ok: true; values: Map<string, string> } | { ok: false; error: string };

/** Parses a whole file; any value that does not unquote rejects the file. */
export function parsePodInfoFile(text: string): PodInfoParse {
  const values = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const raw = line.slice(eq + 1);
    const value = goUnquote(raw);
    if (value === undefined) {
      return { ok: false, error: `line ${i + 1}: value for key ${JSON.stringify(key)} is not a Go-quoted string: ${raw.slice(0, 80)}` };
    }
    values.set(key, value);
  }
  return { ok: true, values };
}

const SIMPLE_ESCAPES: Record<string, string> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
  '"': '"',
};

/**
 * Go's strconv.Unquote for a double-quoted string. Returns undefined when the input
 * is not a valid quoted string. `\x` and octal escapes produce raw bytes, which are
 * then decoded as UTF-8 together with the literal text (as Go strings are bytes).
 */
export function goUnquote(s: string): string | undefined {
  if (s.length < 2 || s[0] !== '"' || s[s.length - 1] !== '"') return undefined;
  const body = s.slice(1, -1);
  const bytes: number[] = [];
  const pushString = (str: string) => {
    for (const b of Buffer.from(str, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length; ) {
    const c = body[i] as string;
    if (c === '"' || c === '\n') return undefined;
    if (c !== '\\') {
      const cp = body.codePointAt(i) as number;
      const ch = String.fromCodePoint(cp);
      pushString(ch);
      i += ch.length;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) return undefined;
    if (e in SIMPLE_ESCAPES) {
      bytes.push((SIMPLE_ESCAPES[e] as string).charCodeAt(0));
      i += 2;
      continue;
    }
    if (e === 'x') {
      const hex = body.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 4;
      continue;
    }
    if (e >= '0' && e <= '7') {
      const oct = body.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const v = parseInt(oct, 8);
      if (v > 255) return undefined;
      bytes.push(v);
      i += 4;
      continue;
    }
    if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const hex = body.slice(i + 2, i + 2 + n);
      if (hex.length !== n || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
      pushString(String.fromCodePoint(cp));
      i += 2 + n;
      continue;
    }
    return undefined;
  }
  return Buffer.from(bytes).toString('utf8');
}
