/**
 * App probes end to end (SPEC §6.3): a real StatusServer configured from ISTIO_KUBE_APP_PROBERS,
 * probing real loopback apps (HTTP, HTTPS with HTTP/2, TCP, gRPC health).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { AppProbers } from '../../src/status/app-probe.js';
import { MAX_PROBE_BODY_BYTES } from '../../src/status/app-probe-http.js';
import { fetch, quietLogger, startServer, type TestServer } from '../support/metrics-servers.js';
import { startStatus, type StatusHarness } from '../support/status-harness.js';
import { seedConfig } from '../support/config.js';
import { freePort } from '../support/ports.js';
import { selfSignedCert } from '../support/status-tls.js';
import { startHealthServer } from '../support/status-grpc-health.js';

const cleanup: (() => Promise<void>)[] = [];
const track = <T extends { close(): Promise<void> }>(x: T): T => {
  cleanup.push(() => x.close());
  return x;
};
afterEach(async () => {
  while (cleanup.length > 0) await (cleanup.pop() as () => Promise<void>)();
});

/** A status server whose probers come from the env, the way the agent builds them. */
async function statusWith(probers: Record<string, unknown>, env: Record<string, string> = {}): Promise<StatusHarness> {
  const config = seedConfig({ extraEnv: { INSTANCE_IP: '127.0.0.1', ISTIO_KUBE_APP_PROBERS: JSON.stringify(probers), ...env } });
  const appProbers = AppProbers.fromConfig(config, { ipv6: false, log: quietLogger() });
  return track(await startStatus({ appProbers }));
}

const ok = (body = 'fine') => (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(200, { 'X-App-Secret': 'do-not-leak' });
  res.end(body);
};

describe('httpGet', () => {
  test('status and body come back; headers are copied, Host rewritten, no keep-alive, source 127.0.0.6', async () => {
    const app = track(
      await startServer((_req, res) => {
        res.writeHead(503, { 'X-App-Secret': 'do-not-leak' });
        res.end('warming up');
      }),
    );
    const h = await statusWith({ '/app-health/nginx/readyz': { httpGet: { path: 'ready?deep=1', port: app.port } } });
    const r = await fetch(h.port, '/app-health/nginx/readyz', {
      headers: { host: `127.0.0.1:${h.port}`, 'user-agent': 'kube-probe/1.29', 'x-custom': 'a', accept: '*/*' },
    });
    expect([r.status, r.text]).toEqual([503, 'warming up']);
    expect(r.headers['x-app-secret']).toBeUndefined();
    const seen = app.requests[0];
    expect(seen?.url).toBe('/ready?deep=1');
    expect(seen?.headers.host).toBe(`127.0.0.1:${app.port}`);
    expect(seen?.headers['user-agent']).toBe('kube-probe/1.29');
    expect(seen?.headers['x-custom']).toBe('a');
    expect(seen?.headers.connection).toBe('close');
    expect(seen?.remoteAddress).toBe('127.0.0.6');
  });

  test("a Host whose port is not the status port is kept; the prober's host is never the destination", async () => {
    const app = track(await startServer(ok()));
    // A decoy on another loopback address, same port: the prober's `host` points at it.
    const decoy = track(await startServer(ok('decoy'), '127.0.0.3').catch(() => startServer(ok('decoy'), '127.0.0.1')));
    const h = await statusWith({ '/app-health/web/livez': { httpGet: { path: '/', port: app.port, host: '127.0.0.3' } } });
    const r = await fetch(h.port, '/app-health/web/livez', { headers: { host: 'web.example:8443' } });
    expect([r.status, r.text]).toEqual([200, 'fine']);
    expect(app.requests[0]?.headers.host).toBe('web.example:8443');
    expect(decoy.requests).toHaveLength(0);
  });

  test('at most 10 KiB of the body is returned', async () => {
    const app = track(await startServer(ok('x'.repeat(50_000))));
    const h = await statusWith({ '/app-health/c/livez': { httpGet: { path: '/', port: app.port } } });
    const r = await fetch(h.port, '/app-health/c/livez');
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(MAX_PROBE_BODY_BYTES);
  });

  test('redirects: followed on the same host, never to another host; other 3xx → 200 with no body', async () => {
    const other = track(await startServer(ok('elsewhere'), '127.0.0.2').catch(() => startServer(ok('elsewhere'), '127.0.0.1')));
    const app = track(
      await startServer((req, res) => {
        const u = new URL(req.url ?? '/', 'http://x');
        const n = Number(u.searchParams.get('n') ?? 0);
        if (u.pathname === '/chain' && n > 0) {
          res.writeHead(302, { Location: `/chain?n=${n - 1}` });
          res.end();
        } else if (u.pathname === '/away') {
          res.writeHead(301, { Location: `http://${other.host === '127.0.0.1' ? 'localhost' : '127.0.0.2'}:${other.port}/steal` });
          res.end('moved');
        } else if (u.pathname === '/notmodified') {
          res.writeHead(304);
          res.end();
        } else if (u.pathname === '/nolocation') {
          res.writeHead(302);
          res.end('no location');
        } else {
          res.writeHead(200);
          res.end('done');
        }
      }),
    );
    const probe = (path: string) => ({ httpGet: { path, port: app.port } });
    const h = await statusWith({
      '/app-health/a/livez': probe('/chain?n=3'),
      '/app-health/a/readyz': probe('/chain?n=9'),
      '/app-health/a/startupz': probe('/chain?n=10'),
      '/app-health/b/livez': probe('/away'),
      '/app-health/b/readyz': probe('/notmodified'),
      '/app-health/b/startupz': probe('/nolocation'),
    });
    const get = async (p: string) => {
      const r = await fetch(h.port, p, { headers: { host: `pod:${h.port}` } });
      return [r.status, r.text];
    };
    expect(await get('/app-health/a/livez')).toEqual([200, 'done']);
    // Go's client (the kubelet's): the 10th redirect is an error.
    expect(await get('/app-health/a/readyz')).toEqual([200, 'done']);
    expect(await get('/app-health/a/startupz')).toEqual([500, '']);
    expect(await get('/app-health/b/livez')).toEqual([200, '']);
    expect(other.requests).toHaveLength(0);
    expect(await get('/app-health/b/readyz')).toEqual([200, '']);
    expect(await get('/app-health/b/startupz')).toEqual([200, '']);
    // A relative redirect keeps the rewritten Host.
    expect(new Set(app.requests.filter((q) => q.url.startsWith('/chain')).map((q) => q.headers.host))).toEqual(new Set([`pod:${app.port}`]));
  });

  test('timeout (timeoutSeconds, 1 s when 0) and a refused connection → 500 with an empty body', async () => {
    const slow = track(
      await startServer((_req, res) => {
        const t = setTimeout(() => res.end('late'), 5_000);
        res.once('close', () => clearTimeout(t));
      }),
    );
    const h = await statusWith({
      '/app-health/s/livez': { httpGet: { path: '/', port: slow.port }, timeoutSeconds: 0 },
      '/app-health/s/readyz': { httpGet: { path: '/', port: await freePort() } },
    });
    const t = await fetch(h.port, '/app-health/s/livez');
    expect([t.status, t.text]).toEqual([500, '']);
    expect(t.ms).toBeGreaterThanOrEqual(950);
    expect(t.ms).toBeLessThan(2000);
    const refused = await fetch(h.port, '/app-health/s/readyz');
    expect([refused.status, refused.text]).toEqual([500, '']);
  });

  test('INSTANCE_IP empty → localhost', async () => {
    const app = track(await startServer(ok()));
    const h = await statusWith({ '/app-health/l/livez': { httpGet: { path: '/', port: app.port } } }, { INSTANCE_IP: '' });
    const r = await fetch(h.port, '/app-health/l/livez');
    expect([r.status, r.text]).toEqual([200, 'fine']);
    // Reached through `localhost` (resolved in the pod's IP family) from 127.0.0.6.
    expect(app.requests[0]?.remoteAddress).toBe('127.0.0.6');
  });

  const cert = selfSignedCert();
  if (!cert) console.log('SKIP HTTPS app probe tests: `openssl` is not available to make a test certificate');
  (cert ? test : test.skip)('HTTPS: self-signed certificate accepted; HTTP/2 via ALPN unless ISTIO_ENABLE_HTTP2_PROBING=false', async () => {
    const versions: string[] = [];
    const tlsServer = http2.createSecureServer({ ...(cert as { key: Buffer; cert: Buffer }), allowHTTP1: true }, (req, res) => {
      versions.push(req.httpVersion);
      res.writeHead(req.headers['x-want'] === 'teapot' ? 418 : 200);
      res.end(`secure ${req.httpVersion} ${req.headers[':authority'] ?? req.headers.host}`);
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', () => resolve()));
    const port = (tlsServer.address() as AddressInfo).port;
    const sessions = new Set<http2.ServerHttp2Session>();
    tlsServer.on('session', (s) => sessions.add(s));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sessions) s.destroy();
          tlsServer.close(() => resolve());
        }),
    );
    const probers = { '/app-health/tls/livez': { httpGet: { path: '/', port, scheme: 'HTTPS' } } };
    const h2 = await statusWith(probers);
    const r2 = await fetch(h2.port, '/app-health/tls/livez', { headers: { host: `127.0.0.1:${h2.port}`, 'x-want': 'teapot' } });
    expect([r2.status, r2.text]).toEqual([418, `secure 2.0 127.0.0.1:${port}`]);
    const h1 = await statusWith(probers, { ISTIO_ENABLE_HTTP2_PROBING: 'false' });
    const r1 = await fetch(h1.port, '/app-health/tls/livez', { headers: { host: `127.0.0.1:${h1.port}` } });
    expect([r1.status, r1.text]).toEqual([200, `secure 1.1 127.0.0.1:${port}`]);
    expect(versions).toEqual(['2.0', '1.1']);
  });
});

describe('tcpSocket', () => {
  test('connect → 200 (from 127.0.0.6), refused → 500', async () => {
    const app: TestServer = track(await startServer(ok()));
    const peers: string[] = [];
    app.server.on('connection', (s) => peers.push(s.remoteAddress ?? ''));
    const h = await statusWith({
      '/app-health/t/livez': { tcpSocket: { port: app.port } },
      '/app-health/t/readyz': { tcpSocket: { port: await freePort() } },
    });
    expect((await fetch(h.port, '/app-health/t/livez')).status).toBe(200);
    expect(peers).toEqual(['127.0.0.6']);
    const refused = await fetch(h.port, '/app-health/t/readyz');
    expect([refused.status, refused.text]).toEqual([500, '']);
  });
});

describe('IPv6 pods', () => {
  test('probes go to the bracketed pod IP, from ::6 when it can be bound (else the default source)', async () => {
    const v6Bindable = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(0, '::6', () => probe.close(() => resolve(true)));
    });
    const app = track(await startServer(ok('v6'), '::1'));
    const config = seedConfig({
      extraEnv: {
        INSTANCE_IP: '::1',
        ISTIO_KUBE_APP_PROBERS: JSON.stringify({
          '/app-health/v6/livez': { httpGet: { path: '/', port: app.port } },
          '/app-health/v6/readyz': { tcpSocket: { port: app.port } },
        }),
      },
    });
    const appProbers = AppProbers.fromConfig(config, { ipv6: false, log: quietLogger() });
    expect(appProbers.settings).toMatchObject({ destination: '::1', ipv6: true });
    const h = track(await startStatus({ appProbers }));
    const r = await fetch(h.port, '/app-health/v6/livez', { headers: { host: `[::1]:${h.port}` } });
    expect([r.status, r.text]).toEqual([200, 'v6']);
    expect(app.requests[0]?.headers.host).toBe(`[::1]:${app.port}`);
    expect(app.requests[0]?.remoteAddress).toBe(v6Bindable ? '::6' : '::1');
    expect((await fetch(h.port, '/app-health/v6/readyz')).status).toBe(200);
  });
});

describe('grpc', () => {
  test('SERVING → 200; NOT_SERVING, unknown service, no server → 500; the kubelet User-Agent is forwarded; source 127.0.0.6', async () => {
    const health = track(await startHealthServer({ '': 1, api: 1, batch: 2 }));
    const h = await statusWith({
      '/app-health/g/livez': { grpc: { port: health.port } },
      '/app-health/g/readyz': { grpc: { port: health.port, service: 'api' } },
      '/app-health/g/startupz': { grpc: { port: health.port, service: 'batch' } },
      '/app-health/h/livez': { grpc: { port: health.port, service: 'nope' } },
      '/app-health/h/readyz': { grpc: { port: await freePort() } },
    });
    const status = async (p: string) => (await fetch(h.port, p, { headers: { 'user-agent': 'kube-probe/1.29' } })).status;
    expect(await status('/app-health/g/livez')).toBe(200);
    expect(await status('/app-health/g/readyz')).toBe(200);
    expect(await status('/app-health/g/startupz')).toBe(500);
    expect(await status('/app-health/h/livez')).toBe(500);
    health.statuses.set('batch', 1);
    expect(await status('/app-health/g/startupz')).toBe(200);
    expect(await status('/app-health/h/readyz')).toBe(500);
    expect(health.userAgents[0]).toMatch(/^kube-probe\/1\.29/);
    expect(new Set(health.peers.map((p) => p.replace(/:\d+$/, '')))).toEqual(new Set(['127.0.0.6']));
  });
});
