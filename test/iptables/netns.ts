/**
 * Network-namespace fixtures for the iptables kernel tests. Everything happens inside
 * namespaces created here (`ip netns add`), joined by a veth pair whose ends are created
 * directly inside them; the host's own interfaces and iptables rules are never touched.
 * `NetnsPair.destroy()` deletes both namespaces (and with them the veth pair and rules).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsc } from 'node:fs';
import path from 'node:path';
import { HERE, REPO_ROOT } from './helpers.js';

/** PATH with the sbin directories, where the iptables and ip binaries live. */
export const TEST_PATH = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'].join(':');

export function onPath(bin: string): boolean {
  return TEST_PATH.split(':').some((dir) => {
    try {
      accessSync(path.join(dir, bin), fsc.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never throws. */
export function sh(cmd: string, args: readonly string[], env: Record<string, string> = { PATH: TEST_PATH }): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { env, maxBuffer: 16 * 1024 * 1024, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === -1 ? String(err.message) : '') });
    });
  });
}

/** Runs a command that must succeed; returns its stdout. */
export async function must(cmd: string, args: readonly string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Why the kernel tests cannot run here, or undefined when they can. Probes a throwaway namespace. */
export function kernelSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces and iptables need root)';
  for (const bin of ['ip', 'iptables', 'iptables-restore', 'iptables-save', 'ip6tables', 'ip6tables-restore', 'ip6tables-save']) {
    if (!onPath(bin)) return `${bin} is not installed (apt-get install iptables iproute2)`;
  }
  const probe = `pa-ipt-probe-${process.pid}-${randomBytes(3).toString('hex')}`;
  const opts = { env: { PATH: TEST_PATH }, stdio: 'pipe' as const };
  try {
    execFileSync('ip', ['netns', 'add', probe], opts);
  } catch (e) {
    return `cannot create a network namespace: ${(e as Error).message}`;
  }
  try {
    execFileSync('ip', ['netns', 'exec', probe, 'iptables', '-t', 'nat', '-S'], opts);
    execFileSync('ip', ['netns', 'exec', probe, 'iptables', '-t', 'mangle', '-S'], opts);
    execFileSync('ip', ['netns', 'exec', probe, 'ip6tables', '-t', 'nat', '-S'], opts);
  } catch (e) {
    return `iptables does not work in a network namespace here: ${(e as Error).message}`;
  } finally {
    try {
      execFileSync('ip', ['netns', 'del', probe], opts);
    } catch {
      // nothing else to do
    }
  }
  return undefined;
}

/** Two namespaces, "pod" and "peer", joined by veth `eth0`↔`eth0`, addresses inside only. */
export class NetnsPair {
  private constructor(
    readonly pod: string,
    readonly peer: string,
    readonly podAddr: string,
    readonly peerAddr: string,
    /** Dual-stack pairs only: the IPv6 addresses next to the IPv4 ones. */
    readonly podAddr6?: string,
    readonly peerAddr6?: string,
  ) {}

  /**
   * IPv4 pairs get 10.250.N.1/30 ↔ .2; IPv6 pairs only fd00:250:N::1/64 ↔ ::2 (no IPv4 at
   * all); dual pairs get both.
   */
  static async create(family: 4 | 6 | 'dual'): Promise<NetnsPair> {
    const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
    const n = randomBytes(1)[0] ?? 0;
    const v6 = (host: number) => `fd00:250:${n.toString(16)}::${host}`;
    const pair =
      family === 4
        ? new NetnsPair(`pa-ipt-${id}-pod`, `pa-ipt-${id}-peer`, `10.250.${n}.1`, `10.250.${n}.2`)
        : family === 6
          ? new NetnsPair(`pa-ipt-${id}-pod6`, `pa-ipt-${id}-peer6`, v6(1), v6(2))
          : new NetnsPair(`pa-ipt-${id}-podd`, `pa-ipt-${id}-peerd`, `10.251.${n}.1`, `10.251.${n}.2`, v6(1), v6(2));
    try {
      await must('ip', ['netns', 'add', pair.pod]);
      await must('ip', ['netns', 'add', pair.peer]);
      await must('ip', ['-n', pair.pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pair.peer]);
      const plen = family === 6 ? '/64' : '/30';
      const extra = family === 6 ? ['nodad'] : [];
      for (const [ns, addr] of [
        [pair.pod, pair.podAddr],
        [pair.peer, pair.peerAddr],
      ] as const) {
        await must('ip', ['-n', ns, 'addr', 'add', `${addr}${plen}`, 'dev', 'eth0', ...extra]);
        const addr6 = ns === pair.pod ? pair.podAddr6 : pair.peerAddr6;
        if (addr6) await must('ip', ['-n', ns, 'addr', 'add', `${addr6}/64`, 'dev', 'eth0', 'nodad']);
        await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      }
    } catch (e) {
      await pair.destroy();
      throw e;
    }
    return pair;
  }

  /** Deletes both namespaces; safe to call twice or after a partial create. */
  async destroy(): Promise<void> {
    for (const ns of [this.pod, this.peer]) await sh('ip', ['netns', 'del', ns]);
  }

  exec(ns: string, cmd: string, args: readonly string[], env: Record<string, string> = { PATH: TEST_PATH }): Promise<ExecResult> {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args], env);
  }

  /** Runs `pilot-agent <argv>` (the built CLI) inside the pod namespace with a clean env. */
  cli(argv: readonly string[], env: Record<string, string> = {}): Promise<ExecResult> {
    return this.exec(this.pod, process.execPath, [path.join(REPO_ROOT, 'bin', 'pilot-agent.js'), ...argv], { PATH: TEST_PATH, ...env });
  }

  /** The same as `cli`, as uid/gid `id` without supplementary groups (the istio-validation container). */
  cliAs(id: number, argv: readonly string[], env: Record<string, string> = {}): Promise<ExecResult> {
    const cli = [process.execPath, path.join(REPO_ROOT, 'bin', 'pilot-agent.js'), ...argv];
    return this.exec(this.pod, 'setpriv', [`--reuid=${id}`, `--regid=${id}`, '--clear-groups', ...cli], { PATH: TEST_PATH, ...env });
  }

  /** `iptables-save`/`ip6tables-save` in the pod namespace, normalised (see normalizeSave). */
  async save(bin: 'iptables-save' | 'ip6tables-save' = 'iptables-save'): Promise<string> {
    const r = await this.exec(this.pod, bin, []);
    if (r.code !== 0) throw new Error(`${bin} failed: ${r.stderr}`);
    return normalizeSave(r.stdout);
  }
}

const HELPER = path.join(HERE, 'netns-helper.mjs');

export interface Server {
  stop(): Promise<void>;
}

/** Starts listeners in `ns` answering `<tag>:<port>`; resolves once all listen. */
export function startServer(ns: string, tag: string, ports: readonly number[]): Promise<Server> {
  return startProcess(ns, process.execPath, [HELPER, 'serve', tag, ...ports.map(String)]);
}

/** Starts a long-running process in `ns` that prints "ready" when it is; stop() ends it and waits. */
export function startProcess(ns: string, cmd: string, args: readonly string[]): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { env: { PATH: TEST_PATH }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let errText = '';
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async () => {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    };
    child.stderr?.on('data', (d: Buffer) => (errText += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) resolve({ stop });
    });
    child.once('exit', (code) => reject(new Error(`${cmd} in ${ns} exited (${code}) before it was ready: ${errText}`)));
    child.once('error', reject);
  });
}

export interface ConnectResult {
  ok: boolean;
  reply?: string;
  code?: string;
}

/** One TCP connect from `ns` (optionally as uid/gid); reports which listener answered. */
export async function connect(ns: string, host: string, port: number, owner?: { uid: number; gid: number }): Promise<ConnectResult> {
  const args = [HELPER, 'connect', host, String(port), ...(owner ? [String(owner.uid), String(owner.gid)] : [])];
  const r = await sh('ip', ['netns', 'exec', ns, process.execPath, ...args]);
  if (r.code !== 0) throw new Error(`connect helper failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as ConnectResult;
}

/** iptables-save text without its dated comment lines and with zeroed counters. */
export function normalizeSave(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'))
    .join('\n');
}

export interface SaveDump {
  /** table → chain → policy ("-" for user chains). */
  chains: Map<string, Map<string, string>>;
  /** "table/chain" → rule lines (after `-A <chain> `), in order. */
  rules: Map<string, string[]>;
}

export function parseSave(text: string): SaveDump {
  const chains = new Map<string, Map<string, string>>();
  const rules = new Map<string, string[]>();
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      chains.set(table, chains.get(table) ?? new Map());
    } else if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(' ');
      chains.get(table)?.set(name ?? '', policy ?? '');
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const sp = rest.indexOf(' ');
      const key = `${table}/${rest.slice(0, sp)}`;
      rules.set(key, [...(rules.get(key) ?? []), rest.slice(sp + 1)]);
    }
  }
  return { chains, rules };
}

/** Per "table/chain": the rules in `after` that are not in `before` (first matches removed), non-empty only. */
export function addedRules(before: SaveDump, after: SaveDump): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, list] of after.rules) {
    const remaining = [...list];
    for (const r of before.rules.get(key) ?? []) {
      const i = remaining.indexOf(r);
      if (i >= 0) remaining.splice(i, 1);
    }
    if (remaining.length > 0) out[key] = remaining;
  }
  return out;
}
