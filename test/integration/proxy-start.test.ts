/**
 * End to end: the real CLI with the seed's args and env, the Envoy double as Envoy.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { ENVOY_DOUBLE, processAlive, disposeTrackedAgents, startTrackedAgent, type AgentProcess } from '../support/agent-process.js';
import { DEFAULT_FAMILIES } from '../support/default-metrics.js';
import { parseExposition } from '../support/metrics-parse.js';
import { fetch } from '../support/metrics-servers.js';
import { SEED_ARGS } from '../support/seed.js';

/** utime + stime of a process, in seconds (/proc/<pid>/stat, clock ticks of 1/100 s). */
function procCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

afterEach(disposeTrackedAgents);
const start = startTrackedAgent;

describe('proxy sidecar with the seed pod', () => {
  test('writes the bootstrap, starts Envoy with the exact argv, stops both on SIGTERM', async () => {
    const agent = await start({ standalone: false, proxyConfig: { terminationDrainDuration: '0.2s' } });
    const [first] = await agent.waitFor('Envoy start record', () => (agent.starts().length > 0 ? agent.starts() : undefined));
    expect(first?.argv.slice(1)).toEqual([
      '-c',
      'etc/istio/proxy/envoy-rev.json',
      '--drain-time-s',
      '45',
      '--drain-strategy',
      'immediate',
      '--local-address-ip-version',
      'v4',
      '--file-flush-interval-msec',
      '1000',
      '--disable-hot-restart',
      '--allow-unknown-static-fields',
      '-l',
      'warning',
      '--component-log-level',
      'misc:error',
      '--skip-deprecated-logs',
      '--concurrency',
      '2',
    ]);
    expect(first?.cwd).toBe(fs.realpathSync(agent.cwd));
    const bootstrapFile = path.join(agent.cwd, 'etc/istio/proxy/envoy-rev.json');
    const bootstrap = JSON.parse(fs.readFileSync(bootstrapFile, 'utf8'));
    expect(bootstrap.node.id).toBe('sidecar~127.0.0.1~jiuxi-7d9c8-abcde.jiuxi-ns~jiuxi-ns.svc.cluster.local');
    expect(bootstrap.admin.address.socket_address.port_value).toBe(agent.ports.admin);
    expect(fs.statSync(path.dirname(bootstrapFile)).mode & 0o777).toBe(0o700);
    await agent.waitForLog(/supervisor: starting -> running/);
    expect(agent.stderr).toContain('ignoring unknown flags: --trust-domain=cluster.local');
    expect(agent.stderr).toContain('legacy --concurrency=2 flag detected; prefer to use ProxyConfig');

    agent.signal('SIGTERM');
    const exit = await agent.waitExit();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(processAlive(first?.pid as number)).toBe(false);
    expect(fs.existsSync(bootstrapFile)).toBe(false);
    expect(agent.stderr).toMatch(/drain_listeners\?inboundonly&graceful/);
  });

  test('a missing Envoy binary: exit 255 naming binaryPath, no retry, nothing left behind', async () => {
    const agent = await start({ binaryPath: '/nonexistent/envoy' });
    const exit = await agent.waitExit();
    expect(exit.code).toBe(255);
    expect(agent.stderr).toContain('binaryPath /nonexistent/envoy: no such file (ENOENT)');
    expect(agent.stderr.match(/cannot start Envoy/g)).toHaveLength(1);
    expect(fs.existsSync(path.join(agent.cwd, 'etc/istio/proxy/envoy-rev.json'))).toBe(false);
  });

  test('a non-executable Envoy binary: EACCES named', async () => {
    const agent = await start({ binaryPath: path.join(path.dirname(ENVOY_DOUBLE), '..', 'seed.ts') });
    expect((await agent.waitExit()).code).toBe(255);
    expect(agent.stderr).toMatch(/binaryPath .*seed\.ts: permission denied/);
  });

  test('an unwritable configPath: exit 255 naming it, no Envoy started', async () => {
    const agent = await start({ files: { blocker: 'x' }, proxyConfig: { configPath: './blocker/proxy' } });
    expect((await agent.waitExit()).code).toBe(255);
    expect(agent.stderr).toMatch(/configPath .*blocker\/proxy: cannot write the Envoy bootstrap/);
    expect(agent.starts()).toHaveLength(0);
  });

  test('bad config exits 255 with a message naming the input', async () => {
    const bad = await start({ env: { PROXY_CONFIG: '{"drainDuration": 45}' } });
    expect((await bad.waitExit()).code).toBe(255);
    expect(bad.stderr).toContain('PROXY_CONFIG.drainDuration: expected a duration like "45s", got 45');

    const foo = await start({ args: ['foo', ...SEED_ARGS.slice(1)] });
    expect((await foo.waitExit()).code).toBe(255);
    expect(foo.stderr).toContain('invalid proxy type "foo"');

    const ann = await start({ files: { 'etc/istio/pod/annotations': 'status.sidecar.istio.io/port="x"' } });
    expect((await ann.waitExit()).code).toBe(255);
    expect(ann.stderr).toContain('annotation status.sidecar.istio.io/port');
  });

  test("the agent's own scrape carries prom-client's process and Node.js families; CPU counts from process start", async () => {
    const spawnedAfter = Date.now() / 1000;
    const agent = await start({ proxyConfig: { terminationDrainDuration: '0.1s' } });
    await agent.waitForLog(/supervisor: starting -> running/);
    const cpuBefore = procCpuSeconds(agent.pid);
    const r = await fetch(agent.ports.status, '/stats/prometheus');
    expect(r.status).toBe(200);
    const body = r.body.toString();
    const families = parseExposition(body, false).families;
    for (const [name, type] of DEFAULT_FAMILIES) expect([name, families.get(name)?.type]).toEqual([name, type]);
    const sample = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1]);
    // The CPU the agent used loading and starting is in the counter (prom-client alone starts at 0
    // when its default metrics are registered).
    expect(sample('istio_agent_process_cpu_seconds_total')).toBeGreaterThanOrEqual(cpuBefore - 0.02);
    expect(sample('istio_agent_process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    const startedAt = sample('istio_agent_process_start_time_seconds');
    // Whole seconds (prom-client rounds).
    expect(startedAt).toBeGreaterThanOrEqual(Math.floor(spawnedAfter) - 1);
    expect(startedAt).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
  });

  test('a malformed podinfo file warns and the agent still starts', async () => {
    const agent = await start({ files: { 'etc/istio/pod/labels': 'app=jiuxi' }, proxyConfig: { terminationDrainDuration: '0.1s' } });
    await agent.waitForLog(/supervisor: starting -> running/);
    expect(agent.stderr).toMatch(/podinfo labels: ignoring malformed file/);
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
  });
});
