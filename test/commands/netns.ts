/**
 * A private network namespace with only loopback up, so the agent and the Envoy double can
 * run on Istio's default ports (15000, 15020, 15021, 15090) without touching the host's.
 * Needs root (`ip netns add`); `netnsSkipReason()` says why not otherwise.
 * `destroy()` stops what `spawn` started in it and deletes the namespace.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';

const PATH = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'].join(':');

function ip(...args: string[]): string {
  return execFileSync('ip', args, { env: { PATH }, stdio: 'pipe' }).toString();
}

export function netnsSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (a private network namespace needs root)';
  try {
    execFileSync('ip', ['-V'], { env: { PATH }, stdio: 'pipe' });
  } catch {
    return 'ip (iproute2) is not installed';
  }
  return undefined;
}

export class Netns {
  readonly name = `pa-ship-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly children = new Set<ChildProcess>();

  constructor() {
    ip('netns', 'add', this.name);
    try {
      ip('-n', this.name, 'link', 'set', 'lo', 'up');
    } catch (err) {
      ip('netns', 'del', this.name);
      throw err;
    }
  }

  /** Spawns `cmd args` inside the namespace (`ip netns exec` execs it: the pid is the command's). */
  spawn(cmd: string, args: readonly string[], o: { cwd: string; env: Record<string, string> }): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      cwd: o.cwd,
      env: { ...o.env, PATH: o.env.PATH ?? PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Runs a command to completion inside the namespace. */
  run(cmd: string, args: readonly string[], o: { cwd: string; env: Record<string, string>; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      const child = this.spawn(cmd, args, o);
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 20_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr, ms: performance.now() - t0 });
      });
    });
  }

  /** Kills what is left of the spawned processes (and pids listed by the caller), then deletes the namespace. */
  async destroy(extraPids: readonly number[] = []): Promise<void> {
    const waits = [...this.children].map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()))));
    for (const c of this.children) c.kill('SIGKILL');
    await Promise.all(waits);
    for (const pid of extraPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      ip('netns', 'del', this.name);
    } catch {
      // nothing more to do
    }
  }
}

/** Pids of the Envoy doubles an agent started (from the double's record file). */
export function recordedPids(recordFile: string): number[] {
  if (!fs.existsSync(recordFile)) return [];
  return fs
    .readFileSync(recordFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { pid?: number; argv?: unknown })
    .filter((r) => Array.isArray(r.argv) && typeof r.pid === 'number')
    .map((r) => r.pid as number);
}
