/**
 * The restart policy (SPEC §5.1): exponential backoff with jitter between restarts, reset
 * only on proof of health, and a sliding-window crash budget whose exhaustion ends the agent
 * with ENVOY_CRASH_LOOP (exit 1). Time comes from a `Clock`, jitter from `random`.
 */
import type { EnvoyExit } from '../envoy/process.js';
import { AgentError } from '../errors.js';
import { Backoff, SlidingWindowBudget } from '../lifecycle/backoff.js';
import { formatGoDuration } from '../go/duration.js';
import type { Clock } from './clock.js';

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

/** `istio_agent_envoy_restarts_total{reason}` of an unexpected exit: SIGKILL ⇒ likely OOM. */
export function restartReason(exit: Pick<EnvoyExit, 'signal'>): 'exited' | 'signaled' | 'killed' {
  return exit.signal === 'SIGKILL' ? 'killed' : exit.signal ? 'signaled' : 'exited';
}

export class RestartPolicy {
  private readonly backoff: Backoff;
  private readonly budget: SlidingWindowBudget;

  constructor(
    readonly settings: SupervisorPolicy,
    clock: Clock,
    random?: () => number,
  ) {
    this.backoff = new Backoff({
      initialMs: settings.initialBackoffMs,
      maxMs: settings.maxBackoffMs,
      multiplier: settings.backoffMultiplier,
      jitter: settings.backoffJitter,
      ...(random ? { random } : {}),
    });
    this.budget = new SlidingWindowBudget(settings.crashBudget.maxExits, settings.crashBudget.windowMs, () => clock.now());
  }

  /**
   * Counts an unexpected exit and returns the delay before the next start; throws
   * ENVOY_CRASH_LOOP once `crashBudget.maxExits` exits fell within `crashBudget.windowMs`.
   */
  onCrash(exit: EnvoyExit): number {
    if (!this.budget.record()) {
      const { maxExits, windowMs } = this.settings.crashBudget;
      throw new AgentError(
        'ENVOY_CRASH_LOOP',
        `Envoy exited ${maxExits} times within ${formatGoDuration(windowMs)} (last: ${exit.description}); giving up so the kubelet's CrashLoopBackOff takes over`,
        { exitCode: 1 },
      );
    }
    return this.backoff.next();
  }

  /** Unexpected exits inside the crash budget's current window. */
  exitsInWindow(): number {
    return this.budget.count();
  }

  /** Proof of health: the next delay is the initial one again. */
  reset(): void {
    this.backoff.reset();
  }
}
