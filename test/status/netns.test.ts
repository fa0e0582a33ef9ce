/**
 * Loopback-only endpoints against a real non-loopback peer. The peer address exists only in a
 * network namespace this test creates (a veth pair, both ends inside it); the host's
 * interfaces are never touched. A small script runs the compiled StatusServer and its client
 * inside the namespace. Needs root; skips with a printed reason otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../support/metrics-servers.js';
import { vethNamespace, type VethNamespace } from '../support/veth-namespace.js';

const SERVER_IP = '10.211.0.1';
const CLIENT_IP = '10.211.0.2';


const dist = (rel: string) => pathToFileURL(path.join(REPO, 'dist', rel)).href;

/** Runs inside the namespace: a StatusServer on all interfaces and requests from both peers. */
const SCRIPT = `
import http from 'node:http';
import { StatusServer } from '${dist('src/status/server.js')}';
import { AppProbers } from '${dist('src/status/app-probe.js')}';
import { createAgentMetrics } from '${dist('src/metrics/registry.js')}';
import { createLogger } from '${dist('src/log.js')}';

const log = createLogger({ outputLevel: 'none' });
const calls = { quit: 0, drain: 0 };
const server = await StatusServer.start({
  port: 0,
  log,
  routes: { ready: (_q, r) => r.end(), quit: () => calls.quit++, drain: () => calls.drain++ },
  metrics: { metrics: createAgentMetrics({ defaultMetrics: false }), localhost: '127.0.0.1' },
  appProbers: new AppProbers({ probers: new Map(), destination: '127.0.0.1', ipv6: false, http2: false, log }),
  metricsLocalhostOnly: true,
  closeGraceMs: 100,
});
const request = (host, localAddress, method, path) =>
  new Promise((resolve, reject) => {
    const req = http.request({ host, port: server.port, localAddress, method, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
const results = [];
for (const path of ['/quitquitquit', '/drain', '/stats/prometheus']) {
  for (const method of ['GET', 'POST', 'PUT']) {
    results.push({ peer: 'remote', method, path, ...(await request('${SERVER_IP}', '${CLIENT_IP}', method, path)) });
  }
}
results.push({ peer: 'loopback', method: 'GET', path: '/quitquitquit', ...(await request('127.0.0.1', '127.0.0.1', 'GET', '/quitquitquit')) });
const metrics = await request('127.0.0.1', '127.0.0.1', 'GET', '/stats/prometheus');
results.push({ peer: 'loopback', method: 'GET', path: '/stats/prometheus', status: metrics.status, body: metrics.body.includes('istio_agent_scrapes_total') ? 'metrics' : metrics.body });
await server.close();
process.stdout.write(JSON.stringify({ results, calls }));
`;

let ns: VethNamespace;

beforeAll(() => {
  ns = vethNamespace('pa-status', [SERVER_IP, CLIENT_IP]);
  if (ns.skipReason) console.log(`SKIP non-loopback peer tests: ${ns.skipReason}`);
});

afterAll(() => ns.dispose());

describe('non-loopback peers (inside a private network namespace)', () => {
  test('quit/drain are 403 whatever the method, metrics are 403 with METRICS_LOCALHOST_ACCESS_ONLY; loopback GET is 405', async () => {
    if (ns.skipReason) return;
    const out = await ns.runScript(SCRIPT);
    const { results, calls } = JSON.parse(out) as { results: { peer: string; method: string; path: string; status: number; body: string }[]; calls: { quit: number; drain: number } };
    const forbidden = 'Only requests from localhost are allowed\n';
    expect(results).toEqual([
      ...['/quitquitquit', '/drain', '/stats/prometheus'].flatMap((p) =>
        ['GET', 'POST', 'PUT'].map((method) => ({ peer: 'remote', method, path: p, status: 403, body: forbidden })),
      ),
      { peer: 'loopback', method: 'GET', path: '/quitquitquit', status: 405, body: 'Method Not Allowed\n' },
      { peer: 'loopback', method: 'GET', path: '/stats/prometheus', status: 200, body: 'metrics' },
    ]);
    expect(calls).toEqual({ quit: 0, drain: 0 });
  });
});
