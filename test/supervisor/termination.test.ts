/** Termination (SPEC §5.2) on a fake clock and a fake admin: drain, its waits, quit, /drain, idempotence. */
import { describe, expect, test } from '@jest/globals';
import { settle } from './fakes.js';
import { running, type Harness } from './harness.js';

const DRAIN_SIDECAR = 'POST /drain_listeners?inboundonly&graceful';
const POLL = 'GET /stats?usedonly&filter=downstream_cx_active$';
const cx = (n: number) => `listener.0.0.0.0_15006.downstream_cx_active: ${n}\nlistener.0.0.0.0_15021.downstream_cx_active: 4\n`;

/** The fake time at which run() settled. */
async function stoppedAt(h: Harness): Promise<number> {
  expect(await h.untilStopped()).toEqual({ code: 0 });
  return h.clock.now();
}

describe('SIGTERM with the fixed drain duration', () => {
  test('readiness flips at once, listeners drain, Envoy is stopped terminationDrainMs later, exit 0', async () => {
    const h = await running({ drain: { terminationDrainMs: 5000 } });
    const envoy = h.spawner.last;
    void h.sup.terminate('received SIGTERM');
    expect(h.events.at(-1)).toBe('terminating received SIGTERM'); // synchronously
    await settle();
    expect(h.admin.calls).toEqual([DRAIN_SIDECAR]);
    expect(h.text()).toContain('waiting 5s for Envoy to drain');
    await h.clock.advance(4999);
    expect(envoy.signals).toEqual([]);
    await h.clock.advance(1);
    expect(envoy.signals).toEqual(['SIGTERM']);
    expect(await stoppedAt(h)).toBe(5000);
    expect(h.text()).toContain(`Envoy (pid ${envoy.pid}) exited with code 0`);
    expect(h.events.slice(-3)).toEqual(['terminating received SIGTERM', 'exited expected', 'up 0']);
    expect(h.cleanups()).toBe(1);
    expect(h.transitions()).toEqual(['idle -> starting', 'starting -> running', 'running -> terminating', 'terminating -> stopped']);
    expect(h.clock.pending()).toEqual([]);
  });

  test('a router drains all listeners (graceful without inboundonly)', async () => {
    const h = await running({ drain: { proxyType: 'router' } });
    void h.sup.terminate('SIGTERM');
    await stoppedAt(h);
    expect(h.admin.posts()).toEqual(['POST /drain_listeners?graceful']);
  });

  test('the wait ends when Envoy exits first; that exit is expected, not a crash', async () => {
    const h = await running({ drain: { terminationDrainMs: 60_000 } });
    void h.sup.terminate('SIGTERM');
    await h.clock.advance(1500);
    h.spawner.last.exit(0);
    expect(await stoppedAt(h)).toBe(1500);
    expect(h.spawner.last.signals).toEqual([]);
    expect(h.text()).not.toMatch(/unexpectedly|restarting Envoy/);
    expect(h.spawner.envoys).toHaveLength(1);
  });

  test('an Envoy exit racing the SIGTERM (same turn, not yet seen) is expected, not a crash', async () => {
    const h = await running();
    h.spawner.last.exit(0); // e.g. the kubelet signalled the whole pod
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(0);
    expect(h.text()).not.toMatch(/unexpectedly|restarting Envoy/);
    expect(h.admin.calls).toEqual([]);
  });

  test('a failed drain POST is logged, never fatal', async () => {
    const h = await running({ drain: { terminationDrainMs: 100 } });
    h.admin.postFails = new Error('connect ECONNREFUSED 127.0.0.1:15000');
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(100);
    expect(h.text()).toContain(`warn\t${DRAIN_SIDECAR} failed: connect ECONNREFUSED 127.0.0.1:15000`);
  });

  test('Envoy ignoring SIGTERM is killed killGraceMs later', async () => {
    const h = await running({ policy: { killGraceMs: 1000 }, drain: { terminationDrainMs: 0 } });
    h.spawner.last.ignoreSigterm = true;
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(1000);
    expect(h.spawner.last.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(h.text()).toContain('killed by SIGKILL (possibly OOM-killed)');
  });
});

describe('EXIT_ON_ZERO_ACTIVE_CONNECTIONS', () => {
  const zero = { exitOnZeroActiveConnections: true, minimumDrainMs: 5000, pollIntervalMs: 1000 };

  test('minimumDrainMs, then a poll every pollIntervalMs until no connection is active (15021 excluded)', async () => {
    const h = await running({ drain: zero });
    h.admin.statsReplies = [cx(3), cx(1), cx(0)];
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(7000);
    expect(h.admin.calls).toEqual([DRAIN_SIDECAR, POLL, POLL, POLL]);
    expect(h.admin.callTimes).toEqual([0, 5000, 6000, 7000]);
    expect(h.text()).toContain('waiting 5s, then until Envoy has no active connections');
    expect(h.lines.filter((l) => l.includes('active connections, waiting'))).toEqual(['info\t3 active connections, waiting', 'info\t1 active connections, waiting']);
    expect(h.text()).toContain('no active connections: done draining');
  });

  test('an empty stats body ends the wait', async () => {
    const h = await running({ drain: zero });
    h.admin.statsReplies = [''];
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(5000);
    expect(h.text()).toContain('no active-connection stats: done draining');
  });

  test('5 failed polls in a row end the wait; a successful poll resets the count', async () => {
    const h = await running({ drain: zero });
    const fail = new Error('timeout');
    h.admin.statsReplies = [fail, fail, fail, fail, cx(2), fail, fail, fail, fail, fail, cx(9)];
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(5000 + 9 * 1000);
    expect(h.admin.calls.filter((c) => c === POLL)).toHaveLength(10);
    expect(h.text()).toContain('failed to read active connections (4/5): timeout');
    expect(h.text()).toContain('failed to read active connections (5/5): timeout');
  });

  test('Envoy exiting ends the polling', async () => {
    const h = await running({ drain: zero });
    h.admin.statsReplies = [cx(1)];
    void h.sup.terminate('SIGTERM');
    await h.clock.advance(6500);
    h.spawner.last.exit(0);
    expect(await stoppedAt(h)).toBe(6500);
  });
});

describe('second signal, deadline, quit', () => {
  test('a second terminate() ends the drain wait at once; every caller shares one completion', async () => {
    const h = await running({ drain: { terminationDrainMs: 60_000 } });
    const first = h.sup.terminate('received SIGTERM');
    let done = false;
    void first.then(() => (done = true));
    await h.clock.advance(10);
    expect(done).toBe(false);
    const second = h.sup.terminate('received SIGINT');
    expect(second).toBe(first);
    expect(h.sup.quit()).toBe(first);
    expect(await stoppedAt(h)).toBe(10);
    expect(done).toBe(true);
    expect(h.text()).toContain('warn\treceived SIGINT: ending the drain wait now');
    expect(h.admin.posts()).toEqual([DRAIN_SIDECAR]);
  });

  test('drainDeadlineMs bounds the fixed wait', async () => {
    const h = await running({ drain: { terminationDrainMs: 60_000, drainDeadlineMs: 2000 } });
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(2000);
  });

  test('drainDeadlineMs bounds the exit-on-zero wait, polls included', async () => {
    const h = await running({ drain: { exitOnZeroActiveConnections: true, minimumDrainMs: 1000, pollIntervalMs: 1000, drainDeadlineMs: 3500 } });
    h.admin.statsReplies = [cx(5)];
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(3500);
    expect(h.admin.calls.filter((c) => c === POLL)).toHaveLength(3);
  });

  test('quit() stops Envoy at once with no drain', async () => {
    const h = await running({ drain: { terminationDrainMs: 60_000 } });
    void h.sup.quit();
    expect(h.events.at(-1)).toBe('terminating quitquitquit requested');
    expect(await stoppedAt(h)).toBe(0);
    expect(h.admin.calls).toEqual([]);
    expect(h.spawner.last.signals).toEqual(['SIGTERM']);
  });

  test('quit() during a drain wait ends the wait', async () => {
    const h = await running({ drain: { terminationDrainMs: 60_000 } });
    void h.sup.terminate('SIGTERM');
    await h.clock.advance(250);
    void h.sup.quit();
    expect(await stoppedAt(h)).toBe(250);
  });
});

describe('POST /drain', () => {
  test('drains with skip_exit now; a later SIGTERM stops Envoy at once, with no second drain or wait', async () => {
    const h = await running({ drain: { terminationDrainMs: 60_000 } });
    await h.sup.drain();
    expect(h.admin.calls).toEqual(['POST /drain_listeners?inboundonly&graceful&skip_exit']);
    expect(h.sup.state).toBe('running');
    expect(h.spawner.last.hasExited).toBe(false);
    void h.sup.terminate('SIGTERM');
    expect(await stoppedAt(h)).toBe(0);
    expect(h.admin.posts()).toHaveLength(1);
    expect(h.text()).toContain('listeners already drained (/drain): stopping Envoy now');
  });

  test('concurrent callers share one drain and one completion', async () => {
    const h = await running();
    const a = h.sup.drain();
    const b = h.sup.drain();
    expect(b).toBe(a);
    await Promise.all([a, b]);
    expect(h.sup.drain()).toBe(a);
    expect(h.admin.posts()).toHaveLength(1);
  });
});

describe('terminal state', () => {
  test('once stopped, every verb is a no-op', async () => {
    const h = await running();
    const done = h.sup.quit();
    await stoppedAt(h);
    const calls = h.admin.calls.length;
    const lines = h.lines.length;
    expect(h.sup.terminate('SIGTERM')).toBe(done);
    expect(h.sup.quit()).toBe(done);
    await h.sup.drain();
    expect(h.sup.restartForNewBootstrap('late change')).toBe(false);
    h.sup.markReady();
    await h.clock.advance(3600_000);
    expect(h.sup.state).toBe('stopped');
    expect(h.admin.calls).toHaveLength(calls);
    expect(h.lines).toHaveLength(lines);
    expect(h.spawner.envoys).toHaveLength(1);
    expect(await h.sup.run()).toBe(0);
  });
});
