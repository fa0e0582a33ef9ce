/** The supervisor's options, hooks and metrics, and the typed context of one run (requests, the serving Envoy). */
import type { EnvoyExit, EnvoyHandle, EnvoyProcess } from '../envoy/process.js';
import type { Logger } from '../log.js';
import type { HotRestartSettings } from './hot-restart.js';
import type { Clock } from './clock.js';
import type { SupervisorPolicy } from './policy.js';
import type { DrainSettings, SupervisorAdmin } from './drain.js';
import type { SupervisorState } from './states.js';

export interface SupervisorHooks<P extends EnvoyHandle = EnvoyProcess> {
  envoyStarted?(proc: P): void;
  envoyExited?(exit: EnvoyExit, expected: boolean): void;
  terminating?(cause: string): void;
}

/**
 * What the supervisor reports for `istio_agent_envoy_restarts_total{reason}` and
 * `istio_agent_envoy_up` (wired to prom-client by the agent). `restart` is called once per
 * unexpected exit (classified as in SPEC §5.1) and once per hot restart started.
 */
export interface SupervisorMetrics {
  restart(reason: 'exited' | 'signaled' | 'killed' | 'hot_restart'): void;
  up(value: 0 | 1): void;
}

/** What `start` is asked for: the restart epoch (0 unless this start is a hot restart). */
export interface StartRequest {
  epoch: number;
}

export interface SupervisorOptions<P extends EnvoyHandle = EnvoyProcess> {
  log: Logger;
  /** Regenerates the bootstrap and spawns one Envoy (SPEC §5.1: before every start). */
  start: (request: StartRequest) => Promise<P>;
  /** Removes the generated bootstrap after an exit. */
  cleanup: () => void;
  admin: SupervisorAdmin;
  policy?: Partial<SupervisorPolicy>;
  drain: DrainSettings;
  hooks?: SupervisorHooks<P>;
  metrics?: SupervisorMetrics;
  /** Hot restart (SPEC §5.3); undefined = disabled (ENVOY_HOT_RESTART=false). */
  hotRestart?: HotRestartSettings;
  /** Timers and time (default: the system clock). */
  clock?: Clock;
  /** Backoff jitter source in [0, 1) (default Math.random). */
  random?: () => number;
  /** Hot restart LIVE poll period (default 100 ms). */
  handoverPollMs?: number;
}

/** A stop asked for by terminate() or quit(): how, why, and what may end its waits early. */
export interface StopRequest {
  mode: 'drain' | 'quit';
  cause: string;
  /** Aborted by a second terminate() (or a quit()): the drain wait ends at once. */
  skipWait: AbortController;
  /** DRAIN_DEADLINE, if set. */
  deadline: AbortController | undefined;
  cancelDeadline: () => void;
}

/** The Envoy serving now (the child, from the start of a hand-over). */
export interface Serving<P> {
  proc: P;
  epoch: number;
  /** Proven LIVE: readiness passed, or a hot-restart child answered LIVE. */
  live: boolean;
  cancelHealthy: () => void;
}

/** What the supervisor remembers for its snapshot (wall-clock ms). */
export interface SupervisorRecord {
  startedAt?: number;
  restarts: number;
  lastExit?: { at: number; pid: number | null; description: string; code: number | null; signal: string | null; stderrTail: string[] };
  backoff?: { delayMs: number; until: number };
}

/** What `EnvoySupervisor.snapshot()` returns (status.schema.json, section `envoy`). */
export interface SupervisorSnapshot {
  state: SupervisorState;
  envoy: { pid: number | null; epoch: number; startedAt: string | null; uptimeSeconds: number | null; live: boolean } | null;
  restarts: number;
  lastExit: { at: string; pid: number | null; description: string; code: number | null; signal: string | null; stderrTail: string[] } | null;
  backoff: { delayMs: number; restartAt: string } | null;
  budget: { exitsInWindow: number; maxExits: number; windowSeconds: number };
  hotRestart: boolean;
}
