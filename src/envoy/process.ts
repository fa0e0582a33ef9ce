/**
 * One Envoy process, run once (STYLE 1). `EnvoyProcess.spawn` resolves once the OS has
 * started it (or rejects with ENVOY_SPAWN_FAILED naming binaryPath: a configuration error,
 * never retried). `exited` settles exactly once with the classified exit. Restarting is
 * the supervisor's business, not this class's.
 *
 * - Envoy runs in its own process group/session (`detached`), so only the agent decides
 *   which signals it gets (a Ctrl-C to the agent's group does not reach it).
 * - stdout is inherited (access logs can be heavy); stderr is piped and forwarded line by
 *   line to `stderrSink`; when the sink applies backpressure lines are dropped and counted,
 *   never buffered without bound, so Envoy is never blocked by the agent.
 * - The last `tailLines` stderr lines are kept for crash reports.
 * - Node reaps the child (no zombies); `terminate()`/`kill()` are idempotent and are no-ops
 *   once it has exited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { AgentError } from '../errors.js';

export interface EnvoyExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Human-readable: `exited with code 1`, `killed by SIGSEGV`, `killed by SIGKILL (possibly OOM-killed)`. */
  description: string;
  stderrTail: string[];
}

export interface EnvoySpawnOptions {
  binaryPath: string;
  args: string[];
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Where Envoy's stderr lines go (default: the agent's stderr). */
  stderrSink?: Writable;
  tailLines?: number;
  /** Called for each stderr line dropped because the sink was full. */
  onDroppedLine?: () => void;
}

/**
 * One Envoy run as the supervisor sees it: `EnvoyProcess`, or a fake in unit tests. `exited`
 * settles exactly once; `terminate` (SIGTERM, SIGKILL after `graceMs`) and `kill` (SIGKILL)
 * resolve with that exit and are no-ops once it has happened.
 */
export interface EnvoyHandle {
  readonly pid: number;
  readonly exited: Promise<EnvoyExit>;
  readonly hasExited: boolean;
  stderrTail(): string[];
  terminate(graceMs: number): Promise<EnvoyExit>;
  kill(): Promise<EnvoyExit>;
}

export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === 'SIGKILL') return 'killed by SIGKILL (possibly OOM-killed)';
  if (signal) return `killed by ${signal}`;
  return `exited with code ${code}`;
}

export class EnvoyProcess implements EnvoyHandle {
  readonly pid: number;
  readonly exited: Promise<EnvoyExit>;
  private readonly child: ChildProcess;
  private readonly tail: string[] = [];
  private exitInfo: EnvoyExit | undefined;

  private constructor(child: ChildProcess, exited: Promise<EnvoyExit>, tail: string[]) {
    this.child = child;
    this.pid = child.pid as number;
    this.exited = exited;
    this.tail = tail;
    void exited.then((e) => (this.exitInfo = e));
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** The most recent stderr lines (for crash reports). */
  stderrTail(): string[] {
    return [...this.tail];
  }

  static spawn(options: EnvoySpawnOptions): Promise<EnvoyProcess> {
    const tailMax = options.tailLines ?? 50;
    const sink = options.stderrSink ?? process.stderr;
    const tail: string[] = [];
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(options.binaryPath, options.args, {
          cwd: options.cwd,
          env: options.env as NodeJS.ProcessEnv,
          stdio: ['ignore', 'inherit', 'pipe'],
          detached: true,
        });
      } catch (err) {
        reject(spawnError(options.binaryPath, err));
        return;
      }
      let pending = '';
      let sinkBlocked = false;
      const emit = (line: string) => {
        tail.push(line);
        if (tail.length > tailMax) tail.shift();
        if (sinkBlocked) {
          options.onDroppedLine?.();
          return;
        }
        if (!sink.write(`${line}\n`)) {
          sinkBlocked = true;
          sink.once('drain', () => (sinkBlocked = false));
        }
      };
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        pending += chunk;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          emit(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
        }
        // A pathological line without newline is cut at 64 KiB rather than held forever.
        if (pending.length > 65536) {
          emit(pending);
          pending = '';
        }
      });
      const stderrDone = new Promise<void>((r) => {
        if (!child.stderr) return r();
        child.stderr.once('close', () => r());
      });
      let spawned = false;
      const exited = new Promise<EnvoyExit>((resolveExit) => {
        child.once('exit', (code, signal) => {
          // Wait for the last stderr bytes so the tail is complete (bounded: the pipe closes with the process).
          void Promise.race([stderrDone, new Promise((r) => setTimeout(r, 500).unref())]).then(() => {
            if (pending !== '') emit(pending);
            pending = '';
            resolveExit({ code, signal, description: describeExit(code, signal), stderrTail: [...tail] });
          });
        });
      });
      child.once('error', (err) => {
        if (!spawned) reject(spawnError(options.binaryPath, err));
      });
      child.once('spawn', () => {
        spawned = true;
        resolve(new EnvoyProcess(child, exited, tail));
      });
    });
  }

  /** Sends a signal if still running. */
  signal(sig: NodeJS.Signals): void {
    if (this.exitInfo !== undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      this.child.kill(sig);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit. */
  async terminate(graceMs: number): Promise<EnvoyExit> {
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL now; resolves with the exit. */
  async kill(): Promise<EnvoyExit> {
    this.signal('SIGKILL');
    return this.exited;
  }
}

function spawnError(binaryPath: string, err: unknown): AgentError {
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
  const why =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES'
        ? 'permission denied (not executable?)'
        : code === 'ENOEXEC'
          ? 'not an executable format'
          : (err as Error).message;
  return new AgentError('ENVOY_SPAWN_FAILED', `cannot start Envoy: binaryPath ${binaryPath}: ${why} (${code})`, { cause: err });
}
