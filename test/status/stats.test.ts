/**
 * The merged metrics endpoint's admission (METRICS_MERGE_CONCURRENCY / METRICS_MERGE_QUEUE) and
 * its bounded sink, over real sockets: a StatusServer, an Envoy stand-in that answers when the
 * test says so, and scrapers.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import { fetch, startServer, streamLines, type FetchResult, type TestServer } from '../support/metrics-servers.js';
import { startStatus, type StatusHarness } from '../support/status-harness.js';
import { waitUntil } from '../support/wait.js';
import { MERGE_BUSY_BODY, metricsEndpointOptions } from '../../src/status/stats.js';
import { createAgentMetrics } from '../../src/metrics/registry.js';
import { seedConfig } from '../support/config.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await (cleanup.pop() as () => Promise<void>)();
});
const track = <T extends { close(): Promise<void> }>(x: T): T => {
  cleanup.push(() => x.close());
  return x;
};

/** An Envoy stand-in whose responses wait until `answer(i)`. */
async function heldEnvoy(): Promise<{ server: TestServer; held: http.ServerResponse[]; answer(i: number): void }> {
  const held: http.ServerResponse[] = [];
  const server = track(
    await startServer((_req, res) => {
      held.push(res);
    }),
  );
  return {
    server,
    held,
    answer: (i) => {
      const res = held[i] as http.ServerResponse;
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(`# TYPE envoy_answer_${i} counter\nenvoy_answer_${i} 1\n`);
    },
  };
}

describe('merged scrapes in flight are bounded', () => {
  test('one runs, one waits and runs when the slot frees, the next is refused with 503 and Retry-After', async () => {
    const envoy = await heldEnvoy();
    const h: StatusHarness = track(await startStatus({ envoyPort: envoy.server.port, mergeConcurrency: 1, mergeQueue: 1 }));
    const a = fetch(h.port, '/stats/prometheus');
    await waitUntil('the first scrape reached Envoy', () => envoy.held.length === 1);
    const b = fetch(h.port, '/stats/prometheus');
    // b is queued: it does not reach Envoy while a runs; c finds the queue full.
    const c = await fetch(h.port, '/stats/prometheus');
    expect(c.status).toBe(503);
    expect(c.headers['retry-after']).toBe('1');
    expect(c.text).toBe(MERGE_BUSY_BODY);
    expect(envoy.held.length).toBe(1);
    envoy.answer(0);
    const ra = await a;
    expect(ra.status).toBe(200);
    expect(ra.text).toContain('envoy_answer_0 1\n');
    await waitUntil('the queued scrape reached Envoy', () => envoy.held.length === 2);
    envoy.answer(1);
    const rb = await b;
    expect(rb.status).toBe(200);
    expect(rb.text).toContain('envoy_answer_1 1\n');
  });

  test('a queued scrape waits at most half its scrape timeout, then 503; a scraper that leaves frees its queue place', async () => {
    const envoy = await heldEnvoy();
    const h: StatusHarness = track(await startStatus({ envoyPort: envoy.server.port, mergeConcurrency: 1, mergeQueue: 1 }));
    const a = fetch(h.port, '/stats/prometheus');
    await waitUntil('the first scrape reached Envoy', () => envoy.held.length === 1);
    // Header 1 s → source timeout 0.75 s → at most 0.375 s in the queue.
    const t0 = performance.now();
    const late = await fetch(h.port, '/stats/prometheus', { headers: { 'x-prometheus-scrape-timeout-seconds': '1' } });
    expect(late.status).toBe(503);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
    // A scraper that goes away while queued: its place is free again (else the next is refused).
    const gone = http.get({ host: '127.0.0.1', port: h.port, path: '/stats/prometheus', agent: false });
    gone.on('error', () => undefined);
    await new Promise((resolve) => gone.once('socket', (s: net.Socket) => s.once('connect', resolve)));
    gone.destroy();
    const next = waitUntil(
      'a scrape that is queued, not refused',
      async () => {
        const r: FetchResult = await fetch(h.port, '/stats/prometheus', { headers: { 'x-prometheus-scrape-timeout-seconds': '1' } });
        return r.status === 503 && r.ms >= 300 ? r : undefined;
      },
      10_000,
    );
    expect((await next).text).toBe(MERGE_BUSY_BODY);
    envoy.answer(0);
    expect((await a).status).toBe(200);
  });
});

describe('the sink is bounded', () => {
  test('a scraper that reads nothing for a whole source timeout fails the scrape: its connection and Envoy’s are closed', async () => {
    const counter = { sent: 0, closed: false };
    const envoy = track(await startServer(streamLines(200 * 1024 * 1024, counter, 'envoy_big')));
    const h: StatusHarness = track(await startStatus({ envoyPort: envoy.port }));
    const sock = net.connect(h.port, '127.0.0.1');
    cleanup.push(async () => void sock.destroy());
    sock.on('error', () => undefined);
    await new Promise((resolve) => sock.once('connect', resolve));
    // Never read: the agent's socket buffers fill, then it may wait no longer than 0.75 s for room.
    sock.pause();
    sock.write('GET /stats/prometheus HTTP/1.1\r\nHost: x\r\nX-Prometheus-Scrape-Timeout-Seconds: 1\r\n\r\n');
    await waitUntil('the agent gave up the stalled scrape and closed Envoy’s request', () => counter.closed, 20_000);
    expect(counter.sent).toBeLessThan(200 * 1024 * 1024);
    // What the scraper got ends without the chunked terminator, and then the connection closes.
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    const closed = new Promise((resolve) => sock.once('close', resolve));
    sock.resume();
    await closed;
    const body = Buffer.concat(got);
    expect(body.subarray(0, 15).toString()).toBe('HTTP/1.1 200 OK');
    expect(body.subarray(-7).toString()).not.toBe('\r\n0\r\n\r\n');
  }, 30_000);
});

describe('METRICS_MERGE_CONCURRENCY / METRICS_MERGE_QUEUE', () => {
  test('default to 2 running and 32 waiting; a negative value is refused naming the variable', () => {
    const deps = { metrics: createAgentMetrics({ defaultMetrics: false }), localhost: '127.0.0.1' };
    expect(metricsEndpointOptions(seedConfig(), deps)).toMatchObject({ mergeConcurrency: 2, mergeQueue: 32 });
    expect(metricsEndpointOptions(seedConfig({ extraEnv: { METRICS_MERGE_CONCURRENCY: '0', METRICS_MERGE_QUEUE: '5' } }), deps)).toMatchObject({
      mergeConcurrency: 0,
      mergeQueue: 5,
    });
    expect(() => metricsEndpointOptions(seedConfig({ extraEnv: { METRICS_MERGE_QUEUE: '-1' } }), deps)).toThrow(
      'METRICS_MERGE_QUEUE: expected an integer >= 0, got "-1"',
    );
  });
});
