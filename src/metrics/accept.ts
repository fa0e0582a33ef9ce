/**
 * PURE content negotiation for the merged metrics endpoint (SPEC §6.2):
 * - `rewriteAccept` turns the scraper's `Accept` into the one sent to Envoy (text only, never
 *   protobuf) or to the application (text or OpenMetrics);
 * - `responseContentType` picks the merged response's Content-Type from the application's.
 */

export const FMT_TEXT = 'text/plain; version=0.0.4; charset=utf-8';
export const FMT_OPENMETRICS_0_0_1 = 'application/openmetrics-text; version=0.0.1; charset=utf-8';
export const FMT_OPENMETRICS_1_0_0 = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Sent when the incoming Accept is absent, unparsable, or keeps nothing. */
export const DEFAULT_ACCEPT = 'text/plain;version=0.0.4';

export type AcceptTarget = 'envoy' | 'application';

/** At most this many media types are forwarded, so `q=0.N` stays a single digit. */
const MAX_ACCEPT_TYPES = 9;

export interface MediaType {
  /** Lower-cased `type/subtype` (or a bare `*`). */
  type: string;
  /** Lower-cased parameter names → raw values (quotes removed). */
  params: Map<string, string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses one media range like Go's `mime.ParseMediaType`; undefined when malformed. */
export function parseMediaType(text: string): MediaType | undefined {
  const semi = text.indexOf(';');
  const typePart = (semi < 0 ? text : text.slice(0, semi)).trim().toLowerCase();
  const slash = typePart.indexOf('/');
  if (slash < 0) {
    if (!TOKEN.test(typePart)) return undefined;
  } else if (!TOKEN.test(typePart.slice(0, slash)) || !TOKEN.test(typePart.slice(slash + 1))) {
    return undefined;
  }
  const params = new Map<string, string>();
  let rest = semi < 0 ? '' : text.slice(semi);
  while (rest.length > 0) {
    rest = rest.replace(/^[\s;]+/, '');
    if (rest === '') break;
    const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+\-.^_`|~0-9A-Za-z]+))\s*(?=;|$)/.exec(rest);
    if (!m) return undefined;
    const name = (m[1] as string).toLowerCase();
    if (params.has(name)) return undefined;
    params.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] as string));
    rest = rest.slice(m[0].length);
  }
  return { type: typePart, params };
}

/** Formats like Go's `mime.FormatMediaType`: `type; a=1; b="x y"`, parameters sorted by name. */
export function formatMediaType(mt: MediaType): string {
  const names = [...mt.params.keys()].sort();
  let out = mt.type;
  for (const name of names) {
    const value = mt.params.get(name) as string;
    out += `; ${name}=${TOKEN.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`}`;
  }
  return out;
}

/**
 * The Accept header to send to `target`. Keeps only the media types the target may answer
 * with (Envoy: `text/plain`, `text/*`; the app also `application/openmetrics-text`), maps
 * `*`/`*\/*` to text 0.0.4 and (app only) `application/*` to OpenMetrics 0.0.1, drops the
 * incoming `q`, removes duplicates, and re-ranks them `q=0.N … q=0.1` in their original
 * order. Falls back to `DEFAULT_ACCEPT` on a parse failure or an empty result.
 */
export function rewriteAccept(accept: string | undefined, target: AcceptTarget): string {
  if (accept === undefined || accept.trim() === '') return DEFAULT_ACCEPT;
  const kept: MediaType[] = [];
  const seen = new Set<string>();
  for (const item of accept.split(',')) {
    if (item.trim() === '') continue;
    const parsed = parseMediaType(item);
    if (!parsed) return DEFAULT_ACCEPT;
    parsed.params.delete('q');
    let mt: MediaType | undefined;
    if (parsed.type === '*' || parsed.type === '*/*') {
      mt = { type: 'text/plain', params: new Map([['version', '0.0.4']]) };
    } else if (parsed.type === 'application/*') {
      if (target === 'application') mt = { type: 'application/openmetrics-text', params: new Map([['version', '0.0.1']]) };
    } else if (parsed.type === 'text/plain' || parsed.type === 'text/*') {
      mt = parsed;
    } else if (parsed.type === 'application/openmetrics-text' && target === 'application') {
      mt = parsed;
    }
    if (!mt) continue;
    const key = formatMediaType(mt);
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(mt);
    if (kept.length === MAX_ACCEPT_TYPES) break;
  }
  if (kept.length === 0) return DEFAULT_ACCEPT;
  return kept
    .map((mt, i) => {
      const params = new Map(mt.params);
      params.set('q', `0.${kept.length - i}`);
      return formatMediaType({ type: mt.type, params });
    })
    .join(',');
}

/** The merged response's Content-Type, following the application's (Istio's negotiateMetricsFormat). */
export function responseContentType(appContentType: string | undefined): string {
  if (appContentType === undefined) return FMT_TEXT;
  const mt = parseMediaType(appContentType);
  if (mt?.type === 'application/openmetrics-text') {
    const version = mt.params.get('version');
    if (version === '1.0.0') return FMT_OPENMETRICS_1_0_0;
    if (version === '0.0.1' || version === undefined || version === '') return FMT_OPENMETRICS_0_0_1;
  }
  return FMT_TEXT;
}

export function isOpenMetrics(contentType: string): boolean {
  return contentType.startsWith('application/openmetrics-text');
}
