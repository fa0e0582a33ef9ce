/**
 * Health reporting (SPEC §7.2): the periodic prober of ProxyConfig `readinessProbe`.
 *
 * - `parseReadinessProbe` (PURE) validates the probe once, fills Istio's defaults (timeout 1 s,
 *   period 10 s, thresholds 1; httpGet path `/`, scheme http; host = first node IP, or
 *   `localhost` in legacy-localhost mode) and names the culprit in a ConfigError.
 * - `HealthThresholds` (PURE) turns probe outcomes into reports: healthy after `successThreshold`
 *   consecutive passes, unhealthy after `failureThreshold` consecutive failures, each only when
 *   no report was made yet or the last one said otherwise.
 * - `HealthProber` (shell) waits `initialDelay`, probes at once and then every period (never two
 *   probes at a time). A probe passes when Envoy is ready (§6.1) AND the check passes. Reports go
 *   to `onReport` (the xDS proxy's `sendHealth`). The checks are the shared probers of
 *   `src/probe/` (health-checks.ts maps their outcomes to report messages). `close()` stops it and waits for a probe in
 *   flight (bounded by its timeout); no report is made after `close()`.
 */
import type { Logger } from '../log.js';
import type { AgentConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { sleep } from '../lifecycle/abort.js';
import type { HealthReport } from './messages.js';
import { runCheck, type HealthCheck } from './health-checks.js';
import { ProbeNetwork } from '../probe/network.js';

export type { HealthCheck } from './health-checks.js';

export interface ReadinessProbeSpec {
  initialDelayMs: number;
  timeoutMs: number;
  periodMs: number;
  successThreshold: number;
  failureThreshold: number;
  check: HealthCheck;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

function normalise(o: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) out[camel(k)] = v;
  return out;
}

export interface ProbeDefaults {
  /** Host when the probe names none: the first node IP (or `localhost`). */
  defaultHost: string;
}

/** Validates `readinessProbe` (raw, camelCase or snake_case). `source` prefixes error paths. */
export function parseReadinessProbe(raw: unknown, defaults: ProbeDefaults, source = 'ProxyConfig readinessProbe'): ReadinessProbeSpec {
  if (!isObj(raw)) throw new ConfigError(`${source}: expected an object`);
  const p = normalise(raw);
  const int = (key: string, dflt: number, min: number): number => {
    const v = p[key];
    if (v === undefined || v === null) return dflt;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${source}.${key}: expected a non-negative integer, got ${JSON.stringify(v)}`);
    return n === 0 ? dflt : Math.max(min, n);
  };
  const port = (o: Obj, where: string): number => {
    const v = o.port;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`${source}.${where}.port: expected a port 1-65535, got ${JSON.stringify(v)}`);
    return n;
  };
  const host = (o: Obj, where: string): string => {
    const v = o.host;
    if (v === undefined || v === null || v === '') return defaults.defaultHost;
    if (typeof v !== 'string') throw new ConfigError(`${source}.${where}.host: expected a string, got ${JSON.stringify(v)}`);
    return v;
  };

  const methods = ['httpGet', 'tcpSocket', 'exec', 'grpc'].filter((m) => p[m] !== undefined && p[m] !== null);
  if (methods.length !== 1) {
    throw new ConfigError(`${source}: expected exactly one of httpGet, tcpSocket, exec, grpc${methods.length ? `, got ${methods.join(' and ')}` : ''}`);
  }
  const method = methods[0] as string;
  const body = p[method];
  if (!isObj(body)) throw new ConfigError(`${source}.${method}: expected an object`);
  const m = normalise(body);
  let check: HealthCheck;
  switch (method) {
    case 'httpGet': {
      const scheme = typeof m.scheme === 'string' && m.scheme !== '' ? m.scheme.toLowerCase() : 'http';
      if (scheme !== 'http' && scheme !== 'https') throw new ConfigError(`${source}.httpGet.scheme: expected HTTP or HTTPS, got ${JSON.stringify(m.scheme)}`);
      const headersRaw = m.httpHeaders ?? [];
      if (!Array.isArray(headersRaw)) throw new ConfigError(`${source}.httpGet.httpHeaders: expected a list`);
      const headers = headersRaw.map((h, i) => {
        if (!isObj(h) || typeof h.name !== 'string' || h.name === '') throw new ConfigError(`${source}.httpGet.httpHeaders[${i}]: expected {name, value}`);
        return { name: h.name, value: typeof h.value === 'string' ? h.value : String(h.value ?? '') };
      });
      const pathV = typeof m.path === 'string' && m.path !== '' ? m.path : '/';
      check = { kind: 'httpGet', scheme, host: host(m, 'httpGet'), port: port(m, 'httpGet'), path: pathV, headers };
      break;
    }
    case 'tcpSocket':
      check = { kind: 'tcpSocket', host: host(m, 'tcpSocket'), port: port(m, 'tcpSocket') };
      break;
    case 'exec': {
      const cmd = m.command;
      if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((c) => typeof c === 'string')) {
        throw new ConfigError(`${source}.exec.command: expected a non-empty list of strings`);
      }
      check = { kind: 'exec', command: cmd as string[] };
      break;
    }
    default:
      check = { kind: 'grpc', host: host(m, 'grpc'), port: port(m, 'grpc'), service: typeof m.service === 'string' ? m.service : '' };
  }
  return {
    initialDelayMs: int('initialDelaySeconds', 0, 0) * 1000,
    timeoutMs: int('timeoutSeconds', 1, 1) * 1000,
    periodMs: int('periodSeconds', 10, 1) * 1000,
    successThreshold: int('successThreshold', 1, 1),
    failureThreshold: int('failureThreshold', 1, 1),
    check,
  };
}

/** The probe of the effective config, or undefined when `readinessProbe` is unset. */
export function readinessProbeFromConfig(config: AgentConfig, nodeIps: readonly string[]): ReadinessProbeSpec | undefined {
  const raw = config.proxy.readinessProbe;
  if (raw === undefined) return undefined;
  const legacy = config.env.REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION === true;
  return parseReadinessProbe(raw, { defaultHost: legacy ? 'localhost' : (nodeIps[0] ?? 'localhost') });
}

/** PURE: consecutive-outcome thresholds → reports on state changes only. */
export class HealthThresholds {
  private successes = 0;
  private failures = 0;
  private last: 'healthy' | 'unhealthy' | undefined;

  constructor(
    private readonly successThreshold: number,
    private readonly failureThreshold: number,
  ) {}

  /** Records one probe outcome (`undefined` = pass, else the failure message); returns a report to send, if any. */
  record(failure: string | undefined): HealthReport | undefined {
    if (failure === undefined) {
      this.successes++;
      this.failures = 0;
      if (this.successes >= this.successThreshold && this.last !== 'healthy') {
        this.last = 'healthy';
        this.successes = 0;
        return { healthy: true };
      }
      return undefined;
    }
    this.failures++;
    this.successes = 0;
    if (this.failures >= this.failureThreshold && this.last !== 'unhealthy') {
      this.last = 'unhealthy';
      this.failures = 0;
      return { healthy: false, message: failure };
    }
    return undefined;
  }
}

export type EnvoyReadiness = { ready: true } | { ready: false; reason: string };

export interface HealthProberOptions {
  spec: ReadinessProbeSpec;
  /** Envoy's readiness (§6.1), e.g. the ReadinessTracker's cached state. */
  envoyReady: () => EnvoyReadiness;
  onReport: (report: HealthReport) => void;
  log: Logger;
  /** IPv6 pod: an httpGet check binds `::6` and resolves host names to IPv6 first (default false). */
  ipv6?: boolean;
  /** The check runner (tests may replace it); `network` is the prober's source rule. */
  check?: (check: HealthCheck, timeoutMs: number, network: ProbeNetwork) => Promise<string | undefined>;
}

export class HealthProber {
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private readonly thresholds: HealthThresholds;
  private readonly network: ProbeNetwork;

  constructor(private readonly options: HealthProberOptions) {
    this.thresholds = new HealthThresholds(options.spec.successThreshold, options.spec.failureThreshold);
    this.network = ProbeNetwork.forPod(options.ipv6 ?? false);
  }

  start(): void {
    if (this.running || this.stop.signal.aborted) return;
    const s = this.options.spec;
    this.options.log.info(`starting health check for ${s.check.kind} in ${s.initialDelayMs / 1000}s (every ${s.periodMs / 1000}s, thresholds ${s.successThreshold}/${s.failureThreshold})`);
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    const { spec } = this.options;
    const signal = this.stop.signal;
    if (!(await sleep(spec.initialDelayMs, signal))) return;
    while (!signal.aborted) {
      const started = performance.now();
      const failure = await this.probeOnce();
      if (signal.aborted) return;
      const report = this.thresholds.record(failure);
      if (report) {
        this.options.log.info(report.healthy ? 'success threshold hit, marking as healthy' : `failure threshold hit, marking as unhealthy: ${report.message}`);
        this.options.onReport(report);
      }
      if (!(await sleep(spec.periodMs - (performance.now() - started), signal))) return;
    }
  }

  /** One probe: Envoy readiness first, then the configured check. undefined = pass. */
  async probeOnce(): Promise<string | undefined> {
    const envoy = this.options.envoyReady();
    if (!envoy.ready) return envoy.reason;
    const run = this.options.check ?? runCheck;
    try {
      return await run(this.options.spec.check, this.options.spec.timeoutMs, this.network);
    } catch (err) {
      return `probe failed: ${(err as Error).message}`;
    }
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
