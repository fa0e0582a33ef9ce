/**
 * Fakes for the supervisor's unit tests: a clock whose time moves only when a test advances
 * it, Envoy processes that exit when told (or when signalled), an admin API answering from
 * scripts, and a logger that keeps its lines. No real timers, no processes, no sockets.
 */
import type { Clock } from '../../src/supervisor/clock.js';
import type { SupervisorAdmin } from '../../src/supervisor/drain.js';
import type { StartRequest } from '../../src/supervisor/supervisor.js';
import type { Logger } from '../../src/log.js';
import { describeExit, type EnvoyExit, type EnvoyHandle } from '../../src/envoy/process.js';
import { parseStatsText, type ServerInfo } from '../../src/envoy/admin.js';
import { AgentError } from '../../src/errors.js';

/** Lets every promise chain that is ready run to completion (no timers involved). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): () => void {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      const i = this.timers.indexOf(timer);
      if (i >= 0) this.timers.splice(i, 1);
    };
  }

  /** Timers still scheduled, as delays from now. */
  pending(): number[] {
    return this.timers.map((t) => t.at - this.t).sort((a, b) => a - b);
  }

  private popNext(limit: number): Timer | undefined {
    let next: Timer | undefined;
    for (const t of this.timers) if (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t;
    if (!next || next.at > limit) return undefined;
    this.timers.splice(this.timers.indexOf(next), 1);
    return next;
  }

  /** Moves time forward by `ms`, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const next = this.popNext(end);
      if (!next) break;
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }

  /** Fires timers one by one until `cond()` holds; throws if nothing is left to fire or `limitMs` of fake time passes. */
  async until(what: string, cond: () => boolean, limitMs = 24 * 3600_000): Promise<void> {
    const start = this.t;
    for (;;) {
      await settle();
      if (cond()) return;
      const next = this.popNext(start + limitMs);
      if (!next) throw new Error(`fake clock: ${what} never happened (t=${this.t} ms, timers ${JSON.stringify(this.pending())})`);
      this.t = next.at;
      next.fn();
    }
  }
}

/** A fake Envoy: exits when the test says so, on SIGKILL, and on SIGTERM unless told to ignore it. */
export class FakeEnvoy implements EnvoyHandle {
  readonly exited: Promise<EnvoyExit>;
  readonly signals: NodeJS.Signals[] = [];
  hasExited = false;
  exitedAt: number | undefined;
  ignoreSigterm = false;
  private resolveExit: (exit: EnvoyExit) => void = () => undefined;

  constructor(
    readonly pid: number,
    readonly epoch: number,
    private readonly clock: FakeClock,
    readonly startedAt: number,
    private readonly tail: string[] = [],
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  stderrTail(): string[] {
    return [...this.tail];
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.hasExited) return;
    this.hasExited = true;
    this.exitedAt = this.clock.now();
    this.resolveExit({ code, signal, description: describeExit(code, signal), stderrTail: [...this.tail] });
  }

  terminate(graceMs: number): Promise<EnvoyExit> {
    if (this.hasExited) return this.exited;
    this.signals.push('SIGTERM');
    if (!this.ignoreSigterm) this.exit(0);
    else {
      const cancel = this.clock.setTimeout(() => void this.kill(), graceMs);
      void this.exited.then(cancel);
    }
    return this.exited;
  }

  kill(): Promise<EnvoyExit> {
    if (!this.hasExited) {
      this.signals.push('SIGKILL');
      this.exit(null, 'SIGKILL');
    }
    return this.exited;
  }
}

/** The supervisor's `start`: records each request, hands out FakeEnvoys, can fail or hold a start. */
export class FakeSpawner {
  readonly envoys: FakeEnvoy[] = [];
  readonly requests: Array<StartRequest & { at: number }> = [];
  failWith: NodeJS.ErrnoException['code'] | undefined;
  stderrTail: string[] = [];
  private held: Array<() => void> | undefined;
  private nextPid = 1000;

  constructor(private readonly clock: FakeClock) {}

  readonly start = async (request: StartRequest): Promise<FakeEnvoy> => {
    this.requests.push({ ...request, at: this.clock.now() });
    if (this.held) await new Promise<void>((resolve) => this.held?.push(resolve));
    if (this.failWith) {
      throw new AgentError('ENVOY_SPAWN_FAILED', `cannot start Envoy: binaryPath /nonexistent/envoy: no such file (${this.failWith})`);
    }
    const envoy = new FakeEnvoy(this.nextPid++, request.epoch, this.clock, this.clock.now(), [...this.stderrTail]);
    this.envoys.push(envoy);
    return envoy;
  };

  /** Starts wait until `release()`. */
  hold(): () => void {
    this.held = [];
    return () => {
      const waiting = this.held ?? [];
      this.held = undefined;
      for (const w of waiting) w();
    };
  }

  get last(): FakeEnvoy {
    const e = this.envoys.at(-1);
    if (!e) throw new Error('no Envoy started yet');
    return e;
  }

  alive(): FakeEnvoy[] {
    return this.envoys.filter((e) => !e.hasExited);
  }
}

/** Admin API answers: `stats` bodies are taken in order (the last one repeats); an Error is a failed call. */
export class FakeAdmin implements SupervisorAdmin {
  readonly calls: string[] = [];
  readonly callTimes: number[] = [];
  statsReplies: Array<string | Error> = [''];
  postFails: Error | undefined;
  serverInfoReply: () => ServerInfo | Error = () => new Error('connection refused');
  resets = 0;

  constructor(private readonly clock: FakeClock) {}

  private record(call: string): void {
    this.calls.push(call);
    this.callTimes.push(this.clock.now());
  }

  async post(path: string): Promise<void> {
    this.record(`POST ${path}`);
    if (this.postFails) throw this.postFails;
  }

  async stats(filter: string): Promise<{ body: string; stats: Map<string, string> }> {
    this.record(`GET /stats?usedonly&filter=${filter}`);
    const reply = (this.statsReplies.length > 1 ? this.statsReplies.shift() : this.statsReplies[0]) as string | Error;
    if (reply instanceof Error) throw reply;
    return { body: reply, stats: parseStatsText(reply) };
  }

  async serverInfo(): Promise<ServerInfo> {
    this.record('GET /server_info');
    const reply = this.serverInfoReply();
    if (reply instanceof Error) throw reply;
    return reply;
  }

  resetConnections(): void {
    this.resets++;
  }

  posts(): string[] {
    return this.calls.filter((c) => c.startsWith('POST '));
  }
}

/** A Logger keeping `level<TAB>message` lines. */
export function fakeLogger(): { log: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const at =
    (level: string) =>
    (...args: unknown[]) => {
      const msg = args.find((a) => typeof a === 'string') ?? '';
      lines.push(`${level}\t${msg as string}`);
    };
  const log = {
    level: 'debug',
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: () => log,
    bindings: () => ({}),
    isLevelEnabled: () => true,
  };
  return { log: log as unknown as Logger, lines, text: () => lines.join('\n') };
}
