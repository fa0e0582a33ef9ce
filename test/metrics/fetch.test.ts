/**
 * The scrape's outbound GETs (src/metrics/fetch.ts) against real loopback servers: backpressure,
 * failures mid-body, aborts, and the minor GCs that return socket read buffers.
 */
import { afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import { startServer, type TestServer } from '../support/metrics-servers.js';

// Installed before the module loads: it picks up `gc` once, as it does under the launcher's --expose-gc.
const gcCalls: string[] = [];
(globalThis as { gc?: (o: { type: string }) => void }).gc = (o) => gcCalls.push(o.type);
let fetchMod: typeof import('../../src/metrics/fetch.js');
beforeAll(async () => {
  fetchMod = await import('../../src/metrics/fetch.js');
});

const servers: TestServer[] = [];
afterEach(async () => {
  while (servers.length > 0) await (servers.pop() as TestServer).close();
});

/** Streams `total` bytes of `a\n` lines in 64 KiB writes, honouring backpressure; records how far it got. */
function streaming(total: number, seen: { sent: number; closed: boolean }) {
  const block = Buffer.alloc(64 * 1024, 'a\n');
  return (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.on('close', () => (seen.closed = true));
    const pump = () => {
      while (seen.sent < total) {
        if (res.destroyed) return;
        seen.sent += block.length;
        if (!res.write(block)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  };
}

async function open(server: TestServer, signal = new AbortController().signal) {
  const agent = new http.Agent({ keepAlive: false });
  return fetchMod.get(agent, { host: '127.0.0.1', port: server.port, path: '/', headers: {}, signal });
}

describe('consume', () => {
  test('reads the whole body; a pending promise pauses it (the sender sees backpressure)', async () => {
    const seen = { sent: 0, closed: false };
    const server = await startServer(streaming(32 * 1024 * 1024, seen));
    servers.push(server);
    const res = await open(server);
    let got = 0;
    let release: (() => void) | undefined;
    const paused = new Promise<void>((resolve) => (release = resolve));
    const done = fetchMod.consume(res, (chunk) => {
      got += chunk.length;
      // Hold the first chunk's promise until the sender has stalled.
      if (release !== undefined && got === chunk.length) return paused;
      return undefined;
    });
    // While the promise is pending, the sender can only fill the socket buffers.
    let last = -1;
    while (seen.sent !== last) {
      last = seen.sent;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(seen.sent).toBeLessThan(16 * 1024 * 1024);
    (release as () => void)();
    await done;
    expect(got).toBe(32 * 1024 * 1024);
  });

  test('a minor GC after every 4 MiB read (the exposed gc)', async () => {
    const server = await startServer(streaming(9 * 1024 * 1024, { sent: 0, closed: false }));
    servers.push(server);
    gcCalls.length = 0;
    await fetchMod.consume(await open(server), () => undefined);
    expect(fetchMod.RECLAIM_EVERY_BYTES).toBe(4 * 1024 * 1024);
    expect(gcCalls).toEqual(['minor', 'minor']);
  });

  test('rejects when the sender resets mid-body, and when the callback throws (the response is destroyed)', async () => {
    const reset = await startServer((_req, res) => {
      res.writeHead(200);
      res.write('a 1\n');
      setImmediate(() => res.socket?.destroy());
    });
    servers.push(reset);
    await expect(fetchMod.consume(await open(reset), () => undefined)).rejects.toThrow();

    const seen = { sent: 0, closed: false };
    const big = await startServer(streaming(64 * 1024 * 1024, seen));
    servers.push(big);
    const res = await open(big);
    await expect(
      fetchMod.consume(res, () => {
        throw new Error('not an exposition');
      }),
    ).rejects.toThrow('not an exposition');
    expect(res.destroyed).toBe(true);
    const deadline = Date.now() + 5000;
    while (!seen.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen.closed).toBe(true);
  });
});

describe('get', () => {
  test('an abort before the headers rejects with the abort reason; after them it ends the body with an error', async () => {
    const silent = await startServer(() => undefined); // never answers
    servers.push(silent);
    const ctl = new AbortController();
    const pending = open(silent, ctl.signal);
    ctl.abort(new Error('deadline'));
    await expect(pending).rejects.toThrow('deadline');

    const server = await startServer(streaming(64 * 1024 * 1024, { sent: 0, closed: false }));
    servers.push(server);
    const ctl2 = new AbortController();
    const res = await open(server, ctl2.signal);
    const done = fetchMod.consume(res, () => {
      ctl2.abort(new Error('scraper left'));
    });
    await expect(done).rejects.toThrow();
  });
});
