/**
 * The supervisor's state table (src/supervisor/states.ts): every pair of states is either a
 * legal transition or refused, and every legal transition is driven here through a real
 * EnvoySupervisor on fakes and seen in its `supervisor: A -> B` trace.
 */
import { describe, expect, test } from '@jest/globals';
import { StateMachine, SUPERVISOR_STATES, TRANSITIONS, type SupervisorState } from '../../src/supervisor/states.js';
import { AgentError } from '../../src/errors.js';
import { settle } from './fakes.js';
import { failure, running, startSupervisor, type Harness } from './harness.js';

const EDGES = SUPERVISOR_STATES.flatMap((from) => TRANSITIONS[from].map((to) => `${from} -> ${to}`));
const PAIRS = SUPERVISOR_STATES.flatMap((from) => SUPERVISOR_STATES.map((to) => [from, to] as const));

describe('StateMachine', () => {
  test.each(PAIRS)('%s -> %s is taken iff it is in the table', (from, to) => {
    const traced: string[] = [];
    const fsm = new StateMachine((a, b) => traced.push(`${a} -> ${b}`), from);
    if (TRANSITIONS[from].includes(to)) {
      fsm.transition([from], to);
      expect(fsm.state).toBe(to);
      expect(traced).toEqual([`${from} -> ${to}`]);
    } else {
      expect(() => fsm.transition([from], to)).toThrow(AgentError);
      expect(fsm.state).toBe(from);
      expect(traced).toEqual([]);
    }
  });

  test('a refusal is a bug (not user-facing) naming both states', () => {
    const fsm = new StateMachine(() => undefined, 'stopped');
    let err: AgentError | undefined;
    try {
      fsm.transition(['stopped'], 'running');
    } catch (e) {
      err = e as AgentError;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect(err?.userFacing).toBe(false);
    expect(err?.message).toContain('stopped -> running');
  });

  test('refuses when the current state is not among the expected ones, even if the edge exists', () => {
    const fsm = new StateMachine(() => undefined, 'backoff');
    expect(() => fsm.transition(['idle'], 'starting')).toThrow(/backoff -> starting attempted, expected to be in idle/);
    expect(fsm.state).toBe('backoff');
  });

  test('refuses a declared origin that is not in the table, whatever the current state', () => {
    const fsm = new StateMachine(() => undefined, 'running');
    expect(() => fsm.transition(['running', 'stopped'], 'backoff')).toThrow(/stopped -> backoff is not in the transition table/);
    expect(fsm.state).toBe('running');
  });

  test('stopped is terminal', () => {
    expect(TRANSITIONS.stopped).toEqual([]);
  });
});

async function inHandover(): Promise<Harness> {
  const h = await running({ hotRestart: { parentShutdownMs: 2000 } });
  h.sup.markReady();
  expect(h.sup.restartForNewBootstrap('labels changed')).toBe(true);
  await settle();
  expect(h.sup.state).toBe('handover');
  return h;
}

/** One scenario per legal transition; each returns the harness whose trace must contain it. */
const SCENARIOS: Record<string, () => Promise<Harness>> = {
  'idle -> starting': () => running(),
  'idle -> terminating': async () => {
    const h = startSupervisor({ run: false });
    void h.sup.terminate('SIGTERM');
    h.run();
    expect(await h.untilStopped()).toEqual({ code: 0 });
    expect(h.spawner.requests).toEqual([]);
    return h;
  },
  'starting -> running': () => running(),
  'starting -> terminating': async () => {
    const h = startSupervisor({ run: false });
    const release = h.spawner.hold();
    h.run();
    await settle();
    expect(h.sup.state).toBe('starting');
    void h.sup.terminate('SIGTERM');
    release();
    expect(await h.untilStopped()).toEqual({ code: 0 });
    expect(h.spawner.last.signals).toEqual(['SIGTERM']);
    return h;
  },
  'starting -> stopped': async () => {
    const h = startSupervisor({ run: false });
    h.spawner.failWith = 'ENOENT';
    h.run();
    expect(failure(await h.untilStopped()).code).toBe('ENVOY_SPAWN_FAILED');
    return h;
  },
  'running -> handover': inHandover,
  'running -> backoff': async () => {
    const h = await running();
    h.spawner.last.exit(1);
    await settle();
    expect(h.sup.state).toBe('backoff');
    return h;
  },
  'running -> terminating': async () => {
    const h = await running();
    void h.sup.terminate('SIGTERM');
    await settle();
    expect(h.sup.state).toBe('terminating');
    return h;
  },
  'running -> stopped': async () => {
    const h = await running({ policy: { crashBudget: { maxExits: 1, windowMs: 60_000 } } });
    h.spawner.last.exit(1);
    expect(failure(await h.untilStopped()).code).toBe('ENVOY_CRASH_LOOP');
    return h;
  },
  'handover -> running': async () => {
    const h = await inHandover();
    h.spawner.envoys[0]?.exit(0);
    await settle();
    expect(h.sup.state).toBe('running');
    return h;
  },
  'handover -> backoff': async () => {
    const h = await inHandover();
    h.spawner.last.exit(null, 'SIGSEGV');
    await settle();
    expect(h.sup.state).toBe('backoff');
    return h;
  },
  'handover -> terminating': async () => {
    const h = await inHandover();
    void h.sup.quit();
    expect(await h.untilStopped()).toEqual({ code: 0 });
    return h;
  },
  'handover -> stopped': async () => {
    const h = await running({ hotRestart: { parentShutdownMs: 2000 } });
    h.sup.markReady();
    h.spawner.failWith = 'EACCES';
    h.sup.restartForNewBootstrap('labels changed');
    expect(failure(await h.untilStopped()).code).toBe('ENVOY_SPAWN_FAILED');
    expect(h.spawner.alive()).toEqual([]);
    return h;
  },
  'backoff -> starting': async () => {
    const h = await running();
    h.spawner.last.exit(1);
    await h.clock.advance(1000);
    expect(h.sup.state).toBe('running');
    return h;
  },
  'backoff -> terminating': async () => {
    const h = await running();
    h.spawner.last.exit(1);
    await settle();
    void h.sup.terminate('SIGTERM');
    expect(await h.untilStopped()).toEqual({ code: 0 });
    expect(h.spawner.envoys).toHaveLength(1);
    return h;
  },
  'terminating -> stopped': async () => {
    const h = await running();
    void h.sup.quit();
    expect(await h.untilStopped()).toEqual({ code: 0 });
    return h;
  },
};

describe('EnvoySupervisor takes every transition of the table', () => {
  test('one scenario per legal transition, no more', () => {
    expect(Object.keys(SCENARIOS).sort()).toEqual([...EDGES].sort());
  });

  test.each(EDGES)('%s', async (edge) => {
    const h = await (SCENARIOS[edge] as () => Promise<Harness>)();
    expect(h.transitions()).toContain(edge);
    const [from, to] = edge.split(' -> ') as [SupervisorState, SupervisorState];
    expect(TRANSITIONS[from]).toContain(to);
    // Whatever the path, no Envoy outlives a stopped supervisor.
    if (h.sup.state === 'stopped') expect(h.spawner.alive()).toEqual([]);
  });
});
