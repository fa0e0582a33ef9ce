/**
 * Envoy supervision (SPEC §5.1–§5.2) against the double as a real child process.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { processAlive, disposeTrackedAgents, startTrackedAgent, type AgentProcess } from '../support/agent-process.js';
import { openFds, processesWithCwd, rssKb, zombieChildren } from '../support/proc.js';

afterEach(disposeTrackedAgents);
const start = startTrackedAgent;

const delays = (a: AgentProcess) => [...a.stderr.matchAll(/restarting Envoy in (\d+)ms/g)].map((m) => Number(m[1]));

describe('restart on crash (SPEC §5.1)', () => {
  test('a crash is classified, logged with its stderr, and Envoy is restarted after the backoff', async () => {
    const agent = await start({
      env: {
        ENVOY_DOUBLE_CRASH_AFTER_MS: '150',
        ENVOY_DOUBLE_EXIT_SIGNAL: 'SIGSEGV',
        ENVOY_DOUBLE_STDERR_ON_CRASH: 'segfault at 0x0 in worker_1',
        ENVOY_RESTART_BACKOFF_INITIAL: '300ms',
        ENVOY_RESTART_BUDGET: '100',
      },
      proxyConfig: { terminationDrainDuration: '0.1s' },
    });
    await agent.waitFor('two Envoy starts', () => agent.starts().length >= 2);
    // The double's record file can be read before the agent's stderr pipe is.
    await agent.waitForLog(/Envoy \(pid \d+\) killed by SIGSEGV unexpectedly; last stderr lines:\n(.*\n)*segfault at 0x0 in worker_1/);
    await agent.waitForLog(/restarting Envoy in \d+ms/);
    const [d] = delays(agent);
    expect(d).toBeGreaterThanOrEqual(240);
    expect(d).toBeLessThanOrEqual(360);
    // The gap between the first exit and the next start is at least the backoff.
    const exit1 = agent.records().find((r) => r.event === 'exit') as { at: string };
    const start2 = agent.starts()[1] as unknown as { startedAt: string };
    expect(Date.parse(start2.startedAt) - Date.parse(exit1.at)).toBeGreaterThanOrEqual((d as number) - 5);
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
  });

  test('crash loop: the 5th exit within the window ends the agent with exit 1 and the last stderr lines', async () => {
    const agent = await start({
      env: {
        ENVOY_DOUBLE_CRASH_AFTER_MS: '0',
        ENVOY_DOUBLE_EXIT_CODE: '3',
        ENVOY_DOUBLE_STDERR_ON_CRASH: 'critical: cannot bind\nsecond line',
        ENVOY_RESTART_BACKOFF_INITIAL: '10ms',
        ENVOY_RESTART_BACKOFF_MAX: '20ms',
      },
    });
    const exit = await agent.waitExit(20_000);
    expect(exit.code).toBe(1);
    expect(agent.starts()).toHaveLength(5);
    expect(agent.stderr).toContain('Envoy exited 5 times within 5m0s (last: exited with code 3)');
    expect(agent.stderr).toContain('critical: cannot bind\nsecond line');
    expect(processesWithCwd(agent.cwd)).toEqual([]);
  });

  test('a long-healthy Envoy that crashes restarts with the initial backoff again', async () => {
    const agent = await start({
      env: { ENVOY_RESTART_BACKOFF_INITIAL: '300ms', ENVOY_RESTART_BACKOFF_RESET: '500ms', ENVOY_RESTART_BUDGET: '100' },
      proxyConfig: { terminationDrainDuration: '0.1s' },
    });
    const killCurrent = async (n: number) => {
      await agent.waitFor(`start #${n}`, () => agent.starts().length >= n);
      process.kill(agent.starts()[n - 1]!.pid, 'SIGKILL');
      await agent.waitFor(`restart delay #${n}`, () => delays(agent).length >= n);
    };
    await killCurrent(1); // ~300
    await killCurrent(2); // ~600 (not healthy long enough to reset)
    await agent.waitFor('start #3', () => agent.starts().length >= 3);
    await agent.waitForLog(/readiness: not ready -> ready/);
    await agent.waitForLog(new RegExp(`Envoy \\(pid ${agent.starts()[2]!.pid}\\) healthy for 500ms: restart backoff reset`));
    await killCurrent(3);
    const [d1, d2, d3] = delays(agent);
    expect(d1).toBeLessThanOrEqual(360);
    expect(d2).toBeGreaterThanOrEqual(480);
    expect(d3).toBeLessThanOrEqual(360);
    expect(agent.stderr).toContain('killed by SIGKILL (possibly OOM-killed)');
  });

  test('100 consecutive crashes: no zombies, no fd growth, flat RSS', async () => {
    const agent = await start({
      env: {
        ENVOY_DOUBLE_CRASH_AFTER_MS: '0',
        ENVOY_RESTART_BACKOFF_INITIAL: '1ms',
        ENVOY_RESTART_BACKOFF_MAX: '2ms',
        ENVOY_RESTART_BUDGET: '100000',
      },
      proxyConfig: { terminationDrainDuration: '0.1s' },
    });
    await agent.waitFor('10 starts', () => agent.starts().length >= 10, 30_000);
    const rss0 = rssKb(agent.pid);
    // Open fds are sampled all along: at any instant a child's pipes may be open (or the last
    // one's still draining), so the lowest count of the early starts (10-19) is compared with
    // the lowest of the late ones (100-109). A leak of one fd per restart would add ~90.
    let fdsEarly = Infinity;
    let fdsLate = Infinity;
    let maxZombies = 0;
    await agent.waitFor(
      '110 starts',
      () => {
        const n = agent.starts().length;
        const fds = openFds(agent.pid);
        if (n < 20) fdsEarly = Math.min(fdsEarly, fds);
        else if (n >= 100) fdsLate = Math.min(fdsLate, fds);
        maxZombies = Math.max(maxZombies, zombieChildren(agent.pid).length);
        return n >= 110;
      },
      90_000,
    );
    const rss1 = rssKb(agent.pid);
    // A child between exit and reaping can be seen as Z for an instant; never more than one.
    expect(maxZombies).toBeLessThanOrEqual(1);
    expect(Number.isFinite(fdsEarly) && Number.isFinite(fdsLate)).toBe(true);
    expect(fdsLate - fdsEarly).toBeLessThanOrEqual(2);
    expect(rss1 - rss0).toBeLessThan(20 * 1024);
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
    expect(zombieChildren(agent.pid)).toEqual([]);
    expect(processesWithCwd(agent.cwd)).toEqual([]);
  }, 120_000);
});

describe('SIGTERM in every state exits with no Envoy left', () => {
  const cases: Array<[string, Record<string, string>, (a: AgentProcess) => Promise<unknown>]> = [
    ['starting', { ENVOY_DOUBLE_LIVE_DELAY_MS: '5000' }, (a) => a.waitFor('first start', () => a.starts().length >= 1)],
    ['LIVE', {}, (a) => a.waitForLog(/readiness: not ready -> ready/)],
    ['between restarts', { ENVOY_DOUBLE_CRASH_AFTER_MS: '0', ENVOY_RESTART_BACKOFF_INITIAL: '30s' }, (a) => a.waitForLog(/restarting Envoy in/)],
  ];
  test.each(cases)('%s', async (_name, env, until) => {
    const agent = await start({ env, proxyConfig: { terminationDrainDuration: '0.3s' } });
    await until(agent);
    const t0 = performance.now();
    agent.signal('SIGTERM');
    const exit = await agent.waitExit();
    expect(exit.code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(3000);
    for (const s of agent.starts()) expect(processAlive(s.pid)).toBe(false);
    expect(processesWithCwd(agent.cwd)).toEqual([]);
  });

  test('draining: a second SIGTERM ends the wait at once', async () => {
    const agent = await start({ proxyConfig: { terminationDrainDuration: '30s' } });
    await agent.waitForLog(/readiness: not ready -> ready/);
    agent.signal('SIGTERM');
    await agent.waitForLog(/waiting 30s for Envoy to drain/);
    const t0 = performance.now();
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(processesWithCwd(agent.cwd)).toEqual([]);
  });

  test('DRAIN_DEADLINE bounds the fixed wait', async () => {
    const agent = await start({ env: { DRAIN_DEADLINE: '500ms' }, proxyConfig: { terminationDrainDuration: '30s' } });
    await agent.waitForLog(/readiness: not ready -> ready/);
    const t0 = performance.now();
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3000);
  });

  test('Envoy that ignores SIGTERM is SIGKILLed after 1 s', async () => {
    const agent = await start({ env: { ENVOY_DOUBLE_IGNORE_SIGTERM: '1' }, proxyConfig: { terminationDrainDuration: '0.1s' } });
    await agent.waitForLog(/readiness: not ready -> ready/);
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
    expect(agent.stderr).toContain('killed by SIGKILL');
    expect(processesWithCwd(agent.cwd)).toEqual([]);
  });
});
