/**
 * Bad input against the DNS proxy over real sockets: truncated packets, zero and many
 * questions, a TCP length prefix of 64 KiB with no body, and a flood of 10^4 UDP queries
 * (local, junk and forwarded to a dead upstream). The proxy must not crash, must keep its
 * memory bounded, and well-formed queries must keep getting answers.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { createLogger } from '../../src/log.js';
import { DnsServer } from '../../src/dns/server.js';
import { freePort } from '../support/ports.js';
import { DnsUpstream, ask } from '../support/dns-upstream.js';

let dns: DnsServer;
let dead: DnsUpstream;
let port: number;
const rcode = (p: unknown) => (p as { rcode: string }).rcode;

beforeAll(async () => {
  port = await freePort();
  dead = await DnsUpstream.start({ mode: 'silent' });
  dns = await DnsServer.start({
    addresses: [{ host: '127.0.0.1', port }],
    servers: [dead.address],
    context: { namespace: 'ns1', domain: 'ns1.svc.cluster.local', search: [] },
    forwardTimeoutMs: 1000,
    forwardParallel: false,
    cacheSize: 100,
    respondBeforeSync: false,
    log: createLogger({ outputLevel: 'none' }),
    maxInflight: 64,
    tcpIdleMs: 500,
  });
  dns.updateTable({ 'ok.example.com': { ips: ['10.0.0.1'], registry: 'External', shortname: '', namespace: '', altHosts: [] } });
});
afterAll(async () => {
  await dns.close();
  await dead.close();
});

/** Sends raw bytes over UDP; resolves with the reply, or undefined when none comes within `ms`. */
function rawUdp(bytes: Buffer, ms = 300): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, ms);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(bytes, port, '127.0.0.1');
  });
}

/** A well-formed query, retried like a stub resolver does (a datagram may be dropped by a full socket buffer). */
const wellFormed = async (tries = 1) => {
  for (let i = 1; ; i++) {
    try {
      const r = await ask('127.0.0.1', port, 'ok.example.com', { timeoutMs: 1000 });
      expect(r.packet.answers?.[0]?.data).toBe('10.0.0.1');
      return;
    } catch (err) {
      if (i >= tries) throw err;
    }
  }
};

describe('DNS proxy under bad input', () => {
  test('truncated packets: FORMERR with the id when there is a header, nothing otherwise', async () => {
    const q = dnsPacket.encode({ type: 'query', id: 0xbeef, questions: [{ type: 'A', name: 'ok.example.com' }] });
    expect(await rawUdp(Buffer.from([0x01]))).toBeUndefined();
    for (const cut of [3, 12, q.length - 3]) {
      const r = await rawUdp(q.subarray(0, cut));
      expect(r).toBeDefined();
      const p = dnsPacket.decode(r as Buffer);
      expect(p.id).toBe(0xbeef);
      expect(rcode(p)).toBe('FORMERR');
    }
    // a response sent to the proxy is not a query
    const resp = await rawUdp(dnsPacket.encode({ type: 'response', id: 7, questions: [{ type: 'A', name: 'x' }] }));
    expect(resp && rcode(dnsPacket.decode(resp))).toBe('FORMERR');
    await wellFormed();
  });

  test('zero questions: SERVFAIL; many questions: the first is answered', async () => {
    const zero = await rawUdp(dnsPacket.encode({ type: 'query', id: 5, questions: [] }));
    expect(zero && rcode(dnsPacket.decode(zero))).toBe('SERVFAIL');
    const many = await rawUdp(
      dnsPacket.encode({ type: 'query', id: 6, questions: [{ type: 'A', name: 'ok.example.com' }, { type: 'A', name: 'other.example' }, { type: 'AAAA', name: 'third.example' }] }),
    );
    const p = dnsPacket.decode(many as Buffer);
    expect(p.questions?.length).toBe(1);
    expect((p.answers?.[0] as { data?: unknown } | undefined)?.data).toBe('10.0.0.1');
  });

  test('a 64 KiB TCP length prefix with no body: nothing buffered beyond it, closed when idle, others answered', async () => {
    const c = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write(Buffer.from([0xff, 0xff]));
    c.write(Buffer.alloc(1000, 0x41)); // part of the promised body
    await wellFormed();
    await ask('127.0.0.1', port, 'ok.example.com', { protocol: 'tcp' });
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 5000);
      c.on('close', () => {
        clearTimeout(t);
        resolve(true);
      });
      c.on('error', () => undefined);
    });
    expect(closed).toBe(true);
  });

  test('a flood of 10^4 UDP queries: no crash, bounded memory, well-formed queries keep answering', async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    let replies = 0;
    s.on('message', () => replies++);
    const local = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'ok.example.com' }] });
    const junk = Buffer.from('not a dns message at all, just bytes');
    const before = process.memoryUsage();
    const N = 10_000;
    for (let i = 0; i < N; i++) {
      let msg: Buffer;
      if (i % 3 === 0) msg = local;
      else if (i % 3 === 1) msg = junk;
      else msg = dnsPacket.encode({ type: 'query', id: i & 0xffff, questions: [{ type: 'A', name: `n${i}.flood.test` }] }); // forwarded to a dead upstream
      s.send(msg, port, '127.0.0.1');
      if (i % 50 === 0) await new Promise((r) => setImmediate(r)); // same process: let the proxy's side run
    }
    const t0 = performance.now();
    await wellFormed(5);
    const afterFloodMs = performance.now() - t0;
    const snap = dns.snapshot();
    expect(snap.overloaded).toBeGreaterThan(0); // beyond 64 forwarded at once: SERVFAIL at once, nothing queued
    const after = process.memoryUsage();
    expect(after.heapUsed - before.heapUsed).toBeLessThan(64 * 1024 * 1024);
    expect(afterFloodMs).toBeLessThan(5000);
    // The forwards in flight settle within the forward timeout; every query that reached the proxy got a reply.
    const deadline = Date.now() + 10_000;
    const settled = () => {
      const x = dns.snapshot();
      return x.forwarded === x.upstreamFailures;
    };
    while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const end = dns.snapshot();
    expect(end.queries).toBeGreaterThan(N / 2); // most of the flood reached it (UDP may drop some)
    // Every query got a reply; a few replies may be dropped by the flooding socket's own receive buffer.
    expect(replies).toBeGreaterThanOrEqual(Math.floor(end.queries * 0.99) - 10);
    s.close();
    await wellFormed(3);
  }, 30_000);
});
