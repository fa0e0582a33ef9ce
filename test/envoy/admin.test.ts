import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { EnvoyAdminClient } from '../../src/envoy/admin.js';

interface Seen {
  method: string;
  rawTarget: string;
  port: number;
}

/** A real HTTP server that records each request's raw target and the client's source port. */
async function startServer(handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', rawTarget: req.url ?? '', port: req.socket.remotePort ?? 0 });
    if (handler) handler(req, res);
    else res.end('server.state: 0\nlistener_manager.workers_started: 1\n');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return { seen, sockets, port, stop };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const server = await startServer(handler);
  const client = new EnvoyAdminClient({ host: '127.0.0.1', port: server.port });
  cleanups.push(server.stop, () => client.close());
  return { server, client };
}

describe('EnvoyAdminClient (node:http)', () => {
  test('sends the raw, unencoded query byte for byte and parses /stats', async () => {
    const { server, client } = await setup();
    const filter = '^(server\\.state|listener_manager\\.workers_started)';
    const { stats } = await client.stats(filter, 2_000);
    expect(server.seen[0]).toMatchObject({ method: 'GET', rawTarget: `/stats?usedonly&filter=${filter}` });
    expect(stats.get('server.state')).toBe('0');
    expect(stats.get('listener_manager.workers_started')).toBe('1');
    await client.post('/quitquitquit', 2_000);
    expect(server.seen[1]).toMatchObject({ method: 'POST', rawTarget: '/quitquitquit' });
  });

  test('reuses a keep-alive connection; resetConnections moves later calls to a new one', async () => {
    const { server, client } = await setup();
    await client.call('GET', '/ready', 2_000);
    await client.call('GET', '/ready', 2_000);
    expect(server.seen[1]!.port).toBe(server.seen[0]!.port);
    client.resetConnections();
    await client.call('GET', '/ready', 2_000);
    expect(server.seen[2]!.port).not.toBe(server.seen[0]!.port);
    // The old connection is closed by the client once idle.
    const deadline = Date.now() + 5_000;
    while (server.sockets.size > 1 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(server.sockets.size).toBe(1);
  });

  test('a request in flight finishes on the old connection after resetConnections', async () => {
    let release: (() => void) | undefined;
    const { client } = await setup((req, res) => {
      if (req.url === '/slow') release = () => res.end('slow done');
      else res.end('fast');
    });
    const slow = client.call('GET', '/slow', 5_000);
    while (!release) await new Promise((r) => setImmediate(r));
    client.resetConnections();
    expect((await client.call('GET', '/fast', 2_000)).body).toBe('fast');
    release();
    expect(await slow).toEqual({ status: 200, body: 'slow done' });
  });

  test('non-200 is an error for stats/post; call reports the status', async () => {
    const { client } = await setup((_req, res) => {
      res.statusCode = 503;
      res.end('no');
    });
    expect(await client.call('GET', '/ready', 2_000)).toEqual({ status: 503, body: 'no' });
    await expect(client.stats('x', 2_000)).rejects.toThrow('admin /stats returned HTTP 503: no');
    await expect(client.post('/drain', 2_000)).rejects.toThrow('admin POST /drain returned HTTP 503');
  });

  test('the timeout covers a body that never ends, and an abort signal cancels', async () => {
    const { client } = await setup((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });
    const t0 = performance.now();
    await expect(client.call('GET', '/stats', 200)).rejects.toThrow();
    expect(performance.now() - t0).toBeLessThan(5_000);
    const ac = new AbortController();
    const p = client.call('GET', '/stats', 10_000, ac.signal);
    ac.abort(new Error('stop now'));
    await expect(p).rejects.toThrow('stop now');
  });

  test('connection refused rejects', async () => {
    const server = await startServer();
    await server.stop();
    const client = new EnvoyAdminClient({ host: '127.0.0.1', port: server.port });
    cleanups.push(() => client.close());
    await expect(client.call('GET', '/ready', 2_000)).rejects.toThrow(/ECONNREFUSED/);
  });

  test('serverInfo: state and restart epoch, each call on a fresh connection beside a pooled one', async () => {
    let body = JSON.stringify({ state: 'LIVE', command_line_options: { restart_epoch: 1 } });
    const { server, client } = await setup((req, res) => {
      if (req.url === '/server_info') res.end(body);
      else res.end('ok');
    });
    await client.call('GET', '/ready', 2_000);
    expect(await client.serverInfo(2_000)).toEqual({ state: 'LIVE', epoch: 1 });
    expect(await client.serverInfo(2_000)).toEqual({ state: 'LIVE', epoch: 1 });
    await client.call('GET', '/ready', 2_000);
    const [pooled, info1, info2, pooledAgain] = server.seen.map((s) => s.port);
    expect(new Set([pooled, info1, info2]).size).toBe(3);
    expect(pooledAgain).toBe(pooled);
    body = JSON.stringify({ state: 'PRE_INITIALIZING' });
    expect(await client.serverInfo(2_000)).toEqual({ state: 'PRE_INITIALIZING', epoch: 0 });
    body = 'not json';
    await expect(client.serverInfo(2_000)).rejects.toThrow('admin /server_info: unreadable body: not json');
  });

  test('serverInfo: non-200 rejects', async () => {
    const { client } = await setup((_req, res) => {
      res.statusCode = 503;
      res.end('starting');
    });
    await expect(client.serverInfo(2_000)).rejects.toThrow('admin /server_info returned HTTP 503: starting');
  });
});
