/** An EnvoySupervisor on fakes (fake clock, Envoys, admin, logger), with what it did recorded. */
import { EnvoySupervisor, type DrainSettings, type SupervisorPolicy } from '../../src/supervisor/supervisor.js';
import type { HotRestartSettings } from '../../src/supervisor/hot-restart.js';
import { FakeAdmin, FakeClock, FakeSpawner, fakeLogger, settle, type FakeEnvoy } from './fakes.js';

export const TEST_POLICY: SupervisorPolicy = {
  initialBackoffMs: 1000,
  maxBackoffMs: 8000,
  backoffMultiplier: 2,
  backoffJitter: 0.2,
  healthyResetMs: 60_000,
  crashBudget: { maxExits: 100, windowMs: 300_000 },
  killGraceMs: 1000,
};

export const TEST_DRAIN: DrainSettings = {
  proxyType: 'sidecar',
  terminationDrainMs: 5000,
  exitOnZeroActiveConnections: false,
  minimumDrainMs: 5000,
  excludedPorts: [15021, 15090],
};

export interface HarnessOptions {
  policy?: Partial<SupervisorPolicy>;
  drain?: Partial<DrainSettings>;
  hotRestart?: HotRestartSettings;
  /** Backoff jitter source (default 0.5: no jitter). */
  random?: () => number;
  /** Call run() at once (default true). */
  run?: boolean;
}

export type Outcome = { code: number } | { err: unknown };

export interface Harness {
  clock: FakeClock;
  admin: FakeAdmin;
  spawner: FakeSpawner;
  sup: EnvoySupervisor<FakeEnvoy>;
  lines: string[];
  text: () => string;
  /** Hook and metric calls, in order: `started <pid>`, `exited <expected>`, `terminating <cause>`, `up <v>`, `restart <reason>`. */
  events: string[];
  cleanups: () => number;
  run: () => void;
  /** run()'s settlement, once it happened. */
  outcome: () => Outcome | undefined;
  /** `A -> B` for every transition traced so far. */
  transitions: () => string[];
  /** Fires timers until the supervisor is stopped. */
  untilStopped: () => Promise<Outcome>;
}

export function startSupervisor(options: HarnessOptions = {}): Harness {
  const clock = new FakeClock();
  const admin = new FakeAdmin(clock);
  const spawner = new FakeSpawner(clock);
  const { log, lines, text } = fakeLogger();
  const events: string[] = [];
  let cleanups = 0;
  const sup = new EnvoySupervisor<FakeEnvoy>({
    log,
    start: spawner.start,
    cleanup: () => void cleanups++,
    admin,
    clock,
    random: options.random ?? (() => 0.5),
    policy: { ...TEST_POLICY, ...options.policy },
    drain: { ...TEST_DRAIN, ...options.drain },
    ...(options.hotRestart ? { hotRestart: options.hotRestart } : {}),
    hooks: {
      envoyStarted: (p) => void events.push(`started ${p.pid}`),
      envoyExited: (_exit, expected) => void events.push(`exited ${expected ? 'expected' : 'unexpected'}`),
      terminating: (cause) => void events.push(`terminating ${cause}`),
    },
    metrics: {
      up: (v) => void events.push(`up ${v}`),
      restart: (reason) => void events.push(`restart ${reason}`),
    },
  });
  let outcome: Outcome | undefined;
  const run = () => {
    sup.run().then(
      (code) => (outcome = { code }),
      (err: unknown) => (outcome = { err }),
    );
  };
  if (options.run ?? true) run();
  const h: Harness = {
    clock,
    admin,
    spawner,
    sup,
    lines,
    text,
    events,
    cleanups: () => cleanups,
    run,
    outcome: () => outcome,
    transitions: () => lines.flatMap((l) => /^info\tsupervisor: (\w+ -> \w+)$/.exec(l)?.[1] ?? []),
    untilStopped: async () => {
      await clock.until('supervisor stopped', () => outcome !== undefined);
      return outcome as Outcome;
    },
  };
  return h;
}

/** Starts a supervisor and settles until its first Envoy runs. */
export async function running(options: HarnessOptions = {}): Promise<Harness> {
  const h = startSupervisor(options);
  await settle();
  if (h.sup.state !== 'running') throw new Error(`expected running, got ${h.sup.state}`);
  return h;
}

/** The error run() rejected with (fails the test if it resolved). */
export function failure(o: Outcome | undefined): { code?: string; exitCode?: number; message: string; userFacing?: boolean } {
  if (!o || !('err' in o)) throw new Error(`expected run() to reject, got ${JSON.stringify(o)}`);
  return o.err as never;
}
