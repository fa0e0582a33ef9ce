/**
 * PURE (the clock is passed in): an optional cache of upstream answers, beyond Istio
 * (istio#58806). Keyed by question (name lower-cased, type, class), protocol and the DO bit;
 * an entry lives for the smallest TTL of its records (a negative answer: the SOA's
 * `min(ttl, minimum)`; nothing to go by, or SERVFAIL/truncated: not cached). Bounded to
 * `maxEntries`, least recently used evicted first. TTLs are aged on the way out.
 */
import dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';

interface Entry {
  bytes: Buffer;
  storedAt: number;
  expiresAt: number;
}

export class AnswerCache {
  private readonly map = new Map<string, Entry>();
  hits = 0;
  misses = 0;

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.map.size;
  }

  /** A cached answer re-encoded with `id` and aged TTLs, or undefined. */
  get(key: string, id: number, nowMs: number): Buffer | undefined {
    const e = this.map.get(key);
    if (!e || e.expiresAt <= nowMs) {
      if (e) this.map.delete(key);
      this.misses++;
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e);
    this.hits++;
    const age = Math.floor((nowMs - e.storedAt) / 1000);
    const p = dnsPacket.decode(e.bytes);
    const aged = (rs: Answer[] | undefined) => (rs ?? []).map((r) => (r.type === 'OPT' ? r : { ...r, ttl: Math.max(0, (r.ttl ?? 0) - age) }));
    return dnsPacket.encode({ ...p, id, answers: aged(p.answers), authorities: aged(p.authorities), additionals: aged(p.additionals) } as Packet);
  }

  /** Stores an upstream answer when it says how long it may be kept. */
  put(key: string, answer: Buffer, nowMs: number): void {
    if (this.maxEntries <= 0) return;
    let p: Packet;
    try {
      p = dnsPacket.decode(answer);
    } catch {
      return;
    }
    const ttl = cacheTtl(p);
    if (ttl === undefined || ttl <= 0) return;
    this.map.delete(key);
    this.map.set(key, { bytes: Buffer.from(answer), storedAt: nowMs, expiresAt: nowMs + ttl * 1000 });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }
}

/** Seconds an answer may be cached, or undefined. */
export function cacheTtl(p: Packet): number | undefined {
  if ((p.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) return undefined;
  const rcode = (p.flags ?? 0) & 0xf;
  if (rcode !== 0 && rcode !== 3) return undefined;
  const answers = (p.answers ?? []).filter((a) => a.type !== 'OPT');
  if (answers.length > 0) return Math.min(...answers.map((a) => a.ttl ?? 0));
  const soa = (p.authorities ?? []).find((a) => a.type === 'SOA') as { ttl?: number; data?: { minimum?: number } } | undefined;
  if (!soa) return undefined;
  return Math.min(soa.ttl ?? 0, soa.data?.minimum ?? 0);
}

export function cacheKey(name: string, type: string, klass: string, protocol: string, dnssecOk: boolean): string {
  return `${name.toLowerCase()}|${type}|${klass}|${protocol}|${dnssecOk ? 'do' : ''}`;
}
