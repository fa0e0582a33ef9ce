/**
 * The double's stats store, with Envoy's observable semantics:
 * - a stat rejected by the bootstrap's `stats_config.stats_matcher` is never created (it is a
 *   null stat: updates are accepted and invisible);
 * - a stat is "used" once written (counter added to, gauge set/inc/dec, even to 0); `usedonly`
 *   shows only used stats, otherwise every created stat is shown, at 0 if never written;
 * - `/stats` text is `name: value` lines sorted by name; `filter` is a regex *search*;
 * - `/stats/prometheus` applies tag extraction (`stats_tags`, plus Envoy's default extractors
 *   unless `use_all_default_tags: false`) and renders `# TYPE` families, counters then gauges,
 *   with `{}` for an empty label set (as Envoy does).
 */
import { re2ToJs } from './regex.js';

export type StatKind = 'counter' | 'gauge';

export class Stat {
  value = 0;
  used = false;
  constructor(
    readonly name: string,
    readonly kind: StatKind,
  ) {}
  inc(n = 1): void {
    this.value += n;
    this.used = true;
  }
  dec(n = 1): void {
    this.value = Math.max(0, this.value - n);
    this.used = true;
  }
  set(v: number): void {
    this.value = v;
    this.used = true;
  }
}

export type NameMatcher = (name: string) => boolean;

/** Envoy's `type.matcher.v3.StringMatcher` (exact, prefix, suffix, contains, safe_regex; ignore_case). */
export function compileStringMatcher(m: Record<string, unknown>): NameMatcher {
  const ic = m.ignore_case === true;
  const norm = (s: string): string => (ic ? s.toLowerCase() : s);
  if (typeof m.exact === 'string') {
    const v = norm(m.exact);
    return (s) => norm(s) === v;
  }
  if (typeof m.prefix === 'string') {
    const v = norm(m.prefix);
    return (s) => norm(s).startsWith(v);
  }
  if (typeof m.suffix === 'string') {
    const v = norm(m.suffix);
    return (s) => norm(s).endsWith(v);
  }
  if (typeof m.contains === 'string') {
    const v = norm(m.contains);
    return (s) => norm(s).includes(v);
  }
  const sr = m.safe_regex as { regex?: unknown } | undefined;
  if (sr && typeof sr.regex === 'string') {
    const re = re2ToJs(`^(?:${sr.regex})$`);
    return (s) => re.test(s);
  }
  throw new Error(`invalid StringMatcher: ${JSON.stringify(m)}`);
}

/** `stats_config.stats_matcher` → which stat names get created. */
export function compileStatsMatcher(matcher: unknown): NameMatcher {
  if (!matcher || typeof matcher !== 'object') return () => true;
  const m = matcher as Record<string, unknown>;
  if (m.reject_all === true) return () => false;
  const list = (key: string): NameMatcher[] | undefined => {
    const l = m[key] as { patterns?: unknown } | undefined;
    if (!l) return undefined;
    return Array.isArray(l.patterns) ? l.patterns.map((p) => compileStringMatcher(p as Record<string, unknown>)) : [];
  };
  const inc = list('inclusion_list');
  if (inc) return (name) => inc.some((f) => f(name));
  const exc = list('exclusion_list');
  if (exc) return (name) => !exc.some((f) => f(name));
  return () => true;
}

interface TagExtractor {
  name: string;
  regex?: RegExp;
  fixed?: string;
}

// A subset of Envoy's default tag extractors (source/common/config/well_known_names.cc).
const DEFAULT_TAGS: ReadonlyArray<[string, string]> = [
  ['envoy.cluster_name', '^cluster\\.((.+?)\\.)'],
  ['envoy.listener_address', '^listener\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)'],
  ['envoy.worker_id', '^listener\\..*?\\.worker_((\\d+)\\.)'],
  ['envoy.http_conn_manager_prefix', '^http\\.((.*?)\\.)'],
  ['envoy.response_code', '_rq(_(\\d{3}))$'],
  ['envoy.response_code_class', '_rq(_(\\dxx))$'],
];

export function compileTagExtractors(statsConfig: Record<string, unknown> | undefined, cliTags: readonly string[] = []): TagExtractor[] {
  const out: TagExtractor[] = [];
  const tags = Array.isArray(statsConfig?.stats_tags) ? (statsConfig.stats_tags as Array<Record<string, unknown>>) : [];
  for (const t of tags) {
    const name = String(t.tag_name ?? '');
    if (typeof t.fixed_value === 'string') out.push({ name, fixed: t.fixed_value });
    else if (typeof t.regex === 'string') out.push({ name, regex: re2ToJs(t.regex, 'd') });
  }
  for (const kv of cliTags) {
    const i = kv.indexOf(':');
    if (i > 0) out.push({ name: kv.slice(0, i), fixed: kv.slice(i + 1) });
  }
  if (statsConfig?.use_all_default_tags !== false) {
    for (const [name, re] of DEFAULT_TAGS) if (!out.some((t) => t.name === name)) out.push({ name, regex: re2ToJs(re, 'd') });
  }
  return out;
}

/** Splits a stat name into its tag-extracted name and tags, as Envoy's TagProducer does. */
export function extractTags(name: string, extractors: readonly TagExtractor[]): { name: string; tags: Array<[string, string]> } {
  const tags: Array<[string, string]> = [];
  const cut: Array<[number, number]> = [];
  for (const t of extractors) {
    if (t.fixed !== undefined) {
      tags.push([t.name, t.fixed]);
      continue;
    }
    const m = t.regex?.exec(name);
    if (!m || m[1] === undefined) continue;
    const value = m[2] ?? m[1];
    const idx = m.indices?.[1];
    if (!idx) continue;
    // An extractor whose removal overlaps an earlier one's is skipped (the name was already cut there).
    if (cut.some(([a, b]) => idx[0] < b && a < idx[1])) continue;
    tags.push([t.name, value]);
    cut.push([idx[0], idx[1]]);
  }
  cut.sort((a, b) => a[0] - b[0]);
  let out = '';
  let pos = 0;
  for (const [a, b] of cut) {
    out += name.slice(pos, a);
    pos = b;
  }
  out += name.slice(pos);
  return { name: out, tags };
}

const promName = (s: string): string => s.replace(/[^a-zA-Z0-9_]/g, '_');
const promValue = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export interface RenderQuery {
  usedOnly: boolean;
  filter?: RegExp;
}

export class StatsStore {
  private readonly stats = new Map<string, Stat>();
  /** Called before every render, to refresh computed gauges (uptime, …). */
  beforeRender: () => void = () => undefined;

  constructor(
    private readonly accept: NameMatcher,
    private readonly extractors: readonly TagExtractor[],
  ) {}

  private get(name: string, kind: StatKind): Stat {
    const existing = this.stats.get(name);
    if (existing) return existing;
    const stat = new Stat(name, kind);
    if (this.accept(name)) this.stats.set(name, stat);
    return stat;
  }

  counter(name: string): Stat {
    return this.get(name, 'counter');
  }

  gauge(name: string): Stat {
    return this.get(name, 'gauge');
  }

  /** The value of a stat by name (0 when it does not exist). */
  value(name: string): number {
    return this.stats.get(name)?.value ?? 0;
  }

  resetCounters(): void {
    for (const s of this.stats.values()) if (s.kind === 'counter') s.value = 0;
  }

  select(q: RenderQuery): Stat[] {
    this.beforeRender();
    const out: Stat[] = [];
    for (const s of this.stats.values()) {
      if (q.usedOnly && !s.used) continue;
      if (q.filter && !q.filter.test(s.name)) continue;
      out.push(s);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  renderText(q: RenderQuery): string {
    return this.select(q)
      .map((s) => `${s.name}: ${s.value}\n`)
      .join('');
  }

  renderJson(q: RenderQuery): string {
    return JSON.stringify({ stats: this.select(q).map((s) => ({ name: s.name, value: s.value })) }, null, 2);
  }

  renderPrometheus(q: RenderQuery): string {
    const families = new Map<string, { kind: StatKind; lines: string[] }>();
    for (const s of this.select(q)) {
      const { name, tags } = extractTags(s.name, this.extractors);
      const family = `envoy_${promName(name)}`;
      const key = `${s.kind}:${family}`;
      let f = families.get(key);
      if (!f) {
        f = { kind: s.kind, lines: [] };
        families.set(key, f);
      }
      const labels = tags.map(([k, v]) => `${promName(k)}="${promValue(v)}"`).join(',');
      f.lines.push(`${family}{${labels}} ${s.value}\n`);
    }
    let out = '';
    for (const kind of ['counter', 'gauge'] as const) {
      const names = [...families.entries()].filter(([, f]) => f.kind === kind).sort(([a], [b]) => (a < b ? -1 : 1));
      for (const [key, f] of names) {
        out += `# TYPE ${key.slice(key.indexOf(':') + 1)} ${kind}\n`;
        out += f.lines.sort().join('');
      }
    }
    return out;
  }
}
