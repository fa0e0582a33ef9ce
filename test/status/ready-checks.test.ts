/**
 * Agent-side readiness checks (Istio's `Agent.Check`, e.g. the DNS lookup table): asked only
 * once Envoy's own result passes, their reason is what /healthz/ready answers (503), they do
 * not change `current()` (Envoy's state, which is reported to the control plane), and
 * disposing one removes it. Over real HTTP: a fake Envoy admin and the tracker's handler.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvoyAdminClient } from '../../src/envoy/admin.js';
import { createLogger } from '../../src/log.js';
import { ReadinessTracker } from '../../src/status/ready.js';
import { DNS_NOT_READY_REASON } from '../../src/dns/enabled.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(handler: http.RequestListener): Promise<number> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => s.close(r)));
  return (s.address() as AddressInfo).port;
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/healthz/ready', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('readiness with an agent check', () => {
  test('503 with the check\'s reason once Envoy passes; 200 when it passes too; Envoy\'s own failure comes first', async () => {
    let live = false;
    const adminPort = await listen((_q, res) => res.end(live ? 'server.state: 0\nlistener_manager.workers_started: 1\n' : 'server.state: 2\n'));
    const admin = new EnvoyAdminClient({ host: '127.0.0.1', port: adminPort });
    const tracker = new ReadinessTracker({ admin, standalone: true, log: createLogger({ outputLevel: 'none' }) });
    cleanups.push(() => admin.close(), () => tracker[Symbol.asyncDispose]());
    let tableReady = false;
    const check = tracker.addCheck(() => (tableReady ? undefined : DNS_NOT_READY_REASON));
    const port = await listen(tracker.handler);

    tracker.envoyStarted();
    const first = await get(port);
    expect(first.status).toBe(503);
    expect(first.body).not.toContain('DNS'); // Envoy is not live yet: its reason first

    live = true;
    const deadline = Date.now() + 10_000;
    while (!tracker.current().ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(tracker.current()).toEqual({ ready: true });
    expect(await get(port)).toEqual({ status: 503, body: 'istio DNS capture is turned ON and DNS lookup table is not ready yet\n' });

    tableReady = true;
    expect(await get(port)).toEqual({ status: 200, body: '' });

    tableReady = false;
    check[Symbol.dispose]();
    expect((await get(port)).status).toBe(200);
  });
});
