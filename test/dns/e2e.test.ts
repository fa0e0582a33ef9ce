/**
 * End to end (docs/DNS.md): the real CLI with the Envoy double as Envoy and the test control
 * plane as istiod, DNS capture on. The agent asks for the NDS NameTable on Envoy's stream after
 * its first LDS request, keeps those responses from the double, ACKs (NACKs an undecodable one,
 * ignores an empty one), answers UDP and TCP queries on its DNS port from the table, forwards
 * other names to the resolv.conf server (a test resolver on 127.53.x.y:53; root only) and
 * answers SERVFAIL when it is down; readiness is 503 with Istio's reason until the first table;
 * the table survives a reconnect and is replaced by a new one; /debug/ndsz shows it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { ControlPlane, NAME_TABLE_TYPE_URL, testCluster, testListener } from '../support/control-plane.js';
import { request } from '../support/envoy-double-harness.js';
import { freePort } from '../support/ports.js';
import { SEED_ANNOTATIONS, SEED_LABELS } from '../support/seed.js';
import { DnsUpstream, ask } from '../support/dns-upstream.js';
import { encodeNameTableBytes } from '../support/nds-encode.js';
import { validate, type Schema } from '../support/json-schema.js';

const STATUS_SCHEMA = JSON.parse(fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'src', 'status', 'status.schema.json'), 'utf8')) as Schema;

const root = process.getuid?.() === 0;
const maybe = root ? describe : describe.skip;
if (!root) console.warn('test/dns/e2e.test.ts skipped: the test resolver must listen on port 53 (resolv.conf has no port), which needs root');

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dns-e2e-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const TABLE_1 = encodeNameTableBytes({
  'productpage.jiuxi-ns.svc.cluster.local': { ips: ['10.0.0.1'], registry: 'Kubernetes', shortname: 'productpage', namespace: 'jiuxi-ns' },
  'db.example.com': { ips: ['192.0.2.10'], registry: 'External' },
});
const TABLE_2 = encodeNameTableBytes({ 'productpage.jiuxi-ns.svc.cluster.local': { ips: ['10.0.0.2'], registry: 'Kubernetes', shortname: 'productpage', namespace: 'jiuxi-ns' } });
const IGNORED = /Ignoring the message for type URL type\.googleapis\.com\/istio\.networking\.nds\.v1\.NameTable/;

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const rcode = (p: unknown) => (p as { rcode: string }).rcode;

async function setup(delta: boolean, withUpstream = true) {
  const host = `127.53.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  const upstream = withUpstream ? await DnsUpstream.start({ host, port: 53, records: { 'up.example.org': ['198.51.100.7'] } }) : undefined;
  if (upstream) cleanups.push(() => upstream.close());
  const resolv = path.join(dir, `resolv-${host}.conf`);
  fs.writeFileSync(resolv, `# test resolver\nnameserver ${host}\nsearch jiuxi-ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
  const cp = await ControlPlane.start({ clusters: [testCluster('BlackHoleCluster')], listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')] });
  cleanups.push(() => cp.close());
  const dnsPort = await freePort();
  const a: AgentProcess = await startAgent({
    standalone: false,
    env: {
      JWT_POLICY: 'third-party-jwt',
      ISTIO_META_DNS_CAPTURE: 'true',
      DNS_PROXY_ADDR: `127.0.0.1:${dnsPort}`,
      DNS_RESOLV_CONF: resolv,
      DNS_FORWARD_TIMEOUT: '500ms',
      ISTIO_DELTA_XDS: delta ? 'true' : 'false',
      ENVOY_DOUBLE_ADS_BACKOFF_MS: '100',
      ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS: '500',
    },
    proxyConfig: { discoveryAddress: cp.address, controlPlaneAuthPolicy: 'NONE', terminationDrainDuration: '0.1s' },
    files: { 'etc/istio/pod/labels': SEED_LABELS, 'etc/istio/pod/annotations': SEED_ANNOTATIONS, 'var/run/secrets/tokens/istio-token': 'token\n' },
  });
  cleanups.push(() => a.dispose());
  return { a, cp, dnsPort, upstream, host };
}

const ndsRequests = (cp: ControlPlane) => cp.allRequests().filter((r) => r.typeUrl === NAME_TABLE_TYPE_URL);

maybe('DNS proxy end to end', () => {
  test('Delta: NDS after LDS, readiness waits for the table, local and forwarded answers, ACK/NACK/empty, reconnect, replacement', async () => {
    const { a, cp, dnsPort, upstream } = await setup(true);
    await a.waitForLog(/DNS proxy listening on udp 127\.0\.0\.1:\d+ tcp 127\.0\.0\.1:\d+/);
    // The subscription follows Envoy's first LDS request on the same stream.
    const sub = await cp.waitFor('the NDS subscription', () => ndsRequests(cp)[0]);
    const stream = cp.streams.find((s) => s.id === sub.stream);
    const types = stream?.requests.map((r) => r.typeUrl) ?? [];
    expect(types.indexOf(NAME_TABLE_TYPE_URL)).toBeGreaterThan(types.indexOf('type.googleapis.com/envoy.config.listener.v3.Listener'));
    // Envoy is ready but there is no table yet.
    const notReady = await until('readiness naming the DNS table', async () => {
      const r = await request({ port: a.ports.status, path: '/healthz/ready' });
      return r.body.includes('DNS') ? r : undefined;
    });
    expect(notReady.status).toBe(503);
    expect(notReady.body).toBe('istio DNS capture is turned ON and DNS lookup table is not ready yet\n');
    expect(rcode((await ask('127.0.0.1', dnsPort, 'productpage')).packet)).toBe('SERVFAIL');
    expect((await request({ port: a.ports.status, path: '/debug/ndsz' })).status).toBe(404);

    cp.setNameTable(TABLE_1);
    await cp.waitFor('the NDS ACK', () => ndsRequests(cp).find((r) => r.nonce !== '' && !r.errorDetail));
    await until('ready', async () => ((await request({ port: a.ports.status, path: '/healthz/ready' })).status === 200 ? true : undefined));
    for (const protocol of ['udp', 'tcp'] as const) {
      const r = await ask('127.0.0.1', dnsPort, 'productpage', { protocol });
      expect(r.packet.answers?.map((x) => x.data)).toEqual(['10.0.0.1']);
      const ext = await ask('127.0.0.1', dnsPort, 'db.example.com', { protocol });
      expect(ext.packet.answers?.map((x) => x.data)).toEqual(['192.0.2.10']);
    }
    // Not in the table: forwarded to the resolv.conf server over the same protocol.
    for (const protocol of ['udp', 'tcp'] as const) {
      const r = await ask('127.0.0.1', dnsPort, 'up.example.org', { protocol });
      expect(r.packet.answers?.map((x) => x.data)).toEqual(['198.51.100.7']);
    }
    expect(upstream?.seen.filter((s) => s.name === 'up.example.org').map((s) => s.protocol)).toEqual(['udp', 'tcp']);
    const ndsz = await request({ port: a.ports.status, path: '/debug/ndsz' });
    expect(ndsz.status).toBe(200);
    expect(JSON.parse(ndsz.body).table['productpage.jiuxi-ns.']).toEqual({ ips: ['10.0.0.1'] });
    // The status document's dns section: documented, and counting what just happened.
    const doc = JSON.parse((await request({ port: a.ports.status, path: '/status' })).body) as { sections: { dns: Record<string, unknown> } };
    expect(validate(STATUS_SCHEMA, doc)).toEqual([]);
    expect(doc.sections.dns).toMatchObject({ tableReady: true, upstreamFailures: 0 });
    expect(doc.sections.dns.forwarded as number).toBeGreaterThanOrEqual(2);
    // The double never saw a NameTable.
    expect(a.stderr).not.toMatch(IGNORED);

    // An undecodable table: NACK with an error detail; the old table stays.
    cp.setNameTable(Buffer.from([0x0a, 0x50, 0x01]));
    const nack = await cp.waitFor('the NDS NACK', () => ndsRequests(cp).find((r) => r.errorDetail));
    expect(nack.errorDetail?.code).toBe(13);
    expect(nack.errorDetail?.message).toMatch(/NameTable/);
    // An empty response: ignored (no ACK), the table stays.
    const before = ndsRequests(cp).length;
    cp.setNameTable([]);
    await cp.waitFor('the empty response to be sent', () => cp.streams.some((s) => s.responses.some((r) => r.typeUrl === NAME_TABLE_TYPE_URL && r.resources === 0)));
    expect((await ask('127.0.0.1', dnsPort, 'productpage')).packet.answers?.map((x) => x.data)).toEqual(['10.0.0.1']);
    expect(ndsRequests(cp).length).toBe(before);

    // Upstream reconnect: the new stream subscribes again; the table survives until a new one arrives.
    const streamsBefore = cp.streams.length;
    cp.dropStreams();
    await cp.waitFor('a new NDS subscription', () => ndsRequests(cp).find((r) => r.stream > sub.stream && cp.streams.length > streamsBefore));
    expect((await ask('127.0.0.1', dnsPort, 'productpage')).packet.answers?.map((x) => x.data)).toEqual(['10.0.0.1']);
    cp.setNameTable(TABLE_2);
    await until('the new table', async () => {
      const r = await ask('127.0.0.1', dnsPort, 'productpage');
      return r.packet.answers?.[0]?.data === '10.0.0.2' ? r : undefined;
    });
    expect(rcode((await ask('127.0.0.1', dnsPort, 'db.example.com')).packet)).toBe('NXDOMAIN'); // gone: forwarded

    // Upstream down: SERVFAIL within the forward timeout.
    await upstream?.close();
    const down = await ask('127.0.0.1', dnsPort, 'up.example.org');
    expect(rcode(down.packet)).toBe('SERVFAIL');
    expect(down.ms).toBeLessThan(3000);
    const metrics = (await request({ port: a.ports.status, path: '/stats/prometheus', headers: { 'x-prometheus-scrape-timeout-seconds': '1' } })).body;
    expect(metrics).toMatch(/^istio_agent_dns_requests_total \d+$/m);
    expect(metrics).toMatch(/^istio_agent_dns_upstream_failures_total [1-9]\d*$/m);
    expect(a.stderr).not.toMatch(IGNORED);
  }, 60_000);

  test('SotW: the table arrives, is ACKed with version and nonce, and is not forwarded to the double', async () => {
    const { a, cp, dnsPort } = await setup(false, false);
    await cp.waitFor('the NDS subscription', () => ndsRequests(cp)[0]);
    cp.setNameTable(TABLE_1);
    const ack = await cp.waitFor('the NDS ACK', () => ndsRequests(cp).find((r) => r.nonce !== ''));
    expect(ack.version).toMatch(/^v\d+$/);
    expect(ack.errorDetail).toBeUndefined();
    const r = await until('a local answer', async () => (await ask('127.0.0.1', dnsPort, 'productpage.jiuxi-ns', { protocol: 'tcp' })).packet.answers?.[0]);
    expect(r.data).toBe('10.0.0.1');
    // Everything else is still cut through: a CDS push reaches the double.
    cp.setResources({ clusters: [testCluster('BlackHoleCluster'), testCluster('another')] });
    await a.waitFor('the double to get the new clusters', () => {
      try {
        const s = JSON.parse(fs.readFileSync(a.stateFile, 'utf8')) as { ads?: { cds: { names: string[] } } };
        return s.ads?.cds.names.includes('another') ? true : undefined;
      } catch {
        return undefined;
      }
    });
    expect(a.stderr).not.toMatch(IGNORED);
  }, 60_000);

  test('control: without DNS capture, an NDS response reaches the double (which ignores it)', async () => {
    const cp = await ControlPlane.start({ clusters: [testCluster('BlackHoleCluster')], listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')] });
    cleanups.push(() => cp.close());
    const a = await startAgent({
      standalone: false,
      env: { ISTIO_DELTA_XDS: 'false', JWT_POLICY: 'third-party-jwt' },
      proxyConfig: { discoveryAddress: cp.address, controlPlaneAuthPolicy: 'NONE', terminationDrainDuration: '0.1s' },
      files: { 'etc/istio/pod/labels': SEED_LABELS, 'etc/istio/pod/annotations': SEED_ANNOTATIONS, 'var/run/secrets/tokens/istio-token': 'token\n' },
    });
    cleanups.push(() => a.dispose());
    await cp.waitFor('LDS', () => cp.allRequests().find((r) => r.typeUrl.endsWith('Listener'))).catch((e: Error) => {
      throw new Error(`${e.message}\n${a.stderr.slice(-3000)}`);
    });
    expect(ndsRequests(cp)).toEqual([]);
    const { TYPES, encodeMessage } = await import('../support/control-plane-protos.js');
    cp.sendRaw('sotw', encodeMessage(TYPES.DiscoveryResponse, { version_info: 'v1', resources: [{ type_url: NAME_TABLE_TYPE_URL, value: TABLE_1 }], type_url: NAME_TABLE_TYPE_URL, nonce: 'x' }));
    await a.waitForLog(IGNORED);
  }, 60_000);
});
