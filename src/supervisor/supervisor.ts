/**
 * The Envoy supervisor (SPEC §5.1–§5.2). Owns at most one Envoy process at a time and
 * decides whether to start another:
 *
 *   idle -> starting -> running -> backoff -> starting ...      (unexpected exits)
 *   any  -> terminating -> stopped                              (terminate / quit)
 *
 * - An unexpected exit is logged with its stderr tail and counted; Envoy is restarted after
 *   an exponential backoff with jitter. The backoff resets only once a process has been ready
 *   for `healthyResetMs` (`markReady` starts that clock). More than `crashBudget.maxExits` exits within
 *   `crashBudget.windowMs` end the agent with ENVOY_CRASH_LOOP (exit 1).
 * - A spawn failure (ENOENT/EACCES/ENOEXEC) is a configuration error: no retry.
 * - `terminate()` (SIGTERM/SIGINT): readiness flips at once; drain_listeners; wait for the
 *   fixed drain duration or for zero active connections (EXIT_ON_ZERO_ACTIVE_CONNECTIONS), or
 *   until Envoy exits; then SIGTERM → SIGKILL after `killGraceMs`; exit 0. A second
 *   `terminate()` ends the wait at once; `drainDeadlineMs` bounds the whole sequence.
 * - `drain()` (POST /drain): drain now with skip_exit; a later terminate() exits at once.
 * - `quit()` (POST /quitquitquit): stop Envoy promptly, no drain; exit 0.
 * All three are idempotent; in `stopped` they are no-ops. `run()` resolves with the exit status.
 */
import type { EnvoyAdminClient } from '../envoy/admin.js';
import type { EnvoyExit, EnvoyProcess } from '../envoy/process.js';
import type { Logger } from '../log.js';
import { AgentError } from '../errors.js';
import { Backoff, SlidingWindowBudget } from '../lifecycle/backoff.js';
import { aborted, sleep } from '../lifecycle/abort.js';
import { formatGoDuration } from '../config/duration.js';

export type SupervisorState = 'idle' | 'starting' | 'running' | 'backoff' | 'terminating' | 'stopped';

export interface SupervisorPolicy {
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
  backoffJitter: number;
  /** A process ready for this long resets the backoff when it dies. */
  healthyResetMs: number;
  crashBudget: { maxExits: number; windowMs: number };
  /** SIGTERM → SIGKILL grace when stopping Envoy. */
  killGraceMs: number;
}

export const DEFAULT_POLICY: SupervisorPolicy = {
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  backoffMultiplier: 2,
  backoffJitter: 0.2,
  healthyResetMs: 60_000,
  crashBudget: { maxExits: 5, windowMs: 5 * 60_000 },
  killGraceMs: 1000,
};

export interface DrainSettings {
  proxyType: 'sidecar' | 'router';
  terminationDrainMs: number;
  exitOnZeroActiveConnections: boolean;
  minimumDrainMs: number;
  /** Optional bound on the whole termination sequence (DRAIN_DEADLINE). */
  drainDeadlineMs?: number;
  /** Listener ports excluded from the active-connection count (ENVOY_STATUS_PORT, ENVOY_PROMETHEUS_PORT). */
  excludedPorts: number[];
  /** Poll period and timeout for active connections (SPEC: 1 s and 2 s). */
  pollIntervalMs?: number;
  pollTimeoutMs?: number;
}

export interface SupervisorHooks {
  envoyStarted?(proc: EnvoyProcess): void;
  envoyExited?(exit: EnvoyExit, expected: boolean): void;
  terminating?(cause: string): void;
}

export interface SupervisorMetrics {
  restart(reason: 'exited' | 'signaled' | 'killed'): void;
  up(value: 0 | 1): void;
}

export interface SupervisorOptions {
  log: Logger;
  /** Regenerates the bootstrap and spawns one Envoy (SPEC §5.1: before every start). */
  start: () => Promise<EnvoyProcess>;
  /** Removes the generated bootstrap after an exit. */
  cleanup: () => void;
  admin: EnvoyAdminClient;
  policy?: Partial<SupervisorPolicy>;
  drain: DrainSettings;
  hooks?: SupervisorHooks;
  metrics?: SupervisorMetrics;
}

export class EnvoySupervisor {
  private stateValue: SupervisorState = 'idle';
  private readonly policy: SupervisorPolicy;
  private readonly backoff: Backoff;
  private readonly budget: SlidingWindowBudget;
  private readonly stopRequested = new AbortController();
  private readonly skipWait = new AbortController();
  private mode: 'drain' | 'quit' = 'drain';
  private stopCause = '';
  private drained = false;
  private current: EnvoyProcess | undefined;
  private healthyTimer: NodeJS.Timeout | undefined;
  private deadline: AbortSignal | undefined;
  private runPromise: Promise<number> | undefined;
  private readonly log: Logger;

  constructor(private readonly options: SupervisorOptions) {
    this.policy = { ...DEFAULT_POLICY, ...options.policy };
    this.backoff = new Backoff({
      initialMs: this.policy.initialBackoffMs,
      maxMs: this.policy.maxBackoffMs,
      multiplier: this.policy.backoffMultiplier,
      jitter: this.policy.backoffJitter,
    });
    this.budget = new SlidingWindowBudget(this.policy.crashBudget.maxExits, this.policy.crashBudget.windowMs);
    this.log = options.log;
  }

  get state(): SupervisorState {
    return this.stateValue;
  }

  get envoy(): EnvoyProcess | undefined {
    return this.current;
  }

  /**
   * The current Envoy passed readiness: once it has stayed up for `healthyResetMs`, the
   * restart backoff goes back to its initial delay (proof of health, not a mere start).
   */
  markReady(): void {
    const proc = this.current;
    if (!proc || this.healthyTimer) return;
    this.healthyTimer = setTimeout(() => {
      this.healthyTimer = undefined;
      if (this.current !== proc || proc.hasExited) return;
      this.backoff.reset();
      this.log.info(`Envoy (pid ${proc.pid}) healthy for ${formatGoDuration(this.policy.healthyResetMs)}: restart backoff reset`);
    }, this.policy.healthyResetMs);
    this.healthyTimer.unref();
  }

  private clearHealthyTimer(): void {
    clearTimeout(this.healthyTimer);
    this.healthyTimer = undefined;
  }

  /** Runs until stopped; resolves with the process exit status. Call once. */
  run(): Promise<number> {
    this.runPromise ??= this.loop();
    return this.runPromise;
  }

  /** SIGTERM/SIGINT: graceful stop. A second call ends the drain wait at once. */
  terminate(cause: string): void {
    if (this.stateValue === 'stopped') return;
    if (this.stopRequested.signal.aborted) {
      if (!this.skipWait.signal.aborted) {
        this.log.warn(`${cause}: ending the drain wait now`);
        this.skipWait.abort();
      }
      return;
    }
    this.requestStop('drain', cause);
  }

  /** POST /quitquitquit: stop Envoy promptly with no drain. */
  quit(): void {
    if (this.stateValue === 'stopped') return;
    if (this.stopRequested.signal.aborted) {
      this.skipWait.abort();
      return;
    }
    this.requestStop('quit', 'quitquitquit requested');
  }

  /** POST /drain: drain listeners now (skip_exit); a later terminate() exits without waiting. */
  async drain(): Promise<void> {
    if (this.drained || this.stateValue === 'stopped' || this.stateValue === 'terminating') return;
    this.drained = true;
    this.log.info('drain requested: draining listeners');
    await this.drainListeners(true);
  }

  private requestStop(mode: 'drain' | 'quit', cause: string): void {
    this.mode = mode;
    this.stopCause = cause;
    if (this.options.drain.drainDeadlineMs !== undefined) this.deadline = AbortSignal.timeout(this.options.drain.drainDeadlineMs);
    this.options.hooks?.terminating?.(cause);
    this.stopRequested.abort(cause);
  }

  private setState(next: SupervisorState): void {
    if (next === this.stateValue) return;
    this.log.info(`supervisor: ${this.stateValue} -> ${next}`);
    this.stateValue = next;
  }

  private async loop(): Promise<number> {
    const stop = this.stopRequested.signal;
    try {
      while (!stop.aborted) {
        this.setState('starting');
        const proc = await this.options.start();
        this.current = proc;
        this.options.metrics?.up(1);
        this.options.hooks?.envoyStarted?.(proc);
        this.setState('running');
        const outcome = await Promise.race([proc.exited, aborted(stop).then(() => 'stop' as const)]);
        if (outcome === 'stop') break;
        this.clearHealthyTimer();
        this.onUnexpectedExit(proc, outcome);
        this.current = undefined;
        if (!this.budget.record()) {
          const { maxExits, windowMs } = this.policy.crashBudget;
          throw new AgentError(
            'ENVOY_CRASH_LOOP',
            `Envoy exited ${maxExits} times within ${formatGoDuration(windowMs)} (last: ${outcome.description}); giving up so the kubelet's CrashLoopBackOff takes over`,
            { exitCode: 1 },
          );
        }
        const delay = this.backoff.next();
        this.setState('backoff');
        this.log.warn(`restarting Envoy in ${delay}ms`);
        await sleep(delay, stop);
      }
      return await this.shutdown();
    } catch (err) {
      // Never leave an Envoy behind, whatever failed.
      this.clearHealthyTimer();
      if (this.current && !this.current.hasExited) await this.current.kill();
      this.options.cleanup();
      this.options.metrics?.up(0);
      this.setState('stopped');
      throw err;
    }
  }

  private onUnexpectedExit(proc: EnvoyProcess, exit: EnvoyExit): void {
    this.options.metrics?.up(0);
    this.options.cleanup();
    this.options.hooks?.envoyExited?.(exit, false);
    const reason = exit.signal === 'SIGKILL' ? 'killed' : exit.signal ? 'signaled' : 'exited';
    this.options.metrics?.restart(reason);
    const tail = exit.stderrTail.length > 0 ? `; last stderr lines:\n${exit.stderrTail.join('\n')}` : '';
    this.log.error(`Envoy (pid ${proc.pid}) ${exit.description} unexpectedly${tail}`);
  }

  private async shutdown(): Promise<number> {
    this.clearHealthyTimer();
    this.setState('terminating');
    const proc = this.current;
    if (proc && !proc.hasExited) {
      if (this.mode === 'drain' && !this.drained) {
        await this.drainListeners(false);
        await this.waitForDrain(proc);
      } else if (this.mode === 'drain') {
        this.log.info('listeners already drained (/drain): stopping Envoy now');
      }
      const exit = await proc.terminate(this.policy.killGraceMs);
      this.log.info(`Envoy (pid ${proc.pid}) ${exit.description}`);
      this.options.hooks?.envoyExited?.(exit, true);
    }
    this.options.cleanup();
    this.options.metrics?.up(0);
    this.current = undefined;
    this.setState('stopped');
    return 0;
  }

  /** POST /drain_listeners with Istio's parameters; failures are logged, never fatal. */
  private async drainListeners(skipExit: boolean): Promise<void> {
    const params = this.options.drain.proxyType === 'router' ? ['graceful'] : ['inboundonly', 'graceful'];
    if (skipExit) params.push('skip_exit');
    const path = `/drain_listeners?${params.join('&')}`;
    try {
      await this.options.admin.post(path, 2000, this.deadline);
      this.log.info(`POST ${path}: draining`);
    } catch (err) {
      this.log.warn(`POST ${path} failed: ${(err as Error).message}`);
    }
  }

  private async waitForDrain(proc: EnvoyProcess): Promise<void> {
    const d = this.options.drain;
    const stopWaiting = AbortSignal.any([this.skipWait.signal, ...(this.deadline ? [this.deadline] : [])]);
    const exited = new AbortController();
    void proc.exited.then(() => exited.abort());
    const until = AbortSignal.any([stopWaiting, exited.signal]);
    if (!d.exitOnZeroActiveConnections) {
      this.log.info(`waiting ${formatGoDuration(d.terminationDrainMs)} for Envoy to drain`);
      await sleep(d.terminationDrainMs, until);
      return;
    }
    this.log.info(`waiting ${formatGoDuration(d.minimumDrainMs)}, then until Envoy has no active connections`);
    if (!(await sleep(d.minimumDrainMs, until))) return;
    let failures = 0;
    for (;;) {
      if (until.aborted) return;
      try {
        const { body } = await this.options.admin.call('GET', '/stats?usedonly&filter=downstream_cx_active$', d.pollTimeoutMs ?? 2000, until);
        if (body.trim() === '') {
          this.log.info('no active-connection stats: done draining');
          return;
        }
        const active = activeConnections(body, d.excludedPorts);
        failures = 0;
        if (active === 0) {
          this.log.info('no active connections: done draining');
          return;
        }
        this.log.info(`${active} active connections, waiting`);
      } catch (err) {
        if (until.aborted) return;
        failures++;
        this.log.warn(`failed to read active connections (${failures}/5): ${(err as Error).message}`);
        if (failures >= 5) return;
      }
      if (!(await sleep(d.pollIntervalMs ?? 1000, until))) return;
    }
  }
}

/**
 * PURE: sum of downstream_cx_active over listeners (SPEC §5.2): names starting `listener.`,
 * not per-worker, not internal, not admin, not the readiness/prometheus listeners.
 */
export function activeConnections(body: string, excludedPorts: number[]): number {
  let sum = 0;
  for (const line of body.split('\n')) {
    const parts = line.split(':');
    if (parts.length !== 2) continue;
    const name = (parts[0] as string).trim();
    if (!name.startsWith('listener.') || name.includes('worker_') || name.startsWith('listener.envoy_internal_') || name.startsWith('listener.admin.')) {
      continue;
    }
    if (excludedPorts.some((p) => name.endsWith(`_${p}.downstream_cx_active`))) continue;
    const v = Number((parts[1] as string).trim());
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}
