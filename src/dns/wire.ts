/**
 * PURE: the DNS message operations the proxy needs, over `dns-packet` (no codec of our own):
 * decoding a query, building a reply to it (Istio's SetReply: same id, opcode, RD and CD, the
 * question, QR set), SERVFAIL, the response size a client accepts (UDP: its EDNS0 size, at
 * least 512; TCP: 65535), and truncation to that size with TC set.
 */
import dnsPacket from 'dns-packet';
import type { Answer, Packet, Question } from 'dns-packet';

export type Protocol = 'udp' | 'tcp';
export const MIN_UDP_SIZE = 512;
export const MAX_MSG_SIZE = 65535;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2 } as const;

export interface Query {
  id: number;
  flags: number;
  questions: Question[];
  /** The EDNS0 UDP payload size the client advertised, if any. */
  ednsSize: number | undefined;
  /** EDNS0 DO bit. */
  dnssecOk: boolean;
}

/** Decodes a query; throws on malformed bytes or a message that is not a query. */
export function decodeQuery(buf: Buffer): Query {
  const p = dnsPacket.decode(buf);
  if (p.type !== 'query') throw new Error('not a query (QR set)');
  let ednsSize: number | undefined;
  let dnssecOk = false;
  for (const a of p.additionals ?? []) {
    if (a.type !== 'OPT') continue;
    const opt = a as { udpPayloadSize?: number; flags?: number };
    ednsSize = opt.udpPayloadSize;
    dnssecOk = ((opt.flags ?? 0) & dnsPacket.DNSSEC_OK) !== 0;
  }
  return { id: p.id ?? 0, flags: p.flags ?? 0, questions: p.questions ?? [], ednsSize, dnssecOk };
}

/** The id of a message too broken to decode (undefined when shorter than 2 bytes). */
export function rawId(buf: Buffer): number | undefined {
  return buf.length >= 2 ? buf.readUInt16BE(0) : undefined;
}

/** The largest response this client takes over `protocol`. */
export function responseSize(protocol: Protocol, q: Pick<Query, 'ednsSize'>): number {
  if (protocol === 'tcp') return MAX_MSG_SIZE;
  return Math.max(MIN_UDP_SIZE, Math.min(q.ednsSize ?? 0, MAX_MSG_SIZE));
}

/** Reply flags: opcode, RD and CD copied from the query; AA when answered locally. */
function replyFlags(q: Pick<Query, 'flags'>, rcode: number, authoritative: boolean): number {
  const keep = q.flags & (0x7800 | dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED);
  return keep | (authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | rcode;
}

export function reply(q: Query, answers: Answer[], authoritative = true): Packet {
  return { type: 'response', id: q.id, flags: replyFlags(q, RCODE.NOERROR, authoritative), questions: q.questions.slice(0, 1), answers, authorities: [], additionals: [] };
}

export function servfail(q: Pick<Query, 'id' | 'flags' | 'questions'>): Buffer {
  return dnsPacket.encode({ type: 'response', id: q.id, flags: replyFlags(q, RCODE.SERVFAIL, false), questions: q.questions.slice(0, 1), answers: [], authorities: [], additionals: [] });
}

/** A FORMERR for a query that could not be decoded: header only, same id, opcode and RD. */
export function formerrRaw(buf: Buffer): Buffer | undefined {
  const id = rawId(buf);
  if (id === undefined) return undefined;
  const flags = buf.length >= 4 ? buf.readUInt16BE(2) & 0x7900 : 0;
  const out = Buffer.alloc(12);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x8000 | flags | RCODE.FORMERR, 2);
  return out;
}

/**
 * Encodes `p` within `max` bytes: whole when it fits; otherwise authority and extra records
 * (except OPT) go first, then answers from the end, and TC is set when any answer was dropped.
 */
export function encodeWithin(p: Packet, max: number): Buffer {
  const whole = dnsPacket.encode(p);
  if (whole.length <= max) return whole;
  const opt = (p.additionals ?? []).filter((a) => a.type === 'OPT');
  const answers = [...(p.answers ?? [])];
  const base: Packet = { ...p, authorities: [], additionals: opt, answers: [] };
  const fixed = dnsPacket.encodingLength(base);
  let size = fixed;
  const kept: Answer[] = [];
  for (const a of answers) {
    const n = dnsPacket.encodingLength({ ...base, answers: [a] }) - fixed;
    if (size + n > max) break;
    size += n;
    kept.push(a);
  }
  const truncated = kept.length < answers.length;
  const flags = (p.flags ?? 0) | (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0);
  return dnsPacket.encode({ ...base, flags, answers: kept });
}

/** A relayed upstream answer: its own bytes with the client's id, re-encoded only when too large. */
export function relayWithin(upstream: Buffer, id: number, max: number): Buffer {
  if (upstream.length <= max) {
    const out = Buffer.from(upstream);
    out.writeUInt16BE(id, 0);
    return out;
  }
  const p = dnsPacket.decode(upstream);
  return encodeWithin({ ...p, id }, max);
}
