/**
 * PURE: responses of a type the agent consumes itself (Istio's agent-side handlers; here the
 * NDS name table), split out of the response byte stream without giving up cut-through.
 *
 * `ResponseRouter` follows gRPC message boundaries and decides, per message, from its first
 * bytes: the type URL of the first resource's `Any` (serializers write it first) or the
 * response's own `type_url`, whichever is read first. Until then at most `headLimit` bytes of
 * the message are held; a message still undecided at that point, or malformed, is forwarded.
 * Other messages' bytes pass through as they arrive; a consumed message is returned whole.
 *
 * Also the requests the agent writes for such a type on Envoy's stream: the subscription and
 * the ACK/NACK (SotW: version and nonce; Delta: nonce; NACK with `error_detail` INTERNAL).
 */
import { WIRE_LEN, WIRE_VARINT, encodeVarint, lenField, scanFields } from './wire.js';
import { summarizeResponse, type XdsStreamKind } from './messages.js';

/** A type the agent consumes: responses of `typeUrl` are never forwarded to Envoy. */
export interface AgentTypeHandler {
  readonly typeUrl: string;
  /** Applies the first resource's `Any.value`; throws (→ NACK with the message) when it cannot. */
  apply(value: Uint8Array): void;
}

export type Routed = { forward: Buffer } | { consume: Buffer };

/** DiscoveryRequest (sotw) / DeltaDiscoveryRequest (delta) field numbers for the agent's requests. */
const REQ = {
  sotw: { version: 1, typeUrl: 4, nonce: 5, errorDetail: 6 },
  delta: { version: 0, typeUrl: 2, nonce: 6, errorDetail: 7 },
} as const;

export function subscribeRequest(kind: XdsStreamKind, typeUrl: string): Buffer {
  return lenField(REQ[kind].typeUrl, Buffer.from(typeUrl, 'utf8'));
}

/** ACK (no error) or NACK of a consumed response. */
export function ackRequest(kind: XdsStreamKind, typeUrl: string, version: string, nonce: string, error?: string): Buffer {
  const f = REQ[kind];
  const parts: Buffer[] = [];
  if (f.version !== 0 && version !== '') parts.push(lenField(f.version, Buffer.from(version, 'utf8')));
  parts.push(lenField(f.typeUrl, Buffer.from(typeUrl, 'utf8')));
  if (nonce !== '') parts.push(lenField(f.nonce, Buffer.from(nonce, 'utf8')));
  if (error !== undefined) {
    const status = Buffer.concat([encodeVarint(1 * 8 + WIRE_VARINT), encodeVarint(13), lenField(2, Buffer.from(error, 'utf8'))]);
    parts.push(lenField(f.errorDetail, status));
  }
  return Buffer.concat(parts);
}

export interface ConsumedResponse {
  version: string;
  nonce: string;
  /** The `Any.value` bytes of the first resource, if any (Istio's agent types are singletons). */
  first: Uint8Array | undefined;
  resources: number;
}

/** Reads a consumed response; throws WireError when malformed. */
export function readConsumed(kind: XdsStreamKind, msg: Uint8Array): ConsumedResponse {
  const s = summarizeResponse(msg);
  const fields = scanFields(msg);
  const res = fields.find((f) => f.field === 2 && f.wireType === WIRE_LEN);
  let first: Uint8Array | undefined;
  if (res) {
    let any = msg.subarray(res.valueStart, res.end);
    if (kind === 'delta') {
      const rf = scanFields(any);
      const inner = rf.find((f) => f.field === 2 && f.wireType === WIRE_LEN);
      any = inner ? any.subarray(inner.valueStart, inner.end) : new Uint8Array(0);
    }
    const af = scanFields(any);
    const value = af.find((f) => f.field === 2 && f.wireType === WIRE_LEN);
    first = value ? any.subarray(value.valueStart, value.end) : new Uint8Array(0);
  }
  return { version: s.version, nonce: s.nonce, first, resources: s.resources };
}

/** A varint at `pos` if complete within `buf`. */
function varintAt(buf: Uint8Array, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) return undefined;
    const b = buf[pos + i] as number;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return { value, next: pos + i + 1 };
    mul *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

type Walk = (field: number, wireType: number, start: number, end: number, complete: boolean) => boolean | undefined;

/**
 * Walks the fields of a possibly incomplete message `buf[from, to)`. `visit` returns a
 * decision, or undefined to go on. Returns undefined when the bytes run out first.
 */
function walkPartial(buf: Uint8Array, from: number, to: number, visit: Walk): boolean | undefined {
  let pos = from;
  while (pos < to) {
    const tag = varintAt(buf, pos);
    if (!tag || tag.next > to) return undefined;
    const field = Math.floor(tag.value / 8);
    const wt = tag.value % 8;
    let start = tag.next;
    let end: number;
    if (wt === WIRE_LEN) {
      const len = varintAt(buf, tag.next);
      if (!len || len.next > to) return undefined;
      start = len.next;
      end = len.next + len.value;
    } else if (wt === WIRE_VARINT) {
      const v = varintAt(buf, tag.next);
      if (!v) return undefined;
      end = v.next;
    } else if (wt === 1) end = start + 8;
    else if (wt === 5) end = start + 4;
    else throw new Error(`unsupported wire type ${wt}`);
    const d = visit(field, wt, start, end, end <= to);
    if (d !== undefined) return d;
    if (end > to) return undefined;
    pos = end;
  }
  return undefined;
}

/** PURE: is this (possibly partial) response of `typeUrl`? undefined = cannot tell yet. */
export function classifyHead(kind: XdsStreamKind, head: Uint8Array, typeUrl: string): boolean | undefined {
  const str = (s: number, e: number) => Buffer.from(head.buffer, head.byteOffset + s, e - s).toString('utf8');
  const anyType = (s: number, e: number): boolean | undefined =>
    walkPartial(head, s, Math.min(e, head.length), (f, wt, fs, fe, complete) => {
      if (f === 1 && wt === WIRE_LEN) return complete ? str(fs, fe) === typeUrl : undefined;
      return undefined;
    });
  return walkPartial(head, 0, head.length, (f, wt, s, e, complete) => {
    if (f === 4 && wt === WIRE_LEN) return complete ? str(s, e) === typeUrl : undefined;
    if (f === 2 && wt === WIRE_LEN) {
      if (kind === 'sotw') return anyType(s, e);
      return walkPartial(head, s, Math.min(e, head.length), (rf, rwt, rs, re) => (rf === 2 && rwt === WIRE_LEN ? anyType(rs, re) : undefined));
    }
    return undefined;
  });
}

export class ResponseRouter {
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  private remaining = 0;
  private mode: 'head' | 'forward' | 'consume' = 'forward';
  private parts: Buffer[] = [];
  private held = 0;

  constructor(
    private readonly kind: XdsStreamKind,
    private readonly typeUrl: string,
    private readonly headLimit = 64 * 1024,
  ) {}

  push(chunk: Buffer): Routed[] {
    const out: Routed[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining === 0) {
        const n = Math.min(5 - this.headerFill, chunk.length - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + n);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < 5) break;
        this.headerFill = 0;
        this.remaining = this.header.readUInt32BE(1);
        this.parts = [];
        this.held = 0;
        if (this.remaining === 0 || this.header[0] !== 0) {
          // empty or compressed: nothing to look at; pass on
          out.push({ forward: Buffer.from(this.header) });
          this.mode = 'forward';
          continue;
        }
        this.mode = 'head';
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - pos);
      const piece = chunk.subarray(pos, pos + n);
      pos += n;
      this.remaining -= n;
      if (this.mode === 'forward') {
        out.push({ forward: piece });
        continue;
      }
      this.parts.push(piece);
      this.held += n;
      if (this.mode === 'head') this.decide(out);
      if (this.remaining === 0 && this.mode === 'consume') {
        out.push({ consume: Buffer.concat(this.parts) });
        this.parts = [];
      }
    }
    return out;
  }

  private decide(out: Routed[]): void {
    const head = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
    this.parts = [head];
    let d: boolean | undefined;
    try {
      if (this.remaining === 0) d = summarizeResponse(head).typeUrl === this.typeUrl;
      else d = classifyHead(this.kind, head, this.typeUrl);
    } catch {
      d = false; // malformed: Envoy decides what to do with it, as without the agent
    }
    if (d === undefined && this.held >= this.headLimit) d = false;
    if (d === undefined) return;
    if (d) {
      this.mode = 'consume';
      return;
    }
    this.mode = 'forward';
    out.push({ forward: Buffer.concat([Buffer.from(this.header), head]) });
    this.parts = [];
  }
}
