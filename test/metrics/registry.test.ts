import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as PromClient from 'prom-client';
import { Counter } from 'prom-client';
import { createAgentMetrics } from '../../src/metrics/registry.js';
import { parseMaxOpenFiles, parseStatusBytes } from '../../src/metrics/process.js';
import * as Prom from '../../src/metrics/prom.js';
import { parseExposition } from '../support/metrics-parse.js';
import { REPO } from '../support/metrics-servers.js';
import { which } from '../support/proc.js';

const PROMTOOL = which('promtool');
if (!PROMTOOL) console.log('SKIP promtool check of the agent registry: no `promtool` binary (apt-get install -y prometheus)');

/** The default process families (SPEC §12): prom-client's names, under istio_agent_. */
const PROCESS_FAMILIES = [
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_virtual_memory_bytes',
  'process_heap_bytes',
  'process_open_fds',
  'process_max_fds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_version_info',
].map((n) => `istio_agent_${n}`);

type Family = Awaited<ReturnType<PromClient.Registry['getMetricsAsJSON']>>[number];

async function families(registry: PromClient.Registry): Promise<Map<string, Family>> {
  return new Map((await registry.getMetricsAsJSON()).map((f) => [f.name, f]));
}

/** The single unlabelled value of a family. */
function value(all: Map<string, Family>, name: string): number {
  const v = (all.get(name)?.values ?? []) as Array<{ value: number }>;
  expect(v).toHaveLength(1);
  return v[0]?.value ?? NaN;
}

/** Blocks the event loop for `ms` of wall-clock time. */
function burnCpu(ms: number): void {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  expect(x).toBeGreaterThan(0);
}

/** Spins until this process has used `ms` more CPU time (on a loaded machine that takes longer). */
function burnCpuTime(ms: number): void {
  const start = process.cpuUsage();
  let x = 0;
  for (;;) {
    for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + 1);
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) break;
  }
  expect(x).toBeGreaterThan(0);
}

describe('agent registry (SPEC §12)', () => {
  test("Istio's counter names, zero series for every source, default metrics under istio_agent_", async () => {
    const { registry } = createAgentMetrics();
    const text = await registry.metrics();
    expect(text).toContain('# TYPE istio_agent_scrapes_total counter\nistio_agent_scrapes_total 0');
    for (const type of ['agent', 'envoy', 'application']) expect(text).toContain(`istio_agent_scrape_failures_total{type="${type}"} 0`);
    expect(text).toContain('istio_agent_scrape_duplicate_families_total{type="application"} 0');
    expect(text).toContain('istio_agent_process_cpu_seconds_total');
    expect(text).toContain('istio_agent_nodejs_heap_size_total_bytes');
    const names = [...parseExposition(text, false).families.keys()];
    expect(names.filter((n) => !n.startsWith('istio_agent_'))).toEqual([]);
    expect(names.filter((n) => !n.startsWith('istio_agent_scrape'))).toEqual(PROCESS_FAMILIES);
  });

  test('one registry per agent: no shared state, others can register on it', async () => {
    const a = createAgentMetrics({ defaultMetrics: false });
    const b = createAgentMetrics({ defaultMetrics: false });
    a.scrapes.inc();
    new Counter({ name: 'istio_agent_envoy_restarts_total', help: 'x', labelNames: ['reason'], registers: [a.registry] }).labels('crash').inc();
    expect(await a.registry.getSingleMetricAsString('istio_agent_scrapes_total')).toContain('istio_agent_scrapes_total 1');
    expect(await b.registry.getSingleMetricAsString('istio_agent_scrapes_total')).toContain('istio_agent_scrapes_total 0');
    expect(await a.registry.metrics()).toContain('istio_agent_envoy_restarts_total{reason="crash"} 1');
    expect(await b.registry.metrics()).not.toContain('envoy_restarts');
    expect(await a.registry.metrics()).not.toContain('process_');
  });

  test("src/metrics/prom.ts hands out prom-client's own classes: they mix with the index's", async () => {
    expect(Prom.Registry).toBe(PromClient.Registry);
    expect(Prom.Counter).toBe(PromClient.Counter);
    expect(Prom.Gauge).toBe(PromClient.Gauge);
    expect(Prom.Histogram).toBe(PromClient.Histogram);
    const registry = new PromClient.Registry();
    new Prom.Histogram({ name: 'h_seconds', help: 'h', buckets: [1], registers: [registry] }).observe(0.5);
    new Prom.Gauge({ name: 'g', help: 'g', registers: [registry] }).set(2);
    const merged = PromClient.Registry.merge([registry, createAgentMetrics({ defaultMetrics: false }).registry]);
    const text = await merged.metrics();
    expect(text).toContain('h_seconds_bucket{le="1"} 1');
    expect(text).toContain('\ng 2\n');
    expect(text).toContain('istio_agent_scrapes_total 0');
  });
});

describe('default process metrics (src/metrics/process.ts)', () => {
  test("names, types and help are prom-client's defaults (as collectDefaultMetrics registers them)", () => {
    // prom-client's own collector runs in a child: it leaves an event-loop-delay monitor and a
    // GC observer behind, which this process must not keep.
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `const c = require('prom-client'); const r = new c.Registry();
         c.collectDefaultMetrics({ register: r, prefix: 'istio_agent_' });
         r.getMetricsAsJSON().then((j) => { process.stdout.write(JSON.stringify(j.map(({ name, help, type }) => ({ name, help, type })))); process.exit(0); });`,
      ],
      { cwd: REPO, encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    const theirs = new Map((JSON.parse(r.stdout) as Array<{ name: string; help: string; type: string }>).map((f) => [f.name, f]));
    const ours = createAgentMetrics();
    return ours.registry.getMetricsAsJSON().then((json) => {
      const mine = json.filter((f) => PROCESS_FAMILIES.includes(f.name)).map(({ name, help, type }) => ({ name, help, type: String(type) }));
      expect(mine.map((f) => f.name)).toEqual(PROCESS_FAMILIES);
      for (const f of mine) expect(f).toEqual(theirs.get(f.name));
    });
  });

  test('values come from this process: memory, descriptors, start time, version', async () => {
    const { registry } = createAgentMetrics();
    const all = await families(registry);
    const rss = value(all, 'istio_agent_process_resident_memory_bytes');
    expect(rss).toBeGreaterThan(10 * 1024 * 1024);
    const usage = process.memoryUsage();
    expect(rss / usage.rss).toBeGreaterThan(0.5);
    expect(rss / usage.rss).toBeLessThan(2);
    expect(value(all, 'istio_agent_process_virtual_memory_bytes')).toBeGreaterThan(rss);
    expect(value(all, 'istio_agent_process_heap_bytes')).toBeGreaterThan(0);
    const heapTotal = value(all, 'istio_agent_nodejs_heap_size_total_bytes');
    const heapUsed = value(all, 'istio_agent_nodejs_heap_size_used_bytes');
    expect(heapUsed).toBeGreaterThan(1024 * 1024);
    expect(heapUsed).toBeLessThanOrEqual(heapTotal);
    expect(value(all, 'istio_agent_nodejs_external_memory_bytes')).toBeGreaterThan(0);

    const start = value(all, 'istio_agent_process_start_time_seconds');
    expect(Math.abs(start - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);

    const softLimit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
    expect(value(all, 'istio_agent_process_max_fds')).toBe(softLimit);

    const [major, minor, patch] = process.version.slice(1).split('.');
    expect(all.get('istio_agent_nodejs_version_info')?.values).toEqual([{ value: 1, labels: { version: process.version, major: Number(major), minor: Number(minor), patch: Number(patch) } }]);
  });

  test('open fds counts this process’s descriptors: 20 more files open → 20 more', async () => {
    const { registry } = createAgentMetrics();
    const openFds = async () => value(await families(registry), 'istio_agent_process_open_fds');
    const before = await openFds();
    expect(before).toBeGreaterThanOrEqual(3);
    const fds = Array.from({ length: 20 }, () => fs.openSync('/dev/null', 'r'));
    try {
      const during = await openFds();
      expect(during - before).toBeGreaterThanOrEqual(19);
      expect(during - before).toBeLessThanOrEqual(21);
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
  });

  test('CPU counters are cumulative since process start and never go back', async () => {
    const { registry } = createAgentMetrics();
    const cpuBefore = process.cpuUsage();
    const first = await families(registry);
    const total1 = value(first, 'istio_agent_process_cpu_seconds_total');
    const user1 = value(first, 'istio_agent_process_cpu_user_seconds_total');
    const system1 = value(first, 'istio_agent_process_cpu_system_seconds_total');
    // Since process start, not since the registry was made.
    expect(total1).toBeGreaterThanOrEqual((cpuBefore.user + cpuBefore.system) / 1e6);
    expect(Math.abs(user1 + system1 - total1)).toBeLessThan(0.05);
    burnCpuTime(150);
    const second = await families(registry);
    expect(value(second, 'istio_agent_process_cpu_user_seconds_total')).toBeGreaterThan(user1);
    expect(value(second, 'istio_agent_process_cpu_system_seconds_total')).toBeGreaterThanOrEqual(system1);
    expect(value(second, 'istio_agent_process_cpu_seconds_total') - total1).toBeGreaterThan(0.1);
  });

  test('event-loop lag is measured by the scrape itself: a blocked loop shows up in that scrape', async () => {
    const { registry } = createAgentMetrics();
    const idle = value(await families(registry), 'istio_agent_nodejs_eventloop_lag_seconds');
    expect(idle).toBeGreaterThanOrEqual(0);
    const pending = registry.getMetricsAsJSON();
    burnCpu(200); // the loop is blocked while the scrape's lag probe waits for its turn
    const all = new Map((await pending).map((f) => [f.name, f]));
    expect(value(all, 'istio_agent_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0.19);
  });

  test('/proc parsing: status lines in kB, the soft "Max open files" limit', () => {
    const status = 'Name:\tnode\nVmPeak:\t  999 kB\nVmSize:\t  1234 kB\nVmRSS:\t     56 kB\nVmData:\t 7 kB\n';
    expect(parseStatusBytes(status, 'VmSize')).toBe(1234 * 1024);
    expect(parseStatusBytes(status, 'VmRSS')).toBe(56 * 1024);
    expect(parseStatusBytes(status, 'VmData')).toBe(7 * 1024);
    expect(parseStatusBytes(status, 'VmSwap')).toBeUndefined();
    expect(parseStatusBytes('VmRSS:\t 3 kB', 'VmRSS')).toBe(3 * 1024);
    const limits = [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             63704                63704                processes ',
      'Max open files            1024                 524288               files     ',
      '',
    ].join('\n');
    expect(parseMaxOpenFiles(limits)).toBe(1024);
    expect(parseMaxOpenFiles(limits.replace('1024 ', 'unlimited'))).toBeUndefined();
    expect(parseMaxOpenFiles('')).toBeUndefined();
  });

  (PROMTOOL ? test : test.skip)('promtool check metrics: the whole registry is clean (exit 0, no lint findings)', async () => {
    const { registry, scrapeFailures } = createAgentMetrics();
    scrapeFailures.labels('envoy').inc();
    const body = await registry.metrics();
    const check = spawnSync(PROMTOOL as string, ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect({ status: check.status, out: check.stdout + check.stderr }).toEqual({ status: 0, out: '' });
  });

  test('the compiled registry loads neither prom-client\'s index/defaultMetrics nor perf_hooks, v8, cluster or worker_threads', () => {
    const registryJs = pathToFileURL(path.join(REPO, 'dist', 'src', 'metrics', 'registry.js')).href;
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { createRequire } from 'node:module';
         const { createAgentMetrics } = await import(${JSON.stringify(registryJs)});
         const text = await createAgentMetrics().registry.metrics();
         const cache = Object.keys(createRequire(import.meta.url).cache);
         process.stdout.write(JSON.stringify({ ok: text.includes('istio_agent_process_open_fds'), modules: process.moduleLoadList, cache }));`,
      ],
      { cwd: REPO, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { ok: boolean; modules: string[]; cache: string[] };
    expect(out.ok).toBe(true);
    const builtins = out.modules.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
    for (const heavy of ['perf_hooks', 'v8', 'cluster', 'worker_threads', 'http', 'https']) expect(builtins).not.toContain(heavy);
    const files = out.cache.map((f) => path.relative(path.join(REPO, 'node_modules'), f));
    expect(files.filter((f) => !f.startsWith('..')).sort()).toEqual(
      ['registry', 'counter', 'gauge', 'histogram', 'metric', 'util', 'validation', 'exemplar'].map((m) => `prom-client/lib/${m}.js`).sort(),
    );
  });
});
