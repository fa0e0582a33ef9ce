/** Restart on crash (SPEC §5.1) on a fake clock: backoff, jitter, cap, healthy reset, crash budget, spawn failure. */
import { describe, expect, test } from '@jest/globals';
import { settle } from './fakes.js';
import { failure, running, startSupervisor, type Harness } from './harness.js';

/** Crashes the current Envoy and fires timers until the next one runs; returns the delay it waited. */
async function crashAndRestart(h: Harness): Promise<number> {
  const before = h.spawner.envoys.length;
  const crashedAt = h.clock.now();
  h.spawner.last.exit(1);
  await h.clock.until('restart', () => h.spawner.envoys.length > before && h.sup.state === 'running');
  return h.spawner.last.startedAt - crashedAt;
}

describe('backoff between restarts', () => {
  test('exponential from the initial delay, capped at the maximum', async () => {
    const h = await running({ policy: { initialBackoffMs: 1000, maxBackoffMs: 8000, backoffMultiplier: 2 } });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) delays.push(await crashAndRestart(h));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(h.text()).toContain('restarting Envoy in 4000ms');
    // Never two at once: each start came after the previous Envoy's exit.
    for (let i = 1; i < h.spawner.envoys.length; i++) {
      expect(h.spawner.envoys[i]?.startedAt).toBeGreaterThanOrEqual(h.spawner.envoys[i - 1]?.exitedAt ?? Infinity);
    }
    expect(h.spawner.requests.every((r) => r.epoch === 0)).toBe(true);
  });

  test('jitter spreads each delay by ±backoffJitter around the exponential base', async () => {
    const low = await running({ random: () => 0, policy: { backoffJitter: 0.2 } });
    expect([await crashAndRestart(low), await crashAndRestart(low)]).toEqual([800, 1600]);
    const high = await running({ random: () => 0.999, policy: { backoffJitter: 0.2 } });
    const d = [await crashAndRestart(high), await crashAndRestart(high)];
    expect(d[0]).toBeGreaterThan(1190);
    expect(d[0]).toBeLessThanOrEqual(1200);
    expect(d[1]).toBeGreaterThan(2390);
    expect(d[1]).toBeLessThanOrEqual(2400);
  });

  test('resets only after healthyResetMs of readiness, not on start', async () => {
    const h = await running({ policy: { healthyResetMs: 60_000 } });
    expect(await crashAndRestart(h)).toBe(1000);
    // Up for far longer than healthyResetMs but never ready: no reset.
    await h.clock.advance(10 * 60_000);
    expect(await crashAndRestart(h)).toBe(2000);
    // Ready, but dies 1 ms short of healthyResetMs: no reset.
    h.sup.markReady();
    await h.clock.advance(59_999);
    expect(await crashAndRestart(h)).toBe(4000);
    expect(h.text()).not.toContain('restart backoff reset');
    // Ready for the full healthyResetMs: the next delay is the initial one again.
    h.sup.markReady();
    await h.clock.advance(60_000);
    expect(h.text()).toMatch(/Envoy \(pid \d+\) healthy for 1m0s: restart backoff reset/);
    expect(await crashAndRestart(h)).toBe(1000);
  });

  test('a healthy timer does not outlive its Envoy', async () => {
    const h = await running();
    h.sup.markReady();
    h.spawner.last.exit(1);
    await settle();
    expect(h.clock.pending()).toEqual([1000]); // the backoff only
  });
});

describe('unexpected exits', () => {
  test('logged with the classification and the stderr tail; counted by reason; readiness told', async () => {
    const h = startSupervisor({ run: false });
    h.spawner.stderrTail = ['[critical] boom', 'Segmentation fault'];
    h.run();
    await settle();
    h.spawner.last.exit(null, 'SIGSEGV');
    await settle();
    expect(h.text()).toContain(`error\tEnvoy (pid ${h.spawner.last.pid}) killed by SIGSEGV unexpectedly; last stderr lines:\n[critical] boom\nSegmentation fault`);
    expect(h.events).toEqual(['up 1', `started ${h.spawner.last.pid}`, 'up 0', 'exited unexpected', 'restart signaled']);
    expect(h.cleanups()).toBe(1);
    await h.clock.advance(1000);
    h.spawner.last.exit(null, 'SIGKILL');
    await settle();
    expect(h.text()).toContain('killed by SIGKILL (possibly OOM-killed) unexpectedly');
    await h.clock.advance(2000);
    h.spawner.last.exit(2);
    await settle();
    expect(h.events.filter((e) => e.startsWith('restart '))).toEqual(['restart signaled', 'restart killed', 'restart exited']);
  });
});

describe('crash budget', () => {
  test('maxExits exits within the window end run() with ENVOY_CRASH_LOOP, exit status 1', async () => {
    const h = await running({ policy: { crashBudget: { maxExits: 3, windowMs: 60_000 } } });
    await crashAndRestart(h);
    await crashAndRestart(h);
    h.spawner.last.exit(1);
    const err = failure(await h.untilStopped());
    expect(err.code).toBe('ENVOY_CRASH_LOOP');
    expect(err.exitCode).toBe(1);
    expect(err.message).toBe("Envoy exited 3 times within 1m0s (last: exited with code 1); giving up so the kubelet's CrashLoopBackOff takes over");
    expect(h.sup.state).toBe('stopped');
    expect(h.spawner.envoys).toHaveLength(3);
    expect(h.spawner.alive()).toEqual([]);
    expect(h.clock.pending()).toEqual([]);
  });

  test('the window slides: exits spread wider than it never exhaust the budget', async () => {
    const h = await running({ policy: { crashBudget: { maxExits: 3, windowMs: 60_000 }, healthyResetMs: 1000 } });
    for (let i = 0; i < 8; i++) {
      await h.clock.advance(31_000);
      await crashAndRestart(h);
    }
    expect(h.outcome()).toBeUndefined();
    expect(h.spawner.envoys).toHaveLength(9);
  });
});

describe('spawn failure', () => {
  test('is a configuration error: run() rejects at once, no retry, nothing left scheduled', async () => {
    const h = startSupervisor({ run: false });
    h.spawner.failWith = 'ENOENT';
    h.run();
    await settle();
    const err = failure(h.outcome());
    expect(err.code).toBe('ENVOY_SPAWN_FAILED');
    expect(err.message).toContain('binaryPath /nonexistent/envoy');
    expect(h.clock.pending()).toEqual([]);
    await h.clock.advance(3600_000);
    expect(h.spawner.requests).toHaveLength(1);
    expect(h.transitions()).toEqual(['idle -> starting', 'starting -> stopped']);
  });

  test('on a restart after a crash, too', async () => {
    const h = await running();
    h.spawner.failWith = 'EACCES';
    h.spawner.last.exit(1);
    expect(failure(await h.untilStopped()).code).toBe('ENVOY_SPAWN_FAILED');
    expect(h.spawner.requests).toHaveLength(2);
  });
});
