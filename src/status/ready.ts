/**
 * Readiness (SPEC §6.1), answered from a cache so the probe never waits on Envoy's admin:
 * while the current Envoy process has not yet passed, a poll loop off the probe path queries
 * admin (sequentially, each call bounded by a timeout) and stores the latest result with
 * Istio's reason text. Once passed, the result is cached for that Envoy process; a restart
 * (`envoyStarted`) or termination clears it. Transitions are logged, not polls.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EnvoyAdminClient } from '../envoy/admin.js';
import type { Logger } from '../log.js';
import { sleep } from '../lifecycle/abort.js';
import { describeError } from '../errors.js';
import { Ring, isoTime } from './registry.js';

export type ReadyState = { ready: true } | { ready: false; reason: string };

/** `gate`: can make the answer 503; `detail`: only adds to a not-ready reason (see `addCheck`). */
export type ReadinessCheckKind = 'gate' | 'detail';

export const CONFIG_STATS_FILTER = '^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$';
export const STATE_STATS_FILTER = '^(server\\.state|listener_manager\\.workers_started)';

const STATE_NAMES: Record<string, string> = { '0': 'LIVE', '1': 'DRAINING', '2': 'PRE_INITIALIZING', '3': 'INITIALIZING' };

export interface ReadinessOptions {
  admin: EnvoyAdminClient;
  /** Standalone mode skips the CDS/LDS step. */
  standalone: boolean;
  log: Logger;
  /** The poll interval once the fast window has passed (default 100 ms). */
  pollIntervalMs?: number;
  /**
   * For the first `fastPollWindowMs` (default 1 s) of each Envoy process the loop polls every
   * `fastPollIntervalMs` (default 20 ms, never above `pollIntervalMs`), so a quick Envoy is
   * seen ready quickly. Polls stay sequential either way: never more than one request in flight.
   */
  fastPollIntervalMs?: number;
  fastPollWindowMs?: number;
  adminTimeoutMs?: number;
  /** Called once, on the first success of the agent's lifetime. */
  onFirstReady?: () => void;
  /** Called each time an Envoy process passes (once per process). */
  onReady?: () => void;
}

/** PURE: the config step of SPEC §6.1 from the admin stats. undefined = passed. */
export function configStatus(stats: Map<string, string>): string | undefined {
  const n = (k: string) => Number(stats.get(k) ?? 0) || 0;
  const cdsOk = n('cluster_manager.cds.update_success');
  const cdsRej = n('cluster_manager.cds.update_rejected');
  const ldsOk = n('listener_manager.lds.update_success');
  const ldsRej = n('listener_manager.lds.update_rejected');
  if (cdsOk > 0 && ldsOk > 0) return undefined;
  const detail = `cds updates: ${cdsOk} successful, ${cdsRej} rejected; lds updates: ${ldsOk} successful, ${ldsRej} rejected`;
  if (cdsOk === 0 && ldsOk === 0) return `config not received from XDS server (is Istiod running?): ${detail}`;
  if (cdsRej > 0 || ldsRej > 0) return `config received from XDS server, but was rejected: ${detail}`;
  return `config not fully received from XDS server: ${detail}`;
}

/** PURE: the Envoy-live step of SPEC §6.1. undefined = passed. */
export function liveStatus(stats: Map<string, string>, body: string): string | undefined {
  const state = stats.get('server.state');
  if (state === undefined) return `failed to get readiness stats: server.state is not yet updated: ${body}`;
  if (state !== '0') return `server is not live, current state is: ${STATE_NAMES[state] ?? state}`;
  if (stats.get('listener_manager.workers_started') !== '1') return 'workers have not yet started';
  return undefined;
}

export class ReadinessTracker {
  private state: ReadyState = { ready: false, reason: 'Envoy has not been started yet' };
  private generation = 0;
  private loop: AbortController | undefined;
  private terminated = false;
  private everReady = false;
  private readonly readyListeners = new Set<() => void>();
  /** Recent transitions, for the status page (`snapshot`). */
  private readonly transitions = new Ring<{ at: number; ready: boolean; reason?: string }>(20);
  /** Agent-side checks (SDS names that cannot be served, the DNS table): see `addCheck`. */
  private readonly checks = new Map<() => string | undefined, ReadinessCheckKind>();
  private readonly interval: number;
  private readonly fastInterval: number;
  private readonly fastWindow: number;
  private readonly timeout: number;

  constructor(private readonly options: ReadinessOptions) {
    this.interval = options.pollIntervalMs ?? 100;
    this.fastInterval = Math.min(options.fastPollIntervalMs ?? 20, this.interval);
    this.fastWindow = options.fastPollWindowMs ?? 1000;
    this.timeout = options.adminTimeoutMs ?? 1000;
  }

  /** Calls `listener` each time an Envoy process passes (like `onReady`); disposing the result unsubscribes. */
  whenReady(listener: () => void): Disposable {
    this.readyListeners.add(listener);
    return { [Symbol.dispose]: () => void this.readyListeners.delete(listener) };
  }

  current(): ReadyState {
    return this.state;
  }

  /** Status provider facts: the current result and the recent transitions (oldest first). */
  snapshot(): { ready: boolean; reason: string | null; terminated: boolean; transitions: { at: string | null; ready: boolean; reason: string | null }[] } {
    const s = this.probe();
    return {
      ready: s.ready,
      reason: s.ready ? null : s.reason,
      terminated: this.terminated,
      transitions: this.transitions.toArray().map((t) => ({ at: isoTime(t.at), ready: t.ready, reason: t.reason ?? null })),
    };
  }

  /**
   * An agent-side check: it returns a not-ready reason, or undefined. A `gate` check (Istio's
   * `Agent.Check`, e.g. DNS capture without a name table) is asked once Envoy's own result
   * passes, as Istio does, and makes the answer 503 with its reason. A `detail` check never makes
   * the answer 503 (one bad egress secret must not take the pod out of its Service); its reason is
   * appended to any not-ready answer, so it names, e.g., the SDS secret a warming cluster waits
   * for. Checks affect `/healthz/ready` (`probe()`), not `current()` (Envoy's own state, reported
   * to the control plane). Disposing removes the check.
   */
  addCheck(check: () => string | undefined, kind: ReadinessCheckKind = 'gate'): Disposable {
    this.checks.set(check, kind);
    return { [Symbol.dispose]: () => void this.checks.delete(check) };
  }

  /** What `/healthz/ready` answers: Envoy's state, then the gate checks; detail checks appended. */
  probe(): ReadyState {
    let s = this.state;
    if (s.ready) {
      for (const [check, kind] of this.checks) {
        const reason = kind === 'gate' ? check() : undefined;
        if (reason) {
          s = { ready: false, reason };
          break;
        }
      }
    }
    if (s.ready) return s;
    const details: string[] = [];
    for (const [check, kind] of this.checks) {
      const reason = kind === 'detail' ? check() : undefined;
      if (reason) details.push(reason);
    }
    return details.length === 0 ? s : { ready: false, reason: [s.reason, ...details].join('; ') };
  }

  /** A new Envoy process: forget the cached result and poll until it passes. */
  envoyStarted(): void {
    if (this.terminated) return;
    this.stopLoop();
    this.set({ ready: false, reason: 'Envoy is starting' });
    const gen = ++this.generation;
    const ctl = new AbortController();
    this.loop = ctl;
    void this.poll(gen, ctl.signal);
  }

  /** Envoy exited (a restart may follow). */
  envoyStopped(description: string): void {
    if (this.terminated) return;
    this.stopLoop();
    this.generation++;
    this.set({ ready: false, reason: `Envoy is not running: ${description}` });
  }

  /** Terminal: after SIGTERM or /quitquitquit. */
  terminate(cause: string): void {
    if (this.terminated) return;
    this.stopLoop();
    this.generation++;
    this.set({ ready: false, reason: `server is terminated: ${cause}` });
    this.terminated = true;
  }

  /** The `/healthz/ready` handler: 200 empty, or 503 text/plain with the reason. */
  readonly handler = (_req: IncomingMessage, res: ServerResponse): void => {
    const s = this.probe();
    if (s.ready) {
      res.writeHead(200, { 'Content-Length': '0' });
      res.end();
      return;
    }
    const body = `${s.reason}\n`;
    res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };

  /** One check against admin, Istio's order: config first, then Envoy state. */
  async checkOnce(signal?: AbortSignal): Promise<ReadyState> {
    const { admin } = this.options;
    try {
      if (!this.options.standalone) {
        const { stats } = await admin.stats(CONFIG_STATS_FILTER, this.timeout, signal);
        const reason = configStatus(stats);
        if (reason) return { ready: false, reason };
      }
      const { stats, body } = await admin.stats(STATE_STATS_FILTER, this.timeout, signal);
      const reason = liveStatus(stats, body);
      return reason ? { ready: false, reason } : { ready: true };
    } catch (err) {
      return { ready: false, reason: `failed to get readiness stats: ${describeError(err)}` };
    }
  }

  private async poll(gen: number, signal: AbortSignal): Promise<void> {
    const fastUntil = performance.now() + this.fastWindow;
    while (!signal.aborted && gen === this.generation) {
      const result = await this.checkOnce(signal);
      if (signal.aborted || gen !== this.generation) return;
      this.set(result);
      if (result.ready) {
        this.options.onReady?.();
        for (const l of this.readyListeners) l();
        if (!this.everReady) {
          this.everReady = true;
          this.options.onFirstReady?.();
        }
        return;
      }
      await sleep(performance.now() < fastUntil ? this.fastInterval : this.interval, signal);
    }
  }

  private set(next: ReadyState): void {
    const prev = this.state;
    this.state = next;
    const prevText = prev.ready ? 'ready' : prev.reason;
    const nextText = next.ready ? 'ready' : next.reason;
    if (prevText !== nextText) this.transitions.push({ at: Date.now(), ready: next.ready, ...(next.ready ? {} : { reason: next.reason }) });
    if (prevText !== nextText) this.options.log.info(`readiness: ${prev.ready ? 'ready' : 'not ready'} -> ${next.ready ? 'ready' : `not ready: ${next.reason}`}`);
  }

  private stopLoop(): void {
    this.loop?.abort();
    this.loop = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.readyListeners.clear();
    this.stopLoop();
    this.generation++;
  }
}
