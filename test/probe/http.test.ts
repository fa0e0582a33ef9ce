/**
 * The shared HTTP GET prober (src/probe/http.ts) against real loopback servers: redirect
 * policies, the body cap and "status line only" mode, one timeout over every hop and the body,
 * the source rule, and no connection left open after a probe.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type http from 'node:http';
import { probeHttp, type HttpProbeOptions } from '../../src/probe/http.js';
import { ProbeNetwork } from '../../src/probe/network.js';
import { startServer, type TestServer } from '../support/metrics-servers.js';
import { selfSignedCert } from '../support/status-tls.js';
import { waitUntil } from '../support/envoy-double-harness.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});
const track = async (p: Promise<TestServer>): Promise<TestServer> => {
  const s = await p;
  closers.push(() => s.close());
  return s;
};

const get = (url: string, extra: Partial<HttpProbeOptions> = {}) =>
  probeHttp({ url: new URL(url), headers: {}, timeoutMs: 2000, http2: false, redirects: 'none', maxBodyBytes: 1024, ...extra });

/** Resolves once the server holds no connection (every probe socket was closed). */
const drained = (s: TestServer) =>
  waitUntil('the probe connections to close', () => new Promise<boolean>((r) => s.server.getConnections((_e, n) => r(n === 0))));

function app(): Promise<TestServer> {
  return startServer((req: http.IncomingMessage, res: http.ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/hop') {
      res.writeHead(302, { Location: '/done' }).end('moving');
    } else if (u.pathname === '/away') {
      res.writeHead(301, { Location: `http://localhost:${u.searchParams.get('port')}/steal` }).end();
    } else if (u.pathname === '/headers-only') {
      res.writeHead(200);
      res.write('first chunk'); // and the body never ends
    } else if (u.pathname === '/big') {
      res.writeHead(200).end('y'.repeat(5000));
    } else {
      res.writeHead(200).end(`done ${req.headers.host} ${req.headers['x-probe'] ?? ''} ${req.headers.connection}`);
    }
  });
}

describe('probeHttp', () => {
  test("redirects 'none' returns the 3xx and its Location; 'same-host' follows it", async () => {
    const s = await track(app());
    expect(await get(`http://127.0.0.1:${s.port}/hop`)).toMatchObject({ ok: true, status: 302, location: '/done', body: Buffer.from('moving') });
    expect(s.requests.map((r) => r.url)).toEqual(['/hop']);
    const followed = await get(`http://127.0.0.1:${s.port}/hop`, { redirects: 'same-host', host: 'pod:15020', headers: { 'x-probe': 'a' } });
    expect(followed).toMatchObject({ ok: true, status: 200 });
    // A relative redirect keeps the custom Host; every request says Connection: close.
    expect((followed as { body: Buffer }).body.toString()).toBe('done pod:15020 a close');
    await drained(s);
  });

  test("'same-host' stops at a redirect to another hostname (never requested)", async () => {
    const s = await track(app());
    const other = await track(app());
    const r = await get(`http://127.0.0.1:${s.port}/away?port=${other.port}`, { redirects: 'same-host' });
    expect(r).toMatchObject({ ok: true, status: 301, location: `http://localhost:${other.port}/steal` });
    expect(other.requests).toHaveLength(0);
  });

  test('the body is capped; maxBodyBytes 0 answers at the status line even when the body never ends', async () => {
    const s = await track(app());
    const big = await get(`http://127.0.0.1:${s.port}/big`, { maxBodyBytes: 100 });
    expect(big).toMatchObject({ ok: true, status: 200 });
    expect((big as { body: Buffer }).body.toString()).toBe('y'.repeat(100));
    expect(await get(`http://127.0.0.1:${s.port}/headers-only`, { maxBodyBytes: 0, timeoutMs: 10_000 })).toEqual({ ok: true, status: 200, body: Buffer.alloc(0) });
    await drained(s);
  });

  test('one timeout covers the body: an endless body under the cap times out, and the connection is closed', async () => {
    const s = await track(app());
    const r = await get(`http://127.0.0.1:${s.port}/headers-only`, { maxBodyBytes: 1024, timeoutMs: 200 });
    expect(r).toMatchObject({ ok: false, timedOut: true });
    expect(String((r as { error: Error }).error.message)).toBe('timed out after 200 ms');
    await drained(s);
  });

  test('source: 127.0.0.6 through a network, the kernel default without one', async () => {
    const s = await track(app());
    await get(`http://127.0.0.1:${s.port}/`, { network: ProbeNetwork.forPod(false) });
    await get(`http://127.0.0.1:${s.port}/`);
    expect(s.requests.map((r) => r.remoteAddress)).toEqual(['127.0.0.6', '127.0.0.1']);
  });

  test('a refused connection is an error, not a timeout', async () => {
    const s = await track(app());
    const port = s.port;
    await s.close();
    closers.pop();
    const r = await get(`http://127.0.0.1:${port}/`);
    expect(r).toMatchObject({ ok: false, timedOut: false, error: expect.objectContaining({ code: 'ECONNREFUSED' }) });
  });

  const cert = selfSignedCert();
  if (!cert) console.log('SKIP HTTPS prober test: `openssl` is not available to make a test certificate');
  (cert ? test : test.skip)('HTTPS over HTTP/1.1 without verification (http2 off)', async () => {
    const srv = https.createServer(cert as { key: Buffer; cert: Buffer }, (req, res) => res.writeHead(503).end(`tls ${req.httpVersion} ${req.socket.remoteAddress}`));
    const sockets = new Set<Socket>();
    srv.on('secureConnection', (sk) => sockets.add(sk));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const sk of sockets) sk.destroy();
          srv.close(() => r());
        }),
    );
    const port = (srv.address() as AddressInfo).port;
    const r = await get(`https://127.0.0.1:${port}/`, { network: ProbeNetwork.forPod(false) });
    expect(r).toMatchObject({ ok: true, status: 503 });
    expect((r as { body: Buffer }).body.toString()).toBe('tls 1.1 127.0.0.6');
  });
});
