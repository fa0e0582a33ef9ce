/**
 * The source rule against a real kernel, the way a pod sees it: inside a network namespace this
 * test creates, the "pod IP" is a non-loopback address on a dummy interface, and the app
 * listens there. App probes (httpGet, tcpSocket, grpc) and the xDS httpGet health check must
 * reach it from 127.0.0.6 (which istio-iptables exempts from inbound capture); the xDS
 * tcpSocket check connects from the kernel's choice, as Istio's does. Needs root; skips with a
 * printed reason otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../support/metrics-servers.js';
import { vethNamespace, type VethNamespace } from '../support/veth-namespace.js';

const POD_IP = '10.212.0.7';


const dist = (rel: string) => JSON.stringify(pathToFileURL(path.join(REPO, 'dist', rel)).href);

/** Runs inside the namespace: apps on the pod IP, probes through the compiled modules. */
const SCRIPT = `
import http from 'node:http';
import net from 'node:net';
const { StatusServer } = await import(${dist('src/status/server.js')});
const { AppProbers } = await import(${dist('src/status/app-probe.js')});
const { runCheck } = await import(${dist('src/xds/health-checks.js')});
const { startHealthServer } = await import(${dist('test/support/status-grpc-health.js')});
const { createAgentMetrics } = await import(${dist('src/metrics/registry.js')});
const { createLogger } = await import(${dist('src/log.js')});
const log = createLogger({ outputLevel: 'none' });
const seen = [];
const app = http.createServer((req, res) => { seen.push(['http', req.socket.remoteAddress]); res.end('ok'); });
app.on('connection', (s) => seen.push(['tcp', s.remoteAddress]));
await new Promise((r) => app.listen(0, '${POD_IP}', r));
const port = app.address().port;
const grpc = await startHealthServer({ '': 1 }, '${POD_IP}');
const probers = new Map([
  ['/app-health/a/livez', { kind: 'httpGet', path: '/', port, scheme: 'http', timeoutMs: 2000 }],
  ['/app-health/a/readyz', { kind: 'tcpSocket', port, timeoutMs: 2000 }],
  ['/app-health/a/startupz', { kind: 'grpc', port: grpc.port, service: '', timeoutMs: 2000 }],
]);
const server = await StatusServer.start({
  port: 0,
  log,
  routes: { ready: (_q, r) => r.end(), quit: () => {}, drain: () => {} },
  metrics: { metrics: createAgentMetrics({ defaultMetrics: false }), localhost: '127.0.0.1' },
  appProbers: new AppProbers({ probers, destination: '${POD_IP}', ipv6: false, http2: true, log }),
  metricsLocalhostOnly: true,
  closeGraceMs: 100,
});
const status = (p) => new Promise((resolve, reject) => {
  http.get({ host: '127.0.0.1', port: server.port, path: p, agent: false }, (res) => { res.resume(); resolve(res.statusCode); }).on('error', reject);
});
const results = {};
const take = () => seen.splice(0).map(([k, a]) => k + ' ' + a);
for (const p of probers.keys()) { results[p] = [await status(p)]; }
results.app = take();
results.grpcPeers = grpc.peers.map((p) => p.replace(/:\\d+$/, ''));
results.xdsHttp = [await runCheck({ kind: 'httpGet', scheme: 'http', host: '${POD_IP}', port, path: '/', headers: [] }, 2000) ?? 'pass', ...take()];
results.xdsTcp = [await runCheck({ kind: 'tcpSocket', host: '${POD_IP}', port }, 2000) ?? 'pass', ...take()];
await server.close();
await grpc.close();
app.close();
process.stdout.write(JSON.stringify(results));
`;

let ns: VethNamespace;

beforeAll(() => {
  ns = vethNamespace('pa-probe', [POD_IP]);
  if (ns.skipReason) console.log(`SKIP probe source-address tests: ${ns.skipReason}`);
});

afterAll(() => ns.dispose());

describe('probes to the pod IP (inside a private network namespace)', () => {
  test('app probes and the xDS httpGet check come from 127.0.0.6; the xDS tcpSocket check from the pod IP', async () => {
    if (ns.skipReason) return;
    const out = await ns.runScript(SCRIPT);
    expect(JSON.parse(out)).toEqual({
      '/app-health/a/livez': [200],
      '/app-health/a/readyz': [200],
      '/app-health/a/startupz': [200],
      app: ['tcp 127.0.0.6', 'http 127.0.0.6', 'tcp 127.0.0.6'],
      grpcPeers: ['127.0.0.6'],
      xdsHttp: ['pass', 'tcp 127.0.0.6', 'http 127.0.0.6'],
      xdsTcp: ['pass', `tcp ${POD_IP}`],
    });
  });
});
