/**
 * The agent's default process metrics (SPEC §12), in place of prom-client's
 * `collectDefaultMetrics` (which loads @opentelemetry/api, perf_hooks, v8 and keeps an
 * event-loop-delay histogram and a GC observer running: issue 4). Same names, types and help
 * as prom-client's defaults, under the caller's prefix (`istio_agent_`):
 *
 * | family | type | source |
 * |---|---|---|
 * | `process_cpu_user_seconds_total`, `process_cpu_system_seconds_total`, `process_cpu_seconds_total` | counter | `process.cpuUsage()` (since process start) |
 * | `process_start_time_seconds` | gauge | `Date.now()/1000 − process.uptime()`, rounded (prom-client's) |
 * | `process_resident_memory_bytes` | gauge | `/proc/self/status` VmRSS (elsewhere `process.memoryUsage().rss`) |
 * | `process_virtual_memory_bytes`, `process_heap_bytes` | gauge | `/proc/self/status` VmSize, VmData (Linux only) |
 * | `process_open_fds` | gauge | entries of `/proc/self/fd` (Linux only) |
 * | `process_max_fds` | gauge | `/proc/self/limits` "Max open files" soft limit, read once (Linux only) |
 * | `nodejs_heap_size_total_bytes`, `nodejs_heap_size_used_bytes`, `nodejs_external_memory_bytes` | gauge | `process.memoryUsage()` |
 * | `nodejs_version_info{version,major,minor,patch}` | gauge (1) | `process.version` |
 * | `nodejs_eventloop_lag_seconds` | gauge | a `setImmediate` round trip started by the scrape |
 *
 * Everything is read at scrape time in the metrics' `collect()`; nothing runs between scrapes
 * (no timers, no observers). A `/proc` file that cannot be read leaves that family's previous
 * value in place; families whose source does not exist on this platform are not registered.
 * prom-client's other defaults (per-space heap sizes, GC durations, active handles/requests/
 * resources, the lag histogram percentiles) are not exported.
 */
import fs from 'node:fs';
import type { Registry } from 'prom-client';
import { Counter, Gauge } from './prom.js';

export interface ProcessMetricsOptions {
  /** Prepended to every family name, e.g. `istio_agent_`. */
  prefix?: string;
}

/** Registers the process families on `registry`; returns the family names registered. */
export function registerProcessMetrics(registry: Registry, options: ProcessMetricsOptions = {}): string[] {
  const prefix = options.prefix ?? '';
  const proc = '/proc/self';
  const linux = process.platform === 'linux';
  const registers = [registry];
  const names: string[] = [];
  const gauge = (name: string, help: string, collect: (g: Gauge) => void | Promise<void>, labelNames: string[] = []) => {
    names.push(prefix + name);
    const g: Gauge = new Gauge({ name: prefix + name, help, registers, labelNames, collect: () => collect(g) });
  };
  /** A counter that reports an absolute, monotonic reading (prom-client counters only `inc`). */
  const absoluteCounter = (name: string, help: string, read: () => number) => {
    names.push(prefix + name);
    let reported = 0;
    const c: Counter = new Counter({
      name: prefix + name,
      help,
      registers,
      collect: () => {
        const now = read();
        if (now > reported) {
          c.inc(now - reported);
          reported = now;
        }
      },
    });
  };

  absoluteCounter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => process.cpuUsage().user / 1e6);
  absoluteCounter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', () => process.cpuUsage().system / 1e6);
  absoluteCounter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1e6;
  });

  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', (g) => g.set(startTime));

  if (linux) {
    const status = (field: 'VmRSS' | 'VmSize' | 'VmData') => (g: Gauge) => {
      const bytes = readStatusBytes(`${proc}/status`, field);
      if (bytes !== undefined) g.set(bytes);
    };
    gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', status('VmRSS'));
    gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.', status('VmSize'));
    gauge('process_heap_bytes', 'Process heap size in bytes.', status('VmData'));
    gauge('process_open_fds', 'Number of open file descriptors.', (g) => {
      const open = countOpenFds(`${proc}/fd`);
      if (open !== undefined) g.set(open);
    });
    const maxFds = readMaxOpenFiles(`${proc}/limits`);
    if (maxFds !== undefined) gauge('process_max_fds', 'Maximum number of open file descriptors.', (g) => g.set(maxFds));
  } else {
    gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', (g) => {
      const usage = memoryUsage();
      if (usage) g.set(usage.rss);
    });
  }

  gauge('nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.', (g) => measureLag().then((seconds) => g.set(seconds)));
  gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', (g) => {
    const usage = memoryUsage();
    if (usage) g.set(usage.heapTotal);
  });
  gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', (g) => {
    const usage = memoryUsage();
    if (usage) g.set(usage.heapUsed);
  });
  gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', (g) => {
    const usage = memoryUsage();
    if (usage) g.set(usage.external);
  });

  const [major = '', minor = '', patch = ''] = process.version.slice(1).split('.');
  gauge(
    'nodejs_version_info',
    'Node.js version info.',
    (g) => g.set({ version: process.version, major: Number(major), minor: Number(minor), patch: Number(patch) }, 1),
    ['version', 'major', 'minor', 'patch'],
  );
  return names;
}

/** Seconds from now until the event loop runs a `setImmediate` callback. */
function measureLag(): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - start) / 1e9)));
}

/** `process.memoryUsage()` can throw on some platforms (prom-client #67). */
function memoryUsage(): NodeJS.MemoryUsage | undefined {
  try {
    return process.memoryUsage();
  } catch {
    return undefined;
  }
}

/** A `<field>:   <n> kB` line of /proc/<pid>/status, in bytes. */
export function parseStatusBytes(status: string, field: string): number | undefined {
  const at = status.indexOf(`\n${field}:`);
  const start = at >= 0 ? at + 1 : status.startsWith(`${field}:`) ? 0 : -1;
  if (start < 0) return undefined;
  const end = status.indexOf('\n', start);
  const m = /^[^:]+:\s*(\d+)\s*kB\s*$/.exec(status.slice(start, end < 0 ? undefined : end));
  return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
}

function readStatusBytes(file: string, field: string): number | undefined {
  try {
    return parseStatusBytes(fs.readFileSync(file, 'latin1'), field);
  } catch {
    return undefined;
  }
}

/** Entries of /proc/self/fd, minus the descriptor `readdir` itself had open while listing. */
function countOpenFds(dir: string): number | undefined {
  try {
    return fs.readdirSync(dir).length - 1;
  } catch {
    return undefined;
  }
}

/** The soft limit of the "Max open files" row of /proc/<pid>/limits (undefined when unlimited or absent). */
export function parseMaxOpenFiles(limits: string): number | undefined {
  const row = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = row?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
}

function readMaxOpenFiles(file: string): number | undefined {
  try {
    return parseMaxOpenFiles(fs.readFileSync(file, 'latin1'));
  } catch {
    return undefined;
  }
}
