/** The status server's routing and shell over real loopback sockets. */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import { AgentError } from '../../src/errors.js';
import { isLoopbackAddress } from '../../src/status/loopback.js';
import { fetch } from '../support/metrics-servers.js';
import { startStatus, type StatusHarness } from '../support/status-harness.js';
import { waitUntil } from '../support/wait.js';

let h: StatusHarness;
beforeAll(async () => {
  h = await startStatus({
    ready: (_req, res) => {
      res.writeHead(503, { 'Content-Type': 'text/plain' });
      res.end('not ready: testing\n');
    },
  });
});
afterAll(async () => {
  await h.close();
});

describe('routing', () => {
  test('/healthz/ready goes to the injected handler', async () => {
    const r = await fetch(h.port, '/healthz/ready');
    expect([r.status, r.text]).toEqual([503, 'not ready: testing\n']);
  });

  test('unknown paths are 404', async () => {
    for (const p of ['/', '/healthz', '/stats', '/quitquitquit/x', '/app-healthz']) {
      const r = await fetch(h.port, p);
      expect([p, r.status, r.text]).toEqual([p, 404, '404 page not found\n']);
    }
  });

  test('listens dual-stack by default: IPv4 and IPv6 loopback both answer', async () => {
    expect((await fetch(h.port, '/healthz/ready', { host: '127.0.0.1' })).status).toBe(503);
    expect((await fetch(h.port, '/healthz/ready', { host: '::1' })).status).toBe(503);
  });

  test('an unconfigured app probe path is 400 with Istio\'s text', async () => {
    const r = await fetch(h.port, '/app-health/nginx/livez');
    expect([r.status, r.text]).toEqual([400, 'app prober config does not exists for /app-health/nginx/livez']);
    const l = await fetch(h.port, '/app-lifecycle/nginx/prestopz?x=1');
    expect([l.status, l.text]).toEqual([400, 'app prober config does not exists for /app-lifecycle/nginx/prestopz']);
  });

  test('text replies are gzip-compressed when accepted', async () => {
    const r = await fetch(h.port, '/nope', { headers: { 'accept-encoding': 'gzip, deflate' } });
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.text).toBe('404 page not found\n');
    const identity = await fetch(h.port, '/nope', { headers: { 'accept-encoding': 'gzip;q=0' } });
    expect(identity.headers['content-encoding']).toBeUndefined();
  });
});

describe('/quitquitquit and /drain from loopback', () => {
  test.each(['/quitquitquit', '/drain'])('%s: GET/PUT → 405, POST → 200 OK, then the action', async (path) => {
    const key = path === '/drain' ? 'drain' : 'quit';
    const before = h.calls[key];
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const r = await fetch(h.port, path, { method });
      expect([method, r.status, r.text]).toEqual([method, 405, 'Method Not Allowed\n']);
    }
    expect(h.calls[key]).toBe(before);
    const r = await fetch(h.port, path, { method: 'POST', host: '::1' });
    expect([r.status, r.text]).toEqual([200, 'OK']);
    await waitUntil(`a ${key} call`, () => h.calls[key] === before + 1, 2000, 1);
  });

  test('a request body above the limit is refused before it is read', async () => {
    const before = h.calls.quit;
    const socket = net.connect(h.port, '127.0.0.1');
    let reply = '';
    socket.setEncoding('utf8').on('data', (d: string) => (reply += d));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('POST /quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
    await closed;
    expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
    expect(h.calls.quit).toBe(before);
  });
});

describe('start and close', () => {
  test('a port in use fails start with an error naming the port', async () => {
    let caught: unknown;
    try {
      const s = await startStatus({ port: h.port });
      await s.close();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AgentError);
    expect((caught as AgentError).code).toBe('STATUS_SERVER_LISTEN_FAILED');
    expect((caught as Error).message).toBe(`status server: cannot listen on port ${h.port}: the port is already in use`);
  });

  test('close stops listening, is idempotent, and cuts an idle keep-alive connection', async () => {
    const s = await startStatus();
    const socket = net.connect(s.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    const closedSocket = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await Promise.all([s.close(), s.server.close(), s.server[Symbol.asyncDispose]()]);
    await closedSocket;
    const refused = await fetch(s.port, '/healthz/ready').catch((err: NodeJS.ErrnoException) => err.code);
    expect(refused).toBe('ECONNREFUSED');
  });

  test('StatusServer.start binds an explicit host', async () => {
    const s = await startStatus({ host: '127.0.0.1' });
    try {
      expect((await fetch(s.port, '/x')).status).toBe(404);
      expect(await fetch(s.port, '/x', { host: '::1' }).catch((err: NodeJS.ErrnoException) => err.code)).toBe('ECONNREFUSED');
    } finally {
      await s.close();
    }
  });
});

describe('loopback peers (SPEC §6)', () => {
  test.each<[string | undefined, boolean]>([
    ['127.0.0.1', true],
    ['127.255.3.4', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:127.0.0.6', true],
    ['0:0:0:0:0:ffff:127.1.2.3', true],
    ['10.244.1.7', false],
    ['::ffff:10.244.1.7', false],
    ['128.0.0.1', false],
    ['::2', false],
    ['fe80::1', false],
    ['1270.0.0.1', false],
    ['', false],
    [undefined, false],
  ])('%s → %s', (address, expected) => {
    expect(isLoopbackAddress(address)).toBe(expected);
  });
});
