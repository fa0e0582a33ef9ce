/**
 * PURE: the scalar encodings of Go's `encoding/json.Marshal` (Go >= 1.22), where they differ
 * from `JSON.stringify`: strings are HTML-safe (`<`, `>`, `&`, U+2028, U+2029 as `\u00XX`),
 * lone surrogates become U+FFFD, and non-finite floats cannot be encoded.
 */

/** json.Marshal of a string. */
export function marshalString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    switch (c) {
      case 0x22:
        out += '\\"';
        continue;
      case 0x5c:
        out += '\\\\';
        continue;
      case 0x08:
        out += '\\b';
        continue;
      case 0x0c:
        out += '\\f';
        continue;
      case 0x0a:
        out += '\\n';
        continue;
      case 0x0d:
        out += '\\r';
        continue;
      case 0x09:
        out += '\\t';
        continue;
      case 0x3c: // HTML-safe escaping is on in json.Marshal
      case 0x3e:
      case 0x26:
      case 0x2028:
      case 0x2029:
        out += `\\u${c.toString(16).padStart(4, '0')}`;
        continue;
    }
    if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd'; // lone surrogate: invalid UTF-8 in Go
    else out += ch;
  }
  return `${out}"`;
}

/** json.Marshal of a float64; undefined for NaN and ±Inf (Go's "json: unsupported value"). */
export function marshalFloat(n: number): string | undefined {
  if (!Number.isFinite(n)) return undefined;
  // Go's float encoding (shortest, exponent outside [1e-6, 1e21)) is ECMAScript's Number#toString.
  return Object.is(n, -0) ? '-0' : String(n);
}
