/**
 * PURE: the gRPC-over-HTTP/2 framing the proxy needs to forward streams itself (gRPC's
 * PROTOCOL-HTTP2: each message is a 1-byte compressed flag, a 4-byte big-endian length, then the
 * payload), the `grpc-message` percent-encoding, and status names.
 *
 * `MessageReader` reassembles whole messages (for Envoy's small requests, which the proxy reads);
 * `FrameScanner` only follows message boundaries in a byte stream it never keeps (for responses,
 * forwarded chunk by chunk as they arrive).
 */
import { FramingError } from '../errors.js';

export const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNIMPLEMENTED: 12,
  RESOURCE_EXHAUSTED: 8,
} as const;

export function statusName(code: number): string {
  return GRPC_STATUS_NAMES[code] ?? String(code);
}

export { FramingError } from '../errors.js';

/** One uncompressed gRPC message frame. */
export function frameMessage(payload: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = 0;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Reassembles whole messages from DATA chunks. Compressed messages are rejected (the proxy never negotiates compression). */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxMessageBytes = 64 * 1024 * 1024) {}

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.buffered < 5) return out;
      const head = this.peek(5);
      if (head[0] !== 0) throw new FramingError('compressed gRPC messages are not supported');
      const len = head.readUInt32BE(1);
      if (len > this.maxMessageBytes) throw new FramingError(`gRPC message of ${len} bytes exceeds ${this.maxMessageBytes}`);
      if (this.buffered < 5 + len) return out;
      const all = this.take(5 + len);
      out.push(all.subarray(5));
    }
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = joined.length > n ? [joined.subarray(n)] : [];
    this.buffered -= n;
    return joined.subarray(0, n);
  }
}

/**
 * Follows message boundaries across chunks without keeping payload bytes. `push` returns the
 * sizes of the messages completed by this chunk; `started` tells whether a message is under way.
 */
export class FrameScanner {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  private remaining = 0;
  private current = 0;

  push(chunk: Uint8Array): number[] {
    const done: number[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - pos);
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0) done.push(this.current);
        continue;
      }
      const n = Math.min(5 - this.headerFill, chunk.length - pos);
      this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
      this.headerFill += n;
      pos += n;
      if (this.headerFill === 5) {
        this.headerFill = 0;
        this.current = this.header.readUInt32BE(1);
        this.remaining = this.current;
        if (this.current === 0) done.push(0);
      }
    }
    return done;
  }

  /** True between the first byte of a message and its last. */
  get inMessage(): boolean {
    return this.headerFill > 0 || this.remaining > 0;
  }
}

/** gRPC's `grpc-message` encoding: percent-encode bytes outside 0x20–0x7E and `%`. */
export function encodeGrpcMessage(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  let out = '';
  for (const b of bytes) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeGrpcMessage(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; ) {
    if (text[i] === '%' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    const cp = text.codePointAt(i) as number;
    const ch = String.fromCodePoint(cp);
    for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
    i += ch.length;
  }
  return Buffer.from(bytes).toString('utf8');
}
