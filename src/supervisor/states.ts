/**
 * The supervisor's states and the only transitions between them (SPEC §5.1–§5.3):
 *
 *   idle -> starting -> running -> backoff -> starting ...      (unexpected exits)
 *   running -> handover -> running                              (hot restart, opt-in)
 *   idle|starting|running|handover|backoff -> terminating -> stopped   (terminate / quit)
 *   starting|running|handover -> stopped                        (fatal: spawn failure, crash loop)
 *
 * `stopped` is terminal. A transition not in `TRANSITIONS` is a bug: `transition` throws.
 */
import { AgentError } from '../errors.js';

export type SupervisorState = 'idle' | 'starting' | 'running' | 'handover' | 'backoff' | 'terminating' | 'stopped';

export const SUPERVISOR_STATES: readonly SupervisorState[] = ['idle', 'starting', 'running', 'handover', 'backoff', 'terminating', 'stopped'];

export const TRANSITIONS: Readonly<Record<SupervisorState, readonly SupervisorState[]>> = {
  idle: ['starting', 'terminating'],
  starting: ['running', 'terminating', 'stopped'],
  running: ['handover', 'backoff', 'terminating', 'stopped'],
  handover: ['running', 'backoff', 'terminating', 'stopped'],
  backoff: ['starting', 'terminating'],
  terminating: ['stopped'],
  stopped: [],
};

export function isLegalTransition(from: SupervisorState, to: SupervisorState): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * Holds the current state. `transition(from, to)` moves to `to` only if the current state is
 * one of `from` and every `from -> to` is in the table; anything else throws an AgentError
 * (not user-facing: a bug) and leaves the state unchanged. Each move is reported to `trace`.
 */
export class StateMachine {
  private current: SupervisorState;

  constructor(
    private readonly trace: (from: SupervisorState, to: SupervisorState) => void,
    initial: SupervisorState = 'idle',
  ) {
    this.current = initial;
  }

  get state(): SupervisorState {
    return this.current;
  }

  is(...states: SupervisorState[]): boolean {
    return states.includes(this.current);
  }

  transition(from: readonly SupervisorState[], to: SupervisorState): void {
    const undeclared = from.filter((f) => !isLegalTransition(f, to));
    if (undeclared.length > 0) {
      throw illegal(`${undeclared.join('|')} -> ${to} is not in the transition table`);
    }
    const was = this.current;
    if (!from.includes(was)) throw illegal(`${was} -> ${to} attempted, expected to be in ${from.join('|')}`);
    this.current = to;
    this.trace(was, to);
  }
}

function illegal(what: string): AgentError {
  return new AgentError('SUPERVISOR_ILLEGAL_TRANSITION', `supervisor: illegal transition: ${what}`, { userFacing: false });
}
