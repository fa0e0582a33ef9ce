/** Hot restart hand-over (SPEC §5.3) on fakes: epoch n+1 next to n, the parent's exit expected, a child crash. */
import { describe, expect, test } from '@jest/globals';
import { settle, type FakeEnvoy } from './fakes.js';
import { failure, running, type Harness } from './harness.js';

const HOT = { hotRestart: { parentShutdownMs: 2000 } };

/** Answers /server_info as the given epoch would (LIVE). */
const answerAs = (h: Harness, epoch: number) => (h.admin.serverInfoReply = () => ({ state: 'LIVE', epoch }));

async function handover(h: Harness): Promise<{ parent: FakeEnvoy; child: FakeEnvoy }> {
  const parent = h.spawner.last;
  h.sup.markReady();
  expect(h.sup.restartForNewBootstrap('pod labels changed')).toBe(true);
  await settle();
  expect(h.sup.state).toBe('handover');
  return { parent, child: h.spawner.last };
}

/** Envoys alive at once when `e` started. */
const aliveAt = (h: Harness, e: FakeEnvoy) => h.spawner.envoys.filter((o) => o.startedAt <= e.startedAt && (o.exitedAt === undefined || o.exitedAt > e.startedAt)).length;

describe('hand-over', () => {
  test('waits for epoch n LIVE, starts n+1 beside it; the parent exit is expected; the child serves', async () => {
    const h = await running(HOT);
    expect(h.sup.restartForNewBootstrap('pod labels changed')).toBe(true);
    expect(h.text()).toContain('pod labels changed: hot restart scheduled (once Envoy epoch 0 is LIVE)');
    await h.clock.advance(60_000);
    expect(h.spawner.requests.map((r) => r.epoch)).toEqual([0]);
    const parent = h.spawner.last;
    h.sup.markReady();
    await settle();
    expect(h.spawner.requests.map((r) => r.epoch)).toEqual([0, 1]);
    const child = h.spawner.last;
    expect(h.sup.state).toBe('handover');
    expect(h.sup.envoy).toBe(child);
    expect(aliveAt(h, child)).toBe(2);
    expect(h.text()).toContain(`hot restart (pod labels changed): starting epoch 1 next to epoch 0 (pid ${parent.pid})`);
    // The parent still answering admin (epoch 0) does not count as the child being LIVE.
    answerAs(h, 0);
    await h.clock.advance(1000);
    expect(h.admin.resets).toBe(0);
    answerAs(h, 1);
    await h.clock.advance(100);
    expect(h.admin.resets).toBe(1);
    expect(h.text()).toContain(`hot restart: epoch 1 (pid ${child.pid}) is LIVE; epoch 0 (pid ${parent.pid}) drains and is gone within 2s`);
    parent.exit(0); // Envoy's protocol ends the parent
    await settle();
    expect(h.sup.state).toBe('running');
    expect(h.text()).toContain(`Envoy epoch 0 (pid ${parent.pid}) exited with code 0 after handing over to epoch 1`);
    expect(parent.signals).toEqual([]);
    expect(h.events).toEqual(expect.arrayContaining(['restart hot_restart', 'exited expected']));
    expect(h.text()).not.toMatch(/unexpectedly|restarting Envoy/);
    expect(h.transitions()).toEqual(['idle -> starting', 'starting -> running', 'running -> handover', 'handover -> running']);
    expect(h.clock.pending()).toEqual([60_000]); // the child's healthy-reset timer, nothing else
  });

  test('backstop: a parent still running parentShutdownMs after the child went LIVE is stopped', async () => {
    const h = await running(HOT);
    const { parent } = await handover(h);
    answerAs(h, 1);
    await h.clock.advance(100);
    expect(h.admin.resets).toBe(1);
    await h.clock.advance(1999);
    expect(parent.signals).toEqual([]);
    await h.clock.advance(1);
    expect(parent.signals).toEqual(['SIGTERM']);
    expect(h.text()).toContain('still running 2s after epoch 1 went LIVE: stopping it');
    await settle();
    expect(h.sup.state).toBe('running');
  });

  test('a child that never goes LIVE leaves the parent serving (no backstop)', async () => {
    const h = await running(HOT);
    const { parent } = await handover(h);
    await h.clock.advance(20_000); // 10× parentShutdownMs
    expect(parent.hasExited).toBe(false);
    expect(h.sup.state).toBe('handover');
  });

  test('a child crash is a crash: the parent is stopped too, then a fresh epoch 0 after the backoff', async () => {
    const h = await running(HOT);
    const { parent, child } = await handover(h);
    child.exit(null, 'SIGKILL');
    await settle();
    expect(parent.signals).toEqual(['SIGTERM']);
    expect(h.text()).toContain(`hot restart: epoch 1 is gone; stopping epoch 0 (pid ${parent.pid}) too`);
    expect(h.text()).toContain(`Envoy (pid ${child.pid}) killed by SIGKILL (possibly OOM-killed) unexpectedly`);
    expect(h.sup.state).toBe('backoff');
    await h.clock.advance(1000);
    expect(h.spawner.requests.map((r) => r.epoch)).toEqual([0, 1, 0]);
    const fresh = h.spawner.last;
    expect(aliveAt(h, fresh)).toBe(1);
    expect(h.events.filter((e) => e.startsWith('restart '))).toEqual(['restart hot_restart', 'restart killed']);
    expect(h.transitions().slice(-3)).toEqual(['handover -> backoff', 'backoff -> starting', 'starting -> running']);
  });

  test('requests during a hand-over coalesce into one more, once the parent is gone', async () => {
    const h = await running(HOT);
    const { parent } = await handover(h);
    expect(h.sup.restartForNewBootstrap('second change')).toBe(true);
    expect(h.sup.restartForNewBootstrap('third change')).toBe(true);
    expect(h.lines.filter((l) => l.includes('hot restart scheduled'))).toEqual([
      'info\tpod labels changed: hot restart scheduled (once Envoy epoch 0 is LIVE)',
      'info\tsecond change: hot restart scheduled (once Envoy epoch 1 is LIVE and epoch 0 is gone)',
    ]);
    answerAs(h, 1);
    await h.clock.advance(100);
    expect(h.spawner.requests).toHaveLength(2); // epoch 0 still there
    parent.exit(0);
    await settle();
    expect(h.spawner.requests.map((r) => r.epoch)).toEqual([0, 1, 2]);
    expect(h.text()).toContain('hot restart (third change): starting epoch 2 next to epoch 1');
    expect(Math.max(...h.spawner.envoys.map((e) => aliveAt(h, e)))).toBe(2);
  });

  test('a stop during a hand-over drains once, through the child, and stops both', async () => {
    const h = await running({ ...HOT, drain: { terminationDrainMs: 500 } });
    const { parent, child } = await handover(h);
    void h.sup.terminate('SIGTERM');
    expect(await h.untilStopped()).toEqual({ code: 0 });
    expect(h.clock.now()).toBe(500);
    expect(h.admin.posts()).toEqual(['POST /drain_listeners?inboundonly&graceful']);
    expect(h.admin.resets).toBe(1); // admin belongs to the child from the stop on
    expect([parent.hasExited, child.hasExited]).toEqual([true, true]);
    expect(h.transitions()).toContain('handover -> terminating');
    expect(h.text()).not.toMatch(/unexpectedly/);
  });

  test('a hot restart pending at a crash is dropped: the restart uses the new bootstrap anyway', async () => {
    const h = await running(HOT);
    h.sup.restartForNewBootstrap('pod labels changed');
    h.spawner.last.exit(1);
    await h.clock.advance(1000);
    h.sup.markReady();
    await h.clock.advance(10_000);
    expect(h.spawner.requests.map((r) => r.epoch)).toEqual([0, 0]);
  });

  test('a child spawn failure ends the agent and kills the parent', async () => {
    const h = await running(HOT);
    const parent = h.spawner.last;
    h.sup.markReady();
    h.spawner.failWith = 'ENOEXEC';
    h.sup.restartForNewBootstrap('pod labels changed');
    expect(failure(await h.untilStopped()).code).toBe('ENVOY_SPAWN_FAILED');
    expect(parent.signals).toEqual(['SIGKILL']);
  });
});

describe('restartForNewBootstrap without a hand-over', () => {
  test('hot restart disabled: only logs; the bootstrap applies at the next start', async () => {
    const h = await running();
    h.sup.markReady();
    expect(h.sup.restartForNewBootstrap('pod labels changed')).toBe(false);
    expect(h.text()).toContain("pod labels changed: hot restart is disabled (ENVOY_HOT_RESTART); the new bootstrap applies at Envoy's next start");
    await h.clock.advance(10_000);
    expect(h.spawner.requests).toHaveLength(1);
  });

  test('in backoff: no Envoy to restart', async () => {
    const h = await running(HOT);
    h.spawner.last.exit(1);
    await settle();
    expect(h.sup.restartForNewBootstrap('pod labels changed')).toBe(false);
    expect(h.text()).toContain('pod labels changed: Envoy is not running; its next start uses the new bootstrap');
  });

  test('once termination has begun: refused', async () => {
    const h = await running(HOT);
    void h.sup.terminate('SIGTERM');
    expect(h.sup.restartForNewBootstrap('pod labels changed')).toBe(false);
  });
});
