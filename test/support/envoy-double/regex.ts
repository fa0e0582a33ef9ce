/**
 * PURE: Envoy's regex dialects → JavaScript RegExp.
 * - `re2ToJs`: Google RE2 (admin `filter=`, `safe_regex` matchers);
 * - the same function serves the ECMAScript std::regex Envoy uses for `stats_tags` (the only
 *   difference that matters here is POSIX bracket classes such as `[_.[:digit:]]`).
 * Throws a SyntaxError for a pattern JS cannot compile.
 */
const POSIX: Record<string, string> = {
  alnum: 'A-Za-z0-9',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: ' \\t',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\s',
  upper: 'A-Z',
  word: '\\w',
  xdigit: '0-9A-Fa-f',
};

export function re2ToJs(pattern: string, extraFlags = ''): RegExp {
  let flags = extraFlags;
  let src = pattern;
  // Leading inline flags `(?i)`, `(?s)`, `(?is)`.
  const lead = /^\(\?([ismU]+)\)/.exec(src);
  if (lead) {
    for (const f of lead[1] as string) if ((f === 'i' || f === 's' || f === 'm') && !flags.includes(f)) flags += f;
    src = src.slice(lead[0].length);
  }
  src = src
    .replace(/\[:(\w+):\]/g, (all, name: string) => POSIX[name] ?? all)
    .replace(/\(\?P</g, '(?<')
    .replace(/\\A/g, '^')
    .replace(/\\z/g, '$');
  return new RegExp(src, flags);
}
