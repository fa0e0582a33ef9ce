/**
 * The status page and its JSON are loopback-only (issue 17): `GET /` and `GET /status` from a
 * real non-loopback peer get 403 with Istio's text, from loopback 200. The peer address exists
 * only in a network namespace this test creates (a veth pair, both ends inside it; the host's
 * interfaces are never touched); a small script runs the compiled StatusServer, with a
 * StatusRegistry, and its client inside the namespace. Needs root; skips with a printed reason
 * otherwise (same pattern as netns.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../support/metrics-servers.js';
import { vethNamespace, type VethNamespace } from '../support/veth-namespace.js';

const SERVER_IP = '10.212.0.1';
const CLIENT_IP = '10.212.0.2';


const dist = (rel: string) => pathToFileURL(path.join(REPO, 'dist', rel)).href;

const SCRIPT = `
import http from 'node:http';
import { StatusServer } from '${dist('src/status/server.js')}';
import { StatusRegistry } from '${dist('src/status/registry.js')}';
import { AppProbers } from '${dist('src/status/app-probe.js')}';
import { createAgentMetrics } from '${dist('src/metrics/registry.js')}';
import { createLogger } from '${dist('src/log.js')}';

const log = createLogger({ outputLevel: 'none' });
const status = new StatusRegistry();
status.register({ name: 'probe', snapshot: () => ({ marker: 'netns-page-test' }) });
const server = await StatusServer.start({
  port: 0,
  log,
  routes: { ready: (_q, r) => r.end(), quit: () => undefined, drain: () => undefined },
  metrics: { metrics: createAgentMetrics({ defaultMetrics: false }), localhost: '127.0.0.1' },
  appProbers: new AppProbers({ probers: new Map(), destination: '127.0.0.1', ipv6: false, http2: false, log }),
  metricsLocalhostOnly: false,
  status,
  closeGraceMs: 100,
});
const request = (host, localAddress, method, path) =>
  new Promise((resolve, reject) => {
    const req = http.request({ host, port: server.port, localAddress, method, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
const results = [];
for (const path of ['/', '/status']) {
  for (const method of ['GET', 'POST']) results.push({ peer: 'remote', method, path, ...(await request('${SERVER_IP}', '${CLIENT_IP}', method, path)) });
  const local = await request('127.0.0.1', '127.0.0.1', 'GET', path);
  results.push({ peer: 'loopback', method: 'GET', path, status: local.status, type: local.type, body: local.body.includes('netns-page-test') || local.body.includes('<title>pilot-agent status</title>') ? 'page or document' : local.body });
}
await server.close();
process.stdout.write(JSON.stringify(results));
`;

let ns: VethNamespace;

beforeAll(() => {
  ns = vethNamespace('pa-page', [SERVER_IP, CLIENT_IP]);
  if (ns.skipReason) console.log(`SKIP status page non-loopback tests: ${ns.skipReason}`);
});

afterAll(() => ns.dispose());

describe('status page from a non-loopback peer (inside a private network namespace)', () => {
  test('/ and /status are 403 for a remote peer, 200 for loopback', async () => {
    if (ns.skipReason) return;
    const out = await ns.runScript(SCRIPT);
    const forbidden = { status: 403, type: 'text/plain; charset=utf-8', body: 'Only requests from localhost are allowed\n' };
    expect(JSON.parse(out)).toEqual([
      { peer: 'remote', method: 'GET', path: '/', ...forbidden },
      { peer: 'remote', method: 'POST', path: '/', ...forbidden },
      { peer: 'loopback', method: 'GET', path: '/', status: 200, type: 'text/html; charset=utf-8', body: 'page or document' },
      { peer: 'remote', method: 'GET', path: '/status', ...forbidden },
      { peer: 'remote', method: 'POST', path: '/status', ...forbidden },
      { peer: 'loopback', method: 'GET', path: '/status', status: 200, type: 'application/json; charset=utf-8', body: 'page or document' },
    ]);
  });
});
