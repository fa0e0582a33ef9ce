/**
 * A memory choice that must survive: an agent whose probes are plain HTTP and TCP to IP
 * addresses loads none of node:http2, node:dns/promises or execa for them, and no probe loads
 * @grpc/grpc-js or protobufjs. (node:tls is no longer lazy: prom-client's public entry, which the
 * agent's metrics use, loads https and with it tls.) ES modules are seen through a resolve hook,
 * CommonJS through require.cache. A child process runs the compiled status server with app probes and the xDS
 * health checks, then lists what it loaded; a second phase (HTTPS, gRPC, exec, a host name) shows the
 * listing does see those modules once a probe needs them.
 */
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../support/metrics-servers.js';

const dist = (rel: string) => JSON.stringify(pathToFileURL(path.join(REPO, 'dist', rel)).href);

const SCRIPT = `
import http from 'node:http';
import { createRequire, register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const resolved = new Set();
const channel = new MessageChannel();
channel.port1.on('message', (url) => resolved.add(url));
channel.port1.unref();
const HOOKS = 'let port; export function initialize(d) { port = d.port; } export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r; }';
register('data:text/javascript,' + encodeURIComponent(HOOKS), { data: { port: channel.port2 }, transferList: [channel.port2] });
const pkgOf = (f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(f)?.[1];
const { StatusServer } = await import(${dist('src/status/server.js')});
const { AppProbers } = await import(${dist('src/status/app-probe.js')});
const { runCheck } = await import(${dist('src/xds/health-checks.js')});
const { createAgentMetrics } = await import(${dist('src/metrics/registry.js')});
const { createLogger } = await import(${dist('src/log.js')});
const require = createRequire(import.meta.url);
const snapshot = () => ({
  builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length)),
  packages: [...new Set([...Object.keys(require.cache), ...resolved].map(pkgOf).filter(Boolean))],
});
const log = createLogger({ outputLevel: 'none' });
const app = http.createServer((_q, r) => r.end('ok'));
await new Promise((r) => app.listen(0, '127.0.0.1', r));
const port = app.address().port;
const closed = http.createServer();
await new Promise((r) => closed.listen(0, '127.0.0.1', r));
const closedPort = closed.address().port;
await new Promise((r) => closed.close(r));
const probers = new Map([
  ['/app-health/a/livez', { kind: 'httpGet', path: '/', port, scheme: 'http', timeoutMs: 1000 }],
  ['/app-health/a/readyz', { kind: 'tcpSocket', port, timeoutMs: 1000 }],
  ['/app-health/b/livez', { kind: 'httpGet', path: '/', port: closedPort, scheme: 'https', timeoutMs: 1000 }],
  ['/app-health/b/readyz', { kind: 'grpc', port: closedPort, service: '', timeoutMs: 200 }],
]);
const server = await StatusServer.start({
  port: 0,
  log,
  routes: { ready: (_q, r) => r.end(), quit: () => {}, drain: () => {} },
  metrics: { metrics: createAgentMetrics({ defaultMetrics: false }), localhost: '127.0.0.1' },
  appProbers: new AppProbers({ probers, destination: '127.0.0.1', ipv6: false, http2: true, log }),
  metricsLocalhostOnly: true,
  closeGraceMs: 100,
});
const status = (p) => new Promise((resolve, reject) => {
  http.get({ host: '127.0.0.1', port: server.port, path: p, agent: false }, (res) => { res.resume(); resolve(res.statusCode); }).on('error', reject);
});
const results = [await status('/app-health/a/livez'), await status('/app-health/a/readyz')];
results.push(await runCheck({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port, path: '/', headers: [] }, 1000) ?? 'pass');
results.push(await runCheck({ kind: 'tcpSocket', host: '127.0.0.1', port }, 1000) ?? 'pass');
const plain = snapshot();
results.push(await status('/app-health/b/livez'), await status('/app-health/b/readyz'));
results.push(await runCheck({ kind: 'exec', command: ['true'] }, 1000) ?? 'pass');
results.push(await runCheck({ kind: 'httpGet', scheme: 'http', host: 'localhost', port, path: '/', headers: [] }, 1000) ?? 'pass');
const all = snapshot();
await server.close();
app.close();
process.stdout.write(JSON.stringify({ results, plain, all }));
`;

// node:dns itself is loaded by any net listen on a host name; `dns/promises` is what probes
// load to resolve `localhost`.
const LAZY_BUILTINS = ['http2', 'dns/promises'];
/** Loaded only by the exec prober. */
const LAZY_PACKAGES = ['execa'];
/** Probes load no package of their own for gRPC (they speak HTTP/2 and the wire format themselves). */
const NEVER_PACKAGES = ['@grpc/grpc-js', 'protobufjs'];

describe('lazy loading of probe dependencies', () => {
  test('plain HTTP and TCP probes (app and xDS health) load no TLS, HTTP/2, DNS resolver or execa; none loads grpc-js or protobufjs', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { results: unknown[]; plain: { builtins: string[]; packages: string[] }; all: { builtins: string[]; packages: string[] } };
    expect(out.results).toEqual([200, 200, 'pass', 'pass', 500, 500, 'pass', 'pass']);
    for (const m of LAZY_BUILTINS) expect(out.plain.builtins).not.toContain(m);
    for (const p of [...NEVER_PACKAGES, ...LAZY_PACKAGES]) expect(out.plain.packages).not.toContain(p);
    // The listing sees them once HTTPS, gRPC and exec probes ran.
    for (const m of LAZY_BUILTINS) expect(out.all.builtins).toContain(m);
    for (const p of LAZY_PACKAGES) expect(out.all.packages).toContain(p);
    for (const p of NEVER_PACKAGES) expect(out.all.packages).not.toContain(p);
  });
});
