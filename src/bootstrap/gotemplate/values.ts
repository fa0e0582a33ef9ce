/** Go values as the executor sees JS data: kinds, truth, ordering, printing, json.Marshal. */
import { marshalFloat, marshalString } from '../../go/json.js';
import { formatFloat } from '../../go/strconv.js';

/** Go's invalid reflect.Value: a missing map key, or a nil interface at the end of a pipeline. */
export const MISSING: unique symbol = Symbol('no value');
/** "No final value" for the first command of a pipeline. */
export const NO_FINAL: unique symbol = Symbol('no final');

/** A float64 constant written in the template (`1.0`, `1e6`), printed like Go's float. */
export class GoFloat {
  constructor(readonly value: number) {}
}

export function isMap(v: unknown): v is Record<string, unknown> | Map<unknown, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoFloat);
}

/** The entries of a map in Go's iteration order for `range` (sorted keys). */
export function sortedEntries(m: Record<string, unknown> | Map<unknown, unknown>): [unknown, unknown][] {
  const entries: [unknown, unknown][] = m instanceof Map ? [...m.entries()] : Object.entries(m).filter(([, v]) => v !== undefined);
  return entries.sort(([a], [b]) => compareKeys(a, b));
}

function compareKeys(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return compareCodePoints(String(a), String(b));
}

/** UTF-8 byte order (= code point order), Go's string order. */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = (x.value as string).codePointAt(0) as number;
    const cy = (y.value as string).codePointAt(0) as number;
    if (cx !== cy) return cx - cy;
  }
}

export function norm(v: unknown): unknown {
  return v === null || v === undefined ? MISSING : v;
}

/** Go's isTrue: zero values and empty containers are false. */
export function truth(v: unknown): boolean {
  if (v === MISSING || v === null || v === undefined) return false;
  if (v instanceof GoFloat) return v.value !== 0;
  switch (typeof v) {
    case 'string':
      return v.length > 0;
    case 'boolean':
      return v;
    case 'number':
      return v !== 0;
    case 'bigint':
      return v !== 0n;
  }
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  if (typeof v === 'object') return Object.values(v).some((x) => x !== undefined);
  return true;
}

export type Kind = 'bool' | 'int' | 'float' | 'string' | 'invalid' | 'other';

export function basicKind(v: unknown): Kind {
  if (v === MISSING) return 'invalid';
  if (v instanceof GoFloat) return 'float';
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'string':
      return 'string';
    case 'bigint':
      return 'int';
    case 'number':
      return Number.isSafeInteger(v) ? 'int' : 'float';
  }
  return 'other';
}

export function goTypeName(v: unknown): string {
  if (v === null) return 'nil';
  const k = basicKind(v);
  if (k === 'float') return 'float64';
  if (k !== 'other' && k !== 'invalid') return k;
  if (Array.isArray(v)) return '[]interface {}';
  if (isMap(v)) return 'map[string]interface {}';
  return typeof v;
}

/** The text Go's fmt.Print writes for a printable value; undefined when not printable here. */
export function printable(v: unknown): string | undefined {
  if (v instanceof GoFloat) return formatFloat(v.value);
  switch (typeof v) {
    case 'string':
      return v;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isSafeInteger(v) ? String(v) : formatFloat(v);
  }
  return undefined;
}

/** Go's json.Marshal of a value; undefined when Go fails with "unsupported value" (NaN, ±Inf) or type. */
export function goJson(v: unknown): string | undefined {
  if (v === MISSING || v === null || v === undefined) return 'null';
  if (v instanceof GoFloat) return marshalFloat(v.value);
  switch (typeof v) {
    case 'string':
      return marshalString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return marshalFloat(v);
    case 'bigint':
      return v.toString();
    case 'object': {
      const parts: string[] = [];
      if (Array.isArray(v)) {
        for (const x of v) {
          const j = goJson(x);
          if (j === undefined) return undefined;
          parts.push(j);
        }
        return `[${parts.join(',')}]`;
      }
      for (const [k, x] of sortedEntries(v as Record<string, unknown> | Map<unknown, unknown>)) {
        const j = goJson(x);
        if (j === undefined) return undefined;
        parts.push(`${marshalString(String(k))}:${j}`);
      }
      return `{${parts.join(',')}}`;
    }
  }
  return undefined; // json: unsupported type
}
