import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { EnvoyAdminClient } from '../../src/envoy/admin.js';
import { createLogger } from '../../src/log.js';
import { ReadinessTracker } from '../../src/status/ready.js';
import { waitUntil } from '../support/wait.js';

/** A fake Envoy admin over real HTTP: LIVE once `live()` says so; records request times and concurrency. */
async function startAdmin(live: () => boolean) {
  const times: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((_req, res) => {
    times.push(performance.now());
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    // Answer a little later so overlapping polls would show up as concurrency.
    setTimeout(() => {
      inFlight--;
      res.end(live() ? 'server.state: 0\nlistener_manager.workers_started: 1\n' : 'server.state: 2\n');
    }, 5);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return { port: (server.address() as AddressInfo).port, times, maxInFlight: () => maxInFlight, stop };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('readiness polls fast until the first success (issue 3)', () => {
  test('polls every ~20 ms in the first second, sequentially, and sees LIVE soon after it happens', async () => {
    const t0 = performance.now();
    const liveAfterMs = 300;
    const admin = await startAdmin(() => performance.now() - t0 >= liveAfterMs);
    const client = new EnvoyAdminClient({ host: '127.0.0.1', port: admin.port });
    let readyAt = 0;
    const tracker = new ReadinessTracker({ admin: client, standalone: true, log: createLogger({ outputLevel: 'none' }), onReady: () => (readyAt = performance.now()) });
    cleanups.push(admin.stop, () => client.close(), () => tracker[Symbol.asyncDispose]());
    tracker.envoyStarted();
    await waitUntil('readyAt > 0', () => readyAt > 0, 10_000, 5);
    expect(tracker.current()).toEqual({ ready: true });
    // At the old fixed 100 ms there would be at most 4 polls before LIVE; at 20 ms, about 12.
    const before = admin.times.filter((t) => t - t0 < liveAfterMs).length;
    expect(before).toBeGreaterThanOrEqual(6);
    expect(admin.maxInFlight()).toBe(1);
    // Ready is seen within a poll or so of LIVE (generous: the machine may be loaded).
    expect(readyAt - t0 - liveAfterMs).toBeLessThan(250);
  });

  test('after the fast window the loop falls back to pollIntervalMs', async () => {
    const admin = await startAdmin(() => false);
    const client = new EnvoyAdminClient({ host: '127.0.0.1', port: admin.port });
    const tracker = new ReadinessTracker({
      admin: client,
      standalone: true,
      log: createLogger({ outputLevel: 'none' }),
      fastPollWindowMs: 200,
      pollIntervalMs: 400,
    });
    cleanups.push(admin.stop, () => client.close(), () => tracker[Symbol.asyncDispose]());
    const t0 = performance.now();
    tracker.envoyStarted();
    await waitUntil('performance.now() - t0 > 1_500', () => performance.now() - t0 > 1_500, 5_000, 5);
    await tracker[Symbol.asyncDispose]();
    const fast = admin.times.filter((t) => t - t0 < 200).length;
    const slow = admin.times.filter((t) => t - t0 >= 700 && t - t0 < 1_500).length;
    expect(fast).toBeGreaterThanOrEqual(4);
    // 800 ms at one poll per >= 400 ms: at most 3 (a slower machine only lowers this).
    expect(slow).toBeLessThanOrEqual(3);
    expect(slow).toBeGreaterThanOrEqual(1);
    expect(admin.maxInFlight()).toBe(1);
  });
});

describe('readiness subscriptions', () => {
  test('whenReady runs once per Envoy process that passes; disposing the subscription stops it', async () => {
    const admin = await startAdmin(() => true);
    const client = new EnvoyAdminClient({ host: '127.0.0.1', port: admin.port });
    let passes = 0;
    const tracker = new ReadinessTracker({ admin: client, standalone: true, log: createLogger({ outputLevel: 'none' }), onReady: () => void passes++ });
    cleanups.push(admin.stop, () => client.close(), () => tracker[Symbol.asyncDispose]());
    let heard = 0;
    const subscription = tracker.whenReady(() => void heard++);
    tracker.envoyStarted();
    await waitUntil('passes === 1', () => passes === 1, 10_000, 5);
    expect(heard).toBe(1);
    subscription[Symbol.dispose]();
    tracker.envoyStarted();
    await waitUntil('passes === 2', () => passes === 2, 10_000, 5);
    expect(heard).toBe(1);
  });
});
