/**
 * A small JSON Schema (2020-12) checker for the keywords the project's schemas use: type
 * (incl. "integer", "null", arrays of types), const, enum, properties, required,
 * additionalProperties (false or a schema), items, oneOf (exactly one), minimum, and
 * `format: date-time` (ISO 8601 UTC). Anything else in a schema is an error, so a schema cannot
 * silently rely on an unchecked keyword. Also lists schema nodes without a `description`.
 */
export type Schema = Record<string, unknown>;

const KNOWN = new Set(['$schema', '$id', 'title', 'description', 'type', 'const', 'enum', 'properties', 'required', 'additionalProperties', 'items', 'oneOf', 'minimum', 'format']);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** Errors (`<json path>: <what>`); empty when `value` conforms. */
export function validate(schema: Schema, value: unknown, at = '$'): string[] {
  const errors: string[] = [];
  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) errors.push(`${at}: schema keyword ${k} is not supported by this checker`);
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    const t = typeOf(value);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return [...errors, `${at}: expected ${types.join('|')}, got ${t}`];
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) errors.push(`${at}: expected ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  if (typeof schema.minimum === 'number' && typeof value === 'number' && value < schema.minimum) errors.push(`${at}: ${value} < ${schema.minimum}`);
  if (schema.format === 'date-time' && typeof value === 'string' && !ISO.test(value)) errors.push(`${at}: not an ISO 8601 UTC time: ${value}`);
  if (Array.isArray(schema.oneOf)) {
    const matches = (schema.oneOf as Schema[]).map((s) => validate(s, value, at));
    const ok = matches.filter((m) => m.length === 0).length;
    if (ok !== 1) errors.push(`${at}: matches ${ok} of oneOf (want 1): ${matches.map((m) => m[0] ?? 'ok').join(' | ')}`);
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in obj)) errors.push(`${at}: missing ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) errors.push(...validate(props[k], v, `${at}.${k}`));
      else if (schema.additionalProperties === false) errors.push(`${at}.${k}: not in the schema (undocumented field)`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...validate(schema.additionalProperties as Schema, v, `${at}.${k}`));
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => errors.push(...validate(schema.items as Schema, v, `${at}[${i}]`)));
  return errors;
}

/** Schema nodes (properties, items, additionalProperties, oneOf branches) without a description. */
export function undocumented(schema: Schema, at = '$'): string[] {
  const out: string[] = typeof schema.description === 'string' && schema.description.trim() !== '' ? [] : [at];
  for (const [k, s] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) out.push(...undocumented(s, `${at}.${k}`));
  if (schema.items) out.push(...undocumented(schema.items as Schema, `${at}[]`));
  if (typeof schema.additionalProperties === 'object') out.push(...undocumented(schema.additionalProperties as Schema, `${at}.*`));
  (schema.oneOf as Schema[] | undefined)?.forEach((s, i) => out.push(...undocumented(s, `${at}|${i}`)));
  return out;
}
