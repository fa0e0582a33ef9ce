/**
 * The DNS proxy over real sockets on loopback: SERVFAIL before the first table, local answers
 * over UDP and TCP (also with `dig`), forwarding to a test upstream over the protocol the query
 * came in on, SERVFAIL when the upstream is dead (within the timeout), truncation (UDP TC; TCP
 * whole), the table swap, the answer cache, a port in use, metrics and snapshot.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { AgentError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { DnsServer, type DnsServerOptions } from '../../src/dns/server.js';
import { freePort } from '../support/ports.js';
import { DnsUpstream, ask } from '../support/dns-upstream.js';

const run = async (args: string[]) => (await promisify(execFile)('dig', args)).stdout;
const hasDig = (process.env.PATH ?? '').split(':').some((d) => existsSync(`${d}/dig`));
if (!hasDig) console.warn('the dig test is skipped: dig is not installed (apt-get install dnsutils)');
const log = createLogger({ outputLevel: 'none' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const TABLE = {
  'productpage.ns1.svc.cluster.local': { ips: ['10.0.0.1'], registry: 'Kubernetes', shortname: 'productpage', namespace: 'ns1', altHosts: [] },
  'many.example.com': { ips: Array.from({ length: 60 }, (_, i) => `10.5.0.${i + 1}`), registry: 'External', shortname: '', namespace: '', altHosts: [] },
  'v6.example.com': { ips: ['fd00::1'], registry: 'External', shortname: '', namespace: '', altHosts: [] },
};

async function start(extra: Partial<DnsServerOptions> = {}, upstream?: DnsUpstream): Promise<{ dns: DnsServer; port: number; registry: Registry }> {
  const port = await freePort();
  const registry = new Registry();
  const dns = await DnsServer.start({
    addresses: [{ host: '127.0.0.1', port }],
    servers: upstream ? [upstream.address] : [],
    context: { namespace: 'ns1', domain: 'ns1.svc.cluster.local', search: ['ns1.svc.cluster.local'] },
    forwardTimeoutMs: 2000,
    forwardParallel: false,
    cacheSize: 0,
    respondBeforeSync: false,
    log,
    registry,
    ...extra,
  });
  cleanups.push(() => dns.close());
  return { dns, port, registry };
}

async function upstream(o: ConstructorParameters<typeof Object>[0] = {}): Promise<DnsUpstream> {
  const u = await DnsUpstream.start({ records: { 'up.example.org': ['192.0.2.7'] }, ...o });
  cleanups.push(() => u.close());
  return u;
}

const rcode = (p: unknown) => (p as { rcode: string }).rcode;

describe('DNS proxy server', () => {
  test('before the first table: SERVFAIL; then local answers over UDP and TCP', async () => {
    const { dns, port } = await start();
    const before = await ask('127.0.0.1', port, 'productpage');
    expect(rcode(before.packet)).toBe('SERVFAIL');
    expect(dns.ready).toBe(false);
    dns.updateTable(TABLE);
    for (const protocol of ['udp', 'tcp'] as const) {
      const r = await ask('127.0.0.1', port, 'productpage', { protocol });
      expect(rcode(r.packet)).toBe('NOERROR');
      expect(r.packet.flag_aa).toBe(true);
      expect(r.packet.answers).toEqual([{ type: 'A', name: 'productpage', ttl: 30, class: 'IN', flush: false, data: '10.0.0.1' }]);
    }
    // A known name without records of the asked family: NOERROR, no answer.
    const v4 = await ask('127.0.0.1', port, 'v6.example.com', { type: 'A' });
    expect(rcode(v4.packet)).toBe('NOERROR');
    expect(v4.packet.answers).toEqual([]);
  });

  (hasDig ? test : test.skip)('dig gets the local answer (a real resolver client)', async () => {
    const { dns, port } = await start();
    dns.updateTable(TABLE);
    const out = await run(['+short', '+tries=1', '+time=2', '-p', String(port), '@127.0.0.1', 'productpage.ns1.svc.cluster.local', 'A']);
    expect(out.trim()).toBe('10.0.0.1');
    const tcp = await run(['+tcp', '+short', '+tries=1', '+time=2', '-p', String(port), '@127.0.0.1', 'productpage.ns1.ns1.svc.cluster.local', 'A']);
    expect(tcp.trim().split('\n')).toEqual(['productpage.ns1.', '10.0.0.1']);
  });

  test('unknown names are forwarded over the same protocol and the answer relayed', async () => {
    const u = await upstream();
    const { dns, port, registry } = await start({}, u);
    dns.updateTable(TABLE);
    for (const protocol of ['udp', 'tcp'] as const) {
      const r = await ask('127.0.0.1', port, 'up.example.org', { protocol, id: 999 });
      expect(r.packet.id).toBe(999);
      expect(r.packet.answers?.map((a) => a.data)).toEqual(['192.0.2.7']);
    }
    expect(u.seen.map((s) => s.protocol)).toEqual(['udp', 'tcp']);
    const nx = await ask('127.0.0.1', port, 'nope.example.org');
    expect(rcode(nx.packet)).toBe('NXDOMAIN');
    const text = await registry.metrics();
    expect(text).toMatch(/^istio_agent_dns_requests_total 3$/m);
    expect(text).toMatch(/^istio_agent_dns_upstream_requests_total 3$/m);
    expect(text).toMatch(/^istio_agent_dns_upstream_failures_total 0$/m);
    expect(text).toMatch(/^istio_agent_dns_upstream_request_duration_seconds_count 3$/m);
    expect(dns.snapshot()).toMatchObject({ tableReady: true, queries: 3, forwarded: 3, localAnswers: 0, upstreamFailures: 0, upstreamServers: [u.address] });
  });

  test('a dead upstream: SERVFAIL after the per-try timeout, counted as a failure', async () => {
    const u = await upstream({ mode: 'silent' });
    const { dns, port, registry } = await start({ forwardTimeoutMs: 300 }, u);
    dns.updateTable(TABLE);
    const r = await ask('127.0.0.1', port, 'up.example.org');
    expect(rcode(r.packet)).toBe('SERVFAIL');
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(r.ms).toBeLessThan(3000);
    expect(await registry.metrics()).toMatch(/^istio_agent_dns_upstream_failures_total 1$/m);
    // parallel: one dead and one live server → the live one's answer
    const live = await upstream();
    const p = await start({ forwardTimeoutMs: 2000, forwardParallel: true, servers: [u.address, live.address] });
    p.dns.updateTable(TABLE);
    const ok = await ask('127.0.0.1', p.port, 'up.example.org');
    expect(ok.packet.answers?.map((a) => a.data)).toEqual(['192.0.2.7']);
  });

  test('UDP answers are cut to the client size with TC; TCP carries them whole', async () => {
    const u = await upstream({ bigCount: 200 });
    const { dns, port } = await start({}, u);
    dns.updateTable(TABLE);
    const local = await ask('127.0.0.1', port, 'many.example.com');
    expect(local.bytes.length).toBeLessThanOrEqual(512);
    expect(local.packet.flag_tc).toBe(true);
    const edns = await ask('127.0.0.1', port, 'many.example.com', { ednsSize: 4096 });
    expect(edns.packet.flag_tc).toBe(false);
    expect(edns.packet.answers?.length).toBe(60);
    const fwdUdp = await ask('127.0.0.1', port, 'big.upstream.test', { ednsSize: 1232 });
    expect(fwdUdp.bytes.length).toBeLessThanOrEqual(1232);
    expect(fwdUdp.packet.flag_tc).toBe(true);
    const fwdTcp = await ask('127.0.0.1', port, 'big.upstream.test', { protocol: 'tcp' });
    expect(fwdTcp.packet.flag_tc).toBe(false);
    expect(fwdTcp.packet.answers?.length).toBe(200);
  });

  test('a new table replaces the old', async () => {
    const u = await upstream();
    const { dns, port } = await start({}, u);
    dns.updateTable(TABLE);
    expect((await ask('127.0.0.1', port, 'productpage')).packet.answers?.[0]?.data).toBe('10.0.0.1');
    dns.updateTable({ 'productpage.ns1.svc.cluster.local': { ...TABLE['productpage.ns1.svc.cluster.local'], ips: ['10.0.0.99'] } });
    expect((await ask('127.0.0.1', port, 'productpage')).packet.answers?.[0]?.data).toBe('10.0.0.99');
    expect(rcode((await ask('127.0.0.1', port, 'many.example.com')).packet)).toBe('NXDOMAIN'); // gone from the table: forwarded
    expect(dns.snapshot().tableUpdates).toBe(2);
  });

  test('the cache answers repeated questions from memory, bounded, with aged TTLs', async () => {
    const u = await upstream({ ttl: 100, records: { 'a.example.org': ['192.0.2.1'], 'b.example.org': ['192.0.2.2'], 'c.example.org': ['192.0.2.3'] } });
    const { dns, port, registry } = await start({ cacheSize: 2 }, u);
    dns.updateTable(TABLE);
    for (const n of ['a', 'a', 'b', 'c', 'a']) await ask('127.0.0.1', port, `${n}.example.org`);
    // a miss, a hit, b miss, c miss (evicts a: LRU of 2), a miss again
    expect(u.queries).toBe(4);
    expect(dns.snapshot().cache).toEqual({ maxEntries: 2, entries: 2, hits: 1, misses: 4 });
    const text = await registry.metrics();
    expect(text).toMatch(/^istio_agent_dns_cache_hits_total 1$/m);
    expect(text).toMatch(/^istio_agent_dns_cache_misses_total 4$/m);
    const hit = await ask('127.0.0.1', port, 'a.example.org', { id: 31337 });
    expect(hit.packet.id).toBe(31337);
    expect(hit.packet.answers?.[0]?.ttl).toBeLessThanOrEqual(100);
    expect(u.queries).toBe(4);
  });

  test('a port in use is a start-up error naming the address', async () => {
    const port = await freePort();
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const err = await start({ addresses: [{ host: '127.0.0.1', port }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('DNS_LISTEN_FAILED');
    expect((err as Error).message).toBe(`DNS proxy: cannot listen on udp 127.0.0.1:${port}: the address is already in use`);
  });
});
