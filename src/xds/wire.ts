/**
 * PURE: just enough of the protobuf wire format to forward xDS messages without decoding
 * them. `scanFields` walks the top-level fields of one message (skipping the payload of every
 * field, so a 5 MB DiscoveryResponse costs one pass over its field headers and no copies);
 * the helpers read a string field, count a repeated field, and rebuild a message with some
 * fields replaced. Malformed input throws `WireError`; nothing here allocates per resource.
 */
import { WireError } from '../errors.js';

export { WireError } from '../errors.js';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** One top-level field occurrence: `[start, end)` covers tag + payload; `[valueStart, end)` the payload. */
export interface WireField {
  field: number;
  wireType: number;
  start: number;
  valueStart: number;
  end: number;
}

/** Reads a varint at `pos` (up to 64 bits; values above 2^53 lose precision, which only matters for skipping). */
export function readVarint(buf: Uint8Array, pos: number): { value: number; next: number } {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) throw new WireError('truncated varint');
    const b = buf[pos + i] as number;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return { value, next: pos + i + 1 };
    mul *= 128;
  }
  throw new WireError('varint longer than 10 bytes');
}

export function encodeVarint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Every top-level field of one message, in wire order. Groups (wire types 3/4) are rejected. */
export function scanFields(buf: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const tag = readVarint(buf, pos);
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (field === 0) throw new WireError(`invalid field number 0 at offset ${start}`);
    pos = tag.next;
    const valueStart = pos;
    switch (wireType) {
      case WIRE_VARINT:
        pos = readVarint(buf, pos).next;
        break;
      case WIRE_I64:
        pos += 8;
        break;
      case WIRE_I32:
        pos += 4;
        break;
      case WIRE_LEN: {
        const len = readVarint(buf, pos);
        pos = len.next + len.value;
        fields.push({ field, wireType, start, valueStart: len.next, end: pos });
        if (pos > buf.length) throw new WireError(`field ${field} overruns the message`);
        continue;
      }
      default:
        throw new WireError(`unsupported wire type ${wireType} (field ${field})`);
    }
    if (pos > buf.length) throw new WireError(`field ${field} overruns the message`);
    fields.push({ field, wireType, start, valueStart, end: pos });
  }
  return fields;
}

/** The last occurrence of a string field (proto3 semantics: last one wins), or '' when absent. */
export function stringField(buf: Uint8Array, fields: readonly WireField[], field: number): string {
  let out = '';
  for (const f of fields) {
    if (f.field === field && f.wireType === WIRE_LEN) out = Buffer.from(buf.buffer, buf.byteOffset + f.valueStart, f.end - f.valueStart).toString('utf8');
  }
  return out;
}

export function countField(fields: readonly WireField[], field: number): number {
  let n = 0;
  for (const f of fields) if (f.field === field) n++;
  return n;
}

export function hasField(fields: readonly WireField[], field: number): boolean {
  return fields.some((f) => f.field === field);
}

/**
 * The merged bytes of an embedded-message field: protobuf merges repeated occurrences of a
 * singular message field, and concatenating their payloads is exactly that merge.
 */
export function messageField(buf: Uint8Array, fields: readonly WireField[], field: number): Buffer | undefined {
  const parts = fields.filter((f) => f.field === field && f.wireType === WIRE_LEN).map((f) => buf.subarray(f.valueStart, f.end));
  return parts.length === 0 ? undefined : Buffer.concat(parts);
}

/** A length-delimited field (tag + length + payload). */
export function lenField(field: number, payload: Uint8Array): Buffer {
  return Buffer.concat([encodeVarint(field * 8 + WIRE_LEN), encodeVarint(payload.length), payload]);
}

/** The message with every occurrence of `drop` removed and `append` added at the end. */
export function rewriteFields(buf: Uint8Array, fields: readonly WireField[], drop: ReadonlySet<number>, append: readonly Uint8Array[] = []): Buffer {
  const parts: Uint8Array[] = [];
  let runStart = 0;
  for (const f of fields) {
    if (!drop.has(f.field)) continue;
    if (f.start > runStart) parts.push(buf.subarray(runStart, f.start));
    runStart = f.end;
  }
  if (runStart < buf.length) parts.push(buf.subarray(runStart));
  return Buffer.concat([...parts, ...append]);
}
