/**
 * Hot restart (SPEC §5.3) end to end: the agent's real wiring (`runAgent`, in this process so
 * the test can call `restartForNewBootstrap`, which a podinfo change triggers in production)
 * with the Envoy double as real child processes handing listeners over between epochs.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { EnvoySupervisor } from '../../src/supervisor/supervisor.js';
import diagnostics_channel from 'node:diagnostics_channel';
import { runAgent, SUPERVISOR_CHANNEL, type SupervisorMessage } from '../../src/agent.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { ENVOY_DOUBLE, startAgent } from '../support/agent-process.js';
import { freePorts } from '../support/ports.js';
import { processesWithCwd } from '../support/proc.js';
import { SEED_ANNOTATIONS, SEED_ARGS, SEED_ENV, SEED_LABELS } from '../support/seed.js';
import { EchoClient, EchoServer, UpstreamApp, adminGet, extraListenersOverride, httpGet, waitUntil } from './supervision-support.js';

interface Harness {
  cwd: string;
  ports: { admin: number; http: number; tcp: number };
  app: UpstreamApp;
  echo: EchoServer;
  supervisor: EnvoySupervisor;
  logs: string[];
  exit: Promise<number>;
  stop: AbortController;
  /** Highest number of Envoy processes seen at once (sampled every 10 ms). */
  maxEnvoys: () => number;
  starts: () => Array<{ pid: number; argv: string[]; startedAt: string }>;
  exits: () => Array<{ pid: number; code?: number; signal?: string; at: string }>;
  envoys: () => number[];
  log: () => string;
  dispose: () => Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function startInProcessAgent(env: Record<string, string>, proxyConfig: Record<string, unknown> = {}): Promise<Harness> {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-hotrestart-'));
  const [admin, status, envoyStatus, prometheus, httpPort, tcpPort] = (await freePorts(6)) as [number, number, number, number, number, number];
  const app = await UpstreamApp.start();
  const echo = await EchoServer.start();
  fs.writeFileSync(path.join(cwd, 'override.json'), extraListenersOverride({ httpPort, appPort: app.port, tcpPort, echoPort: echo.port }));
  const recordFile = path.join(cwd, 'double-record.jsonl');
  const fullEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...SEED_ENV,
    INSTANCE_IP: '127.0.0.1',
    PROXY_CONFIG: JSON.stringify({
      binaryPath: ENVOY_DOUBLE,
      proxyAdminPort: admin,
      statusPort: status,
      proxyMetadata: { DNS_AGENT: '' },
      terminationDrainDuration: '0.2s',
      parentShutdownDuration: '2s',
      drainDuration: '1s',
      proxyStatsMatcher: { inclusionPrefixes: ['listener', 'http.inbound_app', 'tcp.inbound_tcp'] },
      ...proxyConfig,
    }),
    ENVOY_STATUS_PORT: String(envoyStatus),
    ENVOY_PROMETHEUS_PORT: String(prometheus),
    ISTIO_BOOTSTRAP_OVERRIDE: 'override.json',
    ENVOY_DOUBLE_RECORD: recordFile,
    ...env,
  };
  const { config } = loadConfig([...SEED_ARGS, '--standalone'], fullEnv, cwd);
  const logs: string[] = [];
  const log = createLogger({ outputLevel: 'default:info', destination: { write: (line: string) => void logs.push(line) } });
  const stop = new AbortController();
  // The agent publishes its supervisor on a diagnostics channel (its documented test seam).
  let supervisor: EnvoySupervisor | undefined;
  const onSupervisor = (message: unknown) => {
    const m = message as SupervisorMessage;
    if (m.config === config) supervisor = m.supervisor;
  };
  diagnostics_channel.subscribe(SUPERVISOR_CHANNEL, onSupervisor);
  const exit = runAgent({
    config,
    log,
    env: fullEnv,
    interfaces: { lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: '127.0.0.1/8' }] },
    signal: stop.signal,
  });
  // Published synchronously once the supervisor exists, before the status server starts.
  await waitUntil('supervisor published', () => supervisor, 10_000);
  diagnostics_channel.unsubscribe(SUPERVISOR_CHANNEL, onSupervisor);
  let maxEnvoys = 0;
  const sampler = setInterval(() => {
    maxEnvoys = Math.max(maxEnvoys, processesWithCwd(cwd).length);
  }, 10);
  const records = () =>
    fs.existsSync(recordFile)
      ? fs
          .readFileSync(recordFile, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  const h: Harness = {
    cwd,
    ports: { admin, http: httpPort, tcp: tcpPort },
    app,
    echo,
    supervisor: supervisor as unknown as EnvoySupervisor,
    logs,
    exit,
    stop,
    maxEnvoys: () => maxEnvoys,
    starts: () => records().filter((r) => Array.isArray(r.argv)) as never,
    exits: () => records().filter((r) => r.event === 'exit') as never,
    envoys: () => processesWithCwd(cwd),
    log: () => logs.join(''),
    dispose: async () => {
      stop.abort('SIGTERM');
      await exit.catch(() => undefined);
      clearInterval(sampler);
      for (const r of h.starts()) {
        try {
          process.kill(r.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await app.close();
      await echo.close();
      fs.rmSync(cwd, { recursive: true, force: true });
    },
  };
  cleanups.push(h.dispose);
  expect(supervisor).toBeDefined();
  return h;
}

const waitLog = (h: Harness, re: RegExp, timeoutMs = 10_000) => waitUntil(`log ${re}`, () => re.exec(h.log()) ?? undefined, timeoutMs);
const epochOf = (argv: string[]) => Number(argv[argv.indexOf('--restart-epoch') + 1]);

/** A keep-alive HTTP client pinned to one connection. */
function pinnedAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 1 });
}

describe('hot restart (SPEC §5.3)', () => {
  test('connections opened before the hand-over complete, new ones are served by the child, exactly one Envoy remains', async () => {
    const h = await startInProcessAgent({ ENVOY_HOT_RESTART: 'true' });
    await waitLog(h, /readiness: not ready -> ready/);
    const [epoch0] = h.starts();
    expect(epoch0?.argv).toEqual(expect.arrayContaining(['--restart-epoch', '0', '--parent-shutdown-time-s', '2', '--base-id', String(h.ports.admin)]));
    expect(epoch0?.argv).not.toContain('--disable-hot-restart');

    // Before the hand-over: a request in flight on a keep-alive connection, and a raw TCP stream.
    const keepAlive = pinnedAgent();
    const before = httpGet(h.ports.http, '/hold/before', keepAlive);
    await h.app.waitHeld('before');
    const tcp = await EchoClient.connect(h.ports.tcp);
    await tcp.roundTrip('ping before');

    expect(h.supervisor.restartForNewBootstrap('test: pod labels changed')).toBe(true);
    const live = await waitLog(h, /hot restart: epoch 1 \(pid (\d+)\) is LIVE; epoch 0 \(pid (\d+)\) drains and is gone within 2s/);
    const liveAt = performance.now();
    const childPid = Number(live[1]);
    expect(Number(live[2])).toBe(epoch0?.pid);
    const child = h.starts()[1];
    expect(child?.pid).toBe(childPid);
    expect(child?.argv).toEqual(expect.arrayContaining(['--restart-epoch', '1', '--parent-shutdown-time-s', '2', '--base-id', String(h.ports.admin)]));
    expect(h.supervisor.state).toBe('handover');

    // Admin belongs to the child now.
    const info = JSON.parse(await adminGet(h.ports.admin, '/server_info')) as { command_line_options: { restart_epoch: number } };
    expect(info.command_line_options.restart_epoch).toBe(1);

    // New connections are accepted by the child only (its counters move, the parent's listener is closed).
    const statName = `listener.127.0.0.1_${h.ports.http}.downstream_cx_total`;
    const childCx = async () => Number(/: (\d+)/.exec(await adminGet(h.ports.admin, `/stats?filter=^${statName.replace(/\./g, '\\.')}$`))?.[1] ?? 0);
    const cx0 = await childCx();
    const fresh = await httpGet(h.ports.http, '/hello');
    expect(fresh).toMatchObject({ status: 200, body: 'hello' });
    expect(await childCx()).toBe(cx0 + 1);

    // The old connections still work while the parent drains.
    await tcp.roundTrip('ping during hand-over');
    h.app.release('before');
    const res = await before;
    expect(res).toMatchObject({ status: 200, body: 'released before' });
    expect(res.headers.connection).toBe('close'); // the parent is draining
    await tcp.end();
    keepAlive.destroy();

    // The parent is gone within parentShutdownDuration of the child going LIVE; one Envoy remains.
    await waitUntil('epoch 0 exit', () => h.exits().find((e) => e.pid === epoch0?.pid), 4000);
    expect(performance.now() - liveAt).toBeLessThan(2000 + 1500);
    await waitLog(h, new RegExp(`Envoy epoch 0 \\(pid ${epoch0?.pid}\\) exited with code 0 after handing over to epoch 1`));
    await waitUntil('state running', () => h.supervisor.state === 'running');
    expect(h.envoys()).toEqual([childPid]);
    expect(h.maxEnvoys()).toBe(2);
    // The expected exit was not a crash: no restart, no backoff.
    expect(h.log()).not.toMatch(/unexpectedly|restarting Envoy in/);
    expect(h.starts()).toHaveLength(2);
    expect((await httpGet(h.ports.http, '/hello')).status).toBe(200);

    h.stop.abort('SIGTERM');
    expect(await h.exit).toBe(0);
    expect(h.envoys()).toEqual([]);
  });

  test('a request before epoch n is LIVE waits for it; requests during a hand-over coalesce into one more', async () => {
    const h = await startInProcessAgent({ ENVOY_HOT_RESTART: 'true', ENVOY_DOUBLE_LIVE_DELAY_MS: '700' }, { parentShutdownDuration: '1s' });
    await waitUntil('epoch 0 start', () => h.starts().length === 1);
    expect(h.supervisor.restartForNewBootstrap('first change')).toBe(true);
    await waitLog(h, /readiness: not ready -> ready/);
    const readyAt = Date.now();
    await waitUntil('epoch 1 start', () => h.starts()[1]);
    expect(Date.parse(h.starts()[1]?.startedAt ?? '')).toBeGreaterThanOrEqual(readyAt - 50);
    expect(h.log()).toMatch(/first change: hot restart scheduled \(once Envoy epoch 0 is LIVE\)/);

    // Two more changes while epoch 1 starts: one hand-over to epoch 2, after epoch 0 is gone.
    h.supervisor.restartForNewBootstrap('second change');
    h.supervisor.restartForNewBootstrap('third change');
    const third = await waitLog(h, /hot restart \(third change\): starting epoch 2/, 15_000);
    expect(h.log()).not.toMatch(/hot restart \(second change\)/);
    const epoch0Exit = h.exits().find((e) => e.pid === h.starts()[0]?.pid);
    expect(epoch0Exit).toBeDefined(); // epoch 0 was gone before epoch 2 started
    expect(third.index).toBeGreaterThan(h.log().indexOf('Envoy epoch 0'));
    await waitUntil('epoch 1 exit', () => h.exits().find((e) => e.pid === h.starts()[1]?.pid), 6000);
    await waitUntil('state running', () => h.supervisor.state === 'running');
    expect(h.starts().map((s) => epochOf(s.argv))).toEqual([0, 1, 2]);
    expect(h.envoys()).toEqual([h.starts()[2]?.pid]);
    expect(h.maxEnvoys()).toBe(2);
  }, 30_000);

  test('the child dying during the hand-over stops the parent too; a fresh epoch 0 follows the backoff', async () => {
    const h = await startInProcessAgent({ ENVOY_HOT_RESTART: 'true', ENVOY_RESTART_BACKOFF_INITIAL: '100ms' });
    await waitLog(h, /readiness: not ready -> ready/);
    h.supervisor.restartForNewBootstrap('change');
    const child = await waitUntil('epoch 1 start', () => h.starts()[1]);
    process.kill(child.pid, 'SIGKILL');
    await waitLog(h, new RegExp(`Envoy \\(pid ${child.pid}\\) killed by SIGKILL \\(possibly OOM-killed\\) unexpectedly`));
    const parentExit = h.exits().find((e) => e.pid === h.starts()[0]?.pid);
    expect(parentExit).toBeDefined(); // stopped before the crash was handled
    const restarted = await waitUntil('fresh start', () => h.starts()[2]);
    expect(epochOf(restarted.argv)).toBe(0);
    await waitLog(h, /supervisor: backoff -> starting/);
    await waitUntil('one Envoy', () => h.envoys().length === 1 && h.envoys()[0] === restarted.pid);
    expect(h.maxEnvoys()).toBeLessThanOrEqual(2);
  });

  test('a parent the child never terminates is stopped by the agent parentShutdownDuration after the child went LIVE', async () => {
    const h = await startInProcessAgent({ ENVOY_HOT_RESTART: 'true', ENVOY_DOUBLE_KEEP_PARENT: '1' }, { parentShutdownDuration: '1s' });
    await waitLog(h, /readiness: not ready -> ready/);
    const [epoch0] = h.starts();
    h.supervisor.restartForNewBootstrap('change');
    await waitLog(h, /hot restart: epoch 1 \(pid \d+\) is LIVE/);
    const liveAt = performance.now();
    await waitLog(h, new RegExp(`hot restart: epoch 0 \\(pid ${epoch0?.pid}\\) still running 1s after epoch 1 went LIVE: stopping it`), 4000);
    await waitUntil('epoch 0 exit', () => h.exits().find((e) => e.pid === epoch0?.pid), 3000);
    const took = performance.now() - liveAt;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(1000 + 1500);
    await waitUntil('state running', () => h.supervisor.state === 'running');
    expect(h.envoys()).toEqual([h.starts()[1]?.pid]);
  });

  test('SIGTERM during a hand-over drains through the child and stops both epochs', async () => {
    const h = await startInProcessAgent({ ENVOY_HOT_RESTART: 'true', ENVOY_DOUBLE_LIVE_DELAY_MS: '1500' });
    await waitLog(h, /readiness: not ready -> ready/);
    h.supervisor.restartForNewBootstrap('change');
    await waitUntil('both epochs running', () => h.envoys().length === 2);
    expect(h.supervisor.state).toBe('handover');
    const t0 = performance.now();
    h.stop.abort('SIGTERM');
    expect(await h.exit).toBe(0);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(h.log()).toMatch(/POST \/drain_listeners\?inboundonly&graceful: draining/);
    expect(h.log()).toMatch(/supervisor: handover -> terminating/);
    expect(h.envoys()).toEqual([]);
    expect(h.log()).not.toMatch(/unexpectedly/);
  });

  test('with hot restart disabled nothing changes: same Envoy, --disable-hot-restart', async () => {
    const h = await startInProcessAgent({});
    await waitLog(h, /readiness: not ready -> ready/);
    expect(h.supervisor.restartForNewBootstrap('test: pod labels changed')).toBe(false);
    expect(h.log()).toContain("test: pod labels changed: hot restart is disabled (ENVOY_HOT_RESTART); the new bootstrap applies at Envoy's next start");
    const [only] = h.starts();
    expect(only?.argv).toContain('--disable-hot-restart');
    expect(only?.argv).not.toContain('--restart-epoch');
    // Still the one Envoy, still serving, a while later.
    expect((await httpGet(h.ports.http, '/hello')).status).toBe(200);
    expect(h.starts()).toHaveLength(1);
    expect(h.envoys()).toEqual([only?.pid]);
    expect(h.supervisor.state).toBe('running');
  });

  test('end to end: a podinfo labels change makes the real CLI hot-restart Envoy with the new node labels', async () => {
    const agent = await startAgent({
      env: { ENVOY_HOT_RESTART: 'true' },
      proxyConfig: { parentShutdownDuration: '1s', terminationDrainDuration: '0.2s' },
      files: { 'etc/istio/pod/labels': SEED_LABELS, 'etc/istio/pod/annotations': SEED_ANNOTATIONS },
    });
    cleanups.push(() => agent.dispose());
    await agent.waitForLog(/readiness: not ready -> ready/);
    fs.writeFileSync(path.join(agent.cwd, 'etc/istio/pod/labels'), `${SEED_LABELS}\nversion="v2"`);
    await agent.waitForLog(/hot restart \(podinfo changed\): starting epoch 1/);
    await agent.waitForLog(/hot restart: epoch 1 \(pid \d+\) is LIVE/);
    const [epoch0, epoch1] = agent.starts();
    expect(epochOf(epoch1?.argv ?? [])).toBe(1);
    // The child loaded the regenerated bootstrap (its admin is the one answering).
    const dump = JSON.parse(await adminGet(agent.ports.admin, '/config_dump')) as { configs: Array<{ bootstrap?: { node: { metadata: { LABELS: Record<string, string> } } } }> };
    expect(dump.configs[0]?.bootstrap?.node.metadata.LABELS.version).toBe('v2');
    await agent.waitFor('epoch 0 gone', () => agent.records().some((r) => r.event === 'exit' && r.pid === epoch0?.pid), 4000);
    // The exit record is written just before the process ends: wait for the process itself.
    await agent.waitFor('epoch 0 process gone', () => !processesWithCwd(agent.cwd).includes(epoch0?.pid as number), 4000);
    expect(processesWithCwd(agent.cwd).filter((p) => p !== agent.pid)).toEqual([epoch1?.pid]);
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
    expect(processesWithCwd(agent.cwd)).toEqual([]);
  });
});
