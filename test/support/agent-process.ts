/**
 * Runs the real CLI (`bin/pilot-agent.js proxy …`) as a child process in a temp working
 * directory, with the Envoy double as `binaryPath` and free loopback ports, the way a pod
 * would run it. Collects output, and offers waits with deadlines (no sleeps).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launcherArgv } from './launcher.js';
import { freePorts } from './ports.js';
import { processesWithCwd } from './proc.js';
import { SEED_ANNOTATIONS, SEED_ARGS, SEED_ENV, SEED_LABELS } from './seed.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(REPO_ROOT, 'bin', 'pilot-agent.js');
export const ENVOY_DOUBLE = path.join(REPO_ROOT, 'test', 'support', 'bin', 'envoy');

export interface AgentPorts {
  admin: number;
  status: number;
  envoyStatus: number;
  prometheus: number;
}

export interface StartAgentOptions {
  /** argv after `proxy` (default: the seed's args plus --standalone unless `controlPlane`). */
  args?: string[];
  /** Extra env (merged over the seed's env and the harness's). */
  env?: Record<string, string>;
  /** ProxyConfig fields merged into PROXY_CONFIG (JSON). */
  proxyConfig?: Record<string, unknown>;
  standalone?: boolean;
  /** Files to create under the temp cwd before start (relative path → content). */
  files?: Record<string, string>;
  binaryPath?: string;
  cwd?: string;
  /** The node binary that runs the launcher (default: this process's, `process.execPath`). */
  node?: string;
}

/**
 * The seed pod against the test control plane and the test CA: xDS to `discoveryAddress`
 * (plaintext), a third-party JWT `token`, the CA at `localhost:<caPort>` (`localhost` maps to the
 * SAN istiod.istio-system.svc, which the test CA's server certificate has), its root certificate,
 * and the seed's podinfo. `extra` adds args and env.
 */
export function meshAgentOptions(o: {
  discoveryAddress: string;
  caPort: number;
  rootCertPem: string;
  token: string;
  args?: string[];
  env?: Record<string, string>;
}): StartAgentOptions {
  return {
    standalone: false,
    args: [...SEED_ARGS, ...(o.args ?? [])],
    env: { JWT_POLICY: 'third-party-jwt', CA_ADDR: `localhost:${o.caPort}`, ...(o.env ?? {}) },
    proxyConfig: { discoveryAddress: o.discoveryAddress, controlPlaneAuthPolicy: 'NONE', terminationDrainDuration: '0.1s' },
    files: {
      'etc/istio/pod/labels': SEED_LABELS,
      'etc/istio/pod/annotations': SEED_ANNOTATIONS,
      'var/run/secrets/tokens/istio-token': `${o.token}\n`,
      'var/run/secrets/istio/root-cert.pem': o.rootCertPem,
    },
  };
}

export class AgentProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private listeners = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    readonly cwd: string,
    readonly ports: AgentPorts,
    readonly recordFile: string,
    readonly stateFile: string,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      this.notify();
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      this.notify();
    });
    // Resolved once the agent's output has been read to the end ('close'), so a test that checks
    // stderr after `waitExit()` sees every line. 'exit' can come first, with output still in the
    // pipe; a child that inherited the pipe and outlived the agent would hold 'close' back, so
    // after 'exit' it waits at most 2 s for it.
    this.exited = new Promise((resolve) => {
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let grace: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(grace);
        if (exit) resolve(exit);
      };
      child.once('exit', (code, signal) => {
        exit = { code, signal };
        grace = setTimeout(done, 2000);
      });
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        exit ??= { code, signal };
        done();
      });
    });
    void this.exited.then(() => this.notify());
  }

  get pid(): number {
    return this.child.pid as number;
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  /** Resolves when `predicate` holds (checked on output and on a 25 ms tick), or rejects at the deadline. */
  async waitFor<T>(what: string, predicate: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
    const first = predicate();
    if (first) return first;
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        let v: T | undefined | false;
        try {
          v = predicate();
        } catch {
          v = undefined;
        }
        if (v) {
          cleanup();
          resolve(v);
        }
      };
      const tick = setInterval(check, 25);
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what}\n--- agent stderr ---\n${this.stderr.slice(-4000)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearInterval(tick);
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
    });
  }

  waitForLog(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return this.waitFor(`log ${re}`, () => this.stderr.match(re) ?? undefined, timeoutMs);
  }

  /** Entries of the double's record file (one per Envoy start/exit). */
  records(): Array<Record<string, unknown>> {
    if (!fs.existsSync(this.recordFile)) return [];
    return fs
      .readFileSync(this.recordFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  starts(): Array<{ pid: number; argv: string[]; env: Record<string, string>; cwd: string }> {
    return this.records().filter((r) => Array.isArray(r.argv)) as never;
  }

  async waitExit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`agent did not exit within ${timeoutMs}ms\n${this.stderr.slice(-4000)}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
  }

  /** Kills the agent and anything left of the Envoy doubles it started; removes the temp dir. */
  async dispose(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
    // Whatever the agent started (the double, or a fake Envoy that writes no record) runs in
    // the temp cwd; an orphan would keep our stdout pipe, and so Jest, alive.
    const pids = new Set([...this.starts().map((r) => r.pid), ...processesWithCwd(this.cwd)]);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
    fs.rmSync(this.cwd, { recursive: true, force: true });
  }
}

export { processAlive } from './proc.js';

export async function startAgent(options: StartAgentOptions = {}): Promise<AgentProcess> {
  const cwd = options.cwd ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-test-'));
  for (const [rel, content] of Object.entries(options.files ?? {})) {
    const p = path.join(cwd, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  const [admin, status, envoyStatus, prometheus] = (await freePorts(4)) as [number, number, number, number];
  const ports = { admin, status, envoyStatus, prometheus };
  const recordFile = path.join(cwd, 'double-record.jsonl');
  const stateFile = path.join(cwd, 'double-state.json');
  const proxyConfig = {
    binaryPath: options.binaryPath ?? ENVOY_DOUBLE,
    // Tests never reach outside loopback: no DNS lookup of istiod.istio-system.svc either.
    discoveryAddress: '127.0.0.1:1',
    proxyAdminPort: admin,
    statusPort: status,
    proxyMetadata: { DNS_AGENT: '' },
    ...(options.proxyConfig ?? {}),
  };
  const standalone = options.standalone ?? true;
  const args = ['proxy', ...(options.args ?? [...SEED_ARGS, ...(standalone ? ['--standalone'] : [])])];
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...SEED_ENV,
    INSTANCE_IP: '127.0.0.1',
    CA_ADDR: '127.0.0.1:1',
    PROXY_CONFIG: JSON.stringify(proxyConfig),
    ENVOY_STATUS_PORT: String(envoyStatus),
    ENVOY_PROMETHEUS_PORT: String(prometheus),
    ENVOY_DOUBLE_RECORD: recordFile,
    ENVOY_DOUBLE_STATE: stateFile,
    ...(options.env ?? {}),
  };
  // As the image runs it: node with the launcher's `#!` flags.
  const child = spawn(options.node ?? process.execPath, launcherArgv(args), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new AgentProcess(child, cwd, ports, recordFile, stateFile);
}

const tracked: AgentProcess[] = [];

/** `startAgent`, remembering the agent so `disposeTrackedAgents` (an afterEach) cleans it up. */
export async function startTrackedAgent(options: StartAgentOptions = {}): Promise<AgentProcess> {
  const a = await startAgent(options);
  tracked.push(a);
  return a;
}

export async function disposeTrackedAgents(): Promise<void> {
  await Promise.all(tracked.splice(0).map((a) => a.dispose()));
}
