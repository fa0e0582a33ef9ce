/** The template functions of the subset: names, argument counts, and Go's JSEscapeString. */

export const SUPPORTED_FUNCTIONS = ['and', 'or', 'not', 'eq', 'ne', 'js', 'toJSON', 'toJson'] as const;
export type FuncName = (typeof SUPPORTED_FUNCTIONS)[number];

export const SUPPORTED_HINT =
  'supported: if, else if, else, range, end, {{/* comments */}}, {{- -}} trimming, ' +
  `variables declared by range; functions ${SUPPORTED_FUNCTIONS.join(', ')}`;

/** Minimum and maximum argument counts (max -1 = variadic). */
export const ARITY: Record<FuncName, [number, number]> = {
  and: [1, -1],
  or: [1, -1],
  not: [1, 1],
  eq: [2, -1],
  ne: [2, 2],
  js: [0, -1],
  toJSON: [1, 1],
  toJson: [1, 1],
};

/** Go's template.JSEscapeString. */
export function jsEscapeString(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    switch (ch) {
      case '\\':
        out += '\\\\';
        continue;
      case "'":
        out += "\\'";
        continue;
      case '"':
        out += '\\"';
        continue;
      case '<':
        out += '\\u003C';
        continue;
      case '>':
        out += '\\u003E';
        continue;
      case '&':
        out += '\\u0026';
        continue;
      case '=':
        out += '\\u003D';
        continue;
    }
    if (c < 0x20) out += `\\u00${c.toString(16).toUpperCase().padStart(2, '0')}`;
    else if (c < 0x80 || /^[\p{L}\p{M}\p{N}\p{P}\p{S}\u0020]$/u.test(ch)) out += ch;
    else out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return out;
}
