/**
 * PURE helpers for the Prometheus text (0.0.4) and OpenMetrics exposition formats: which
 * sample names belong to which family type, and the strict line check used to reject a
 * garbage application body before any of it is emitted (run by the merger, `validate`).
 */

/** Family types of both formats (`untyped` is text 0.0.4's name for OpenMetrics' `unknown`). */
export type FamilyType =
  | 'counter'
  | 'gauge'
  | 'histogram'
  | 'gaugehistogram'
  | 'summary'
  | 'info'
  | 'stateset'
  | 'unknown'
  | 'untyped';

/** Suffixes a sample name may add to its family name, per family type. */
const SUFFIXES: Record<FamilyType, readonly string[]> = {
  counter: ['_total', '_created'],
  gauge: [],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  gaugehistogram: ['_bucket', '_gsum', '_gcount'],
  summary: ['_sum', '_count', '_created'],
  info: ['_info'],
  stateset: [],
  unknown: [],
  untyped: [],
};

export const ALL_SUFFIXES: readonly string[] = ['_total', '_created', '_bucket', '_sum', '_count', '_gsum', '_gcount', '_info'];

/** The sample-name suffixes of a family of `type` (all known suffixes when the type is not known yet). */
export function suffixesFor(type: FamilyType | undefined): readonly string[] {
  return type === undefined ? ALL_SUFFIXES : SUFFIXES[type];
}

export function parseFamilyType(text: string): FamilyType | undefined {
  return Object.hasOwn(SUFFIXES, text) ? (text as FamilyType) : undefined;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const QUOTED = '"(?:[^"\\\\\\n]|\\\\.)*"';
const LABEL = `(?:[a-zA-Z_][a-zA-Z0-9_]*|${QUOTED})[ \\t]*=[ \\t]*${QUOTED}`;
const LABELS = `\\{[ \\t]*(?:(?:${LABEL}|${QUOTED})[ \\t]*(?:,[ \\t]*(?:${LABEL}|${QUOTED})[ \\t]*)*,?[ \\t]*)?\\}`;
/** Go's ParseFloat: special values are case-insensitive (prom-client writes `Nan`). */
const VALUE = '[-+]?(?:[0-9]+\\.?[0-9]*(?:[eE][-+]?[0-9]+)?|\\.[0-9]+(?:[eE][-+]?[0-9]+)?|0[xX][0-9a-fA-F]+|[Ii][Nn][Ff](?:[Ii][Nn][Ii][Tt][Yy])?|[Nn][Aa][Nn])';
/** `name{labels} value [timestamp] [# exemplar]`, or `{"utf8.name",labels} value …`. */
const SAMPLE_RE = new RegExp(`^(?:${NAME}(?:${LABELS})?|${LABELS})[ \\t]+${VALUE}(?:[ \\t]+\\S.*)?[ \\t]*$`);
const DESCRIPTOR_RE = new RegExp(`^#[ \\t]+(?:HELP|TYPE|UNIT)[ \\t]+(?:${NAME}|${QUOTED})(?:[ \\t].*)?$`);

/** True when `line` (without its newline) is a sample, a comment, or empty in either format. */
export function isValidExpositionLine(line: string): boolean {
  if (line === '' || /^[ \t]*$/.test(line)) return true;
  if (line.startsWith('#')) {
    if (/^#[ \t]+(?:HELP|TYPE|UNIT)\b/.test(line)) return DESCRIPTOR_RE.test(line);
    return true;
  }
  return SAMPLE_RE.test(line);
}

/** The problem report for line `lineNo` (1-based; `line` scanned as latin1, without its newline). */
export function describeInvalidLine(lineNo: number, line: string): string {
  const shown = Buffer.from(line.length > 80 ? line.slice(0, 80) : line, 'latin1').toString('utf8');
  return `line ${lineNo} is not a valid exposition line: ${JSON.stringify(shown)}${line.length > 80 ? '…' : ''}`;
}
