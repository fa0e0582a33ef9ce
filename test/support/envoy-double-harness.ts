/**
 * Test helpers for the Envoy double: start it as a real process in a temp dir, read its state
 * file (bound ports, lifecycle), talk to its admin API with raw (unencoded) paths, flip faults
 * through its control file, and clean up. Every wait polls a condition against a deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
}

export const REPO = findRepoRoot();
export const ENVOY_DOUBLE_BIN = path.join(REPO, 'test', 'support', 'bin', 'envoy');
export const GOLDEN_BOOTSTRAP = path.join(REPO, 'test', 'fixtures', 'bootstrap', 'istio-default_golden.json');

export interface DoubleState {
  pid: number;
  state: string;
  workersStarted: boolean;
  healthCheckFailed: boolean;
  draining: string | null;
  admin: { address: string; port: number };
  listeners: Record<string, { address: string; port: number; stopped: boolean; direction: string }>;
  control: Record<string, unknown> | null;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Bootstrap object written to `<dir>/envoy.json` and passed with `-c` (unless `args` has its own). */
  bootstrap?: Record<string, unknown>;
  /** Extra argv after `-c <file>` (or the whole argv with `rawArgs`). */
  args?: string[];
  rawArgs?: string[];
  env?: Record<string, string>;
  /** Control file content at start. */
  control?: Record<string, unknown>;
  /** Files to create in the temp dir (relative path → content). */
  files?: Record<string, string>;
  /** Use this (existing) directory as the double's cwd instead of a fresh temp dir; dispose() removes it. */
  dir?: string;
}

import { waitUntil } from './wait.js';

export { waitUntil };

export class DoubleProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;

  constructor(
    readonly child: ChildProcess,
    readonly dir: string,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
  }

  get pid(): number {
    return this.child.pid as number;
  }
  get stateFile(): string {
    return path.join(this.dir, 'state.json');
  }
  get recordFile(): string {
    return path.join(this.dir, 'record.jsonl');
  }
  get controlFile(): string {
    return path.join(this.dir, 'control.json');
  }

  readState(): DoubleState | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.stateFile, 'utf8')) as DoubleState;
    } catch {
      return undefined;
    }
  }

  records(): Array<Record<string, unknown>> {
    if (!fs.existsSync(this.recordFile)) return [];
    return fs
      .readFileSync(this.recordFile, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async waitForState(what: string, pred: (s: DoubleState) => boolean, timeoutMs = 5000): Promise<DoubleState> {
    return waitUntil(
      `${what}\n--- double stderr ---\n${this.stderr.slice(-3000)}`,
      () => {
        if (this.exit) throw new Error(`the double exited (${JSON.stringify(this.exit)}): ${this.stderr.slice(-2000)}`);
        const s = this.readState();
        return s && pred(s) ? s : undefined;
      },
      timeoutMs,
    );
  }

  /** Admin and listeners bound (any lifecycle state). */
  bound(timeoutMs = 5000): Promise<DoubleState> {
    return this.waitForState('the double to bind', (s) => s.admin !== null, timeoutMs);
  }

  /** LIVE with workers started. */
  live(timeoutMs = 5000): Promise<DoubleState> {
    return this.waitForState('the double to be LIVE', (s) => s.state === 'LIVE' && s.workersStarted, timeoutMs);
  }

  listenerPort(name: string): number {
    const l = this.readState()?.listeners[name];
    if (!l) throw new Error(`no listener ${name} in the state file`);
    return l.port;
  }

  /** An admin request with `rawPath` sent byte for byte (no URL normalisation). */
  async admin(method: string, rawPath: string, timeoutMs = 3000): Promise<HttpResult> {
    const s = this.readState() ?? (await this.bound());
    return request({ port: s.admin.port, method, path: rawPath, timeoutMs });
  }

  /** Writes the control file atomically (the double notices within ~50 ms). */
  setControl(control: Record<string, unknown>): void {
    const tmp = `${this.controlFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(control));
    fs.renameSync(tmp, this.controlFile);
  }

  /** Waits until the double applied `control` (it echoes it in the state file). */
  async control(control: Record<string, unknown>): Promise<DoubleState> {
    this.setControl(control);
    const want = JSON.stringify(control);
    return this.waitForState(`control ${want} applied`, (s) => JSON.stringify(s.control) === want);
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(sig);
  }

  async waitExit(timeoutMs = 5000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the double did not exit within ${timeoutMs}ms\n${this.stderr.slice(-3000)}`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async dispose(): Promise<void> {
    if (!this.exit) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'envoy-double-'));
}

/** Starts the double in a fresh temp dir with state, record and control files there. */
export function startDouble(o: StartOptions = {}): DoubleProcess {
  const dir = o.dir ?? tempDir();
  for (const [rel, content] of Object.entries(o.files ?? {})) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  }
  let args = o.rawArgs;
  if (!args) {
    const bootstrapFile = path.join(dir, 'envoy.json');
    fs.writeFileSync(bootstrapFile, JSON.stringify(o.bootstrap ?? minimalBootstrap()));
    args = ['-c', bootstrapFile, ...(o.args ?? [])];
  }
  if (o.control) fs.writeFileSync(path.join(dir, 'control.json'), JSON.stringify(o.control));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ENVOY_DOUBLE_STATE: path.join(dir, 'state.json'),
    ENVOY_DOUBLE_RECORD: path.join(dir, 'record.jsonl'),
    ENVOY_DOUBLE_CONTROL: path.join(dir, 'control.json'),
    ...(o.env ?? {}),
  };
  const child = spawn(ENVOY_DOUBLE_BIN, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new DoubleProcess(child, dir);
}

/** The smallest bootstrap the double accepts: admin on an ephemeral loopback port. */
export function minimalBootstrap(): Record<string, unknown> {
  return { admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Istio's golden bootstrap (test/fixtures) made runnable: both static listeners on 127.0.0.1
 * port 0, admin on `adminPort`, `prometheus_stats` → admin, `agent` → `agentPort`.
 * `standalone` drops `dynamic_resources` (no ADS: LIVE at once).
 */
export function goldenBootstrap(o: { adminPort: number; agentPort: number; standalone?: boolean }): Json {
  const b = JSON.parse(fs.readFileSync(GOLDEN_BOOTSTRAP, 'utf8')) as Json;
  b.admin.address.socket_address.port_value = o.adminPort;
  for (const l of b.static_resources.listeners as Json[]) {
    l.address.socket_address.address = '127.0.0.1';
    l.address.socket_address.port_value = 0;
  }
  for (const c of b.static_resources.clusters as Json[]) {
    const sa = c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address as Json | undefined;
    if (c.name === 'prometheus_stats' && sa) sa.port_value = o.adminPort;
    if (c.name === 'agent' && sa) sa.port_value = o.agentPort;
  }
  if (o.standalone) delete b.dynamic_resources;
  return b;
}

/** A static listener with an HCM routing `prefix` to `cluster` (for custom bootstraps). */
export function httpListener(name: string, o: { direction?: string; routes?: Array<{ prefix: string; cluster: string }>; port?: number }): Json {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: o.port ?? 0 } },
    ...(o.direction ? { traffic_direction: o.direction } : {}),
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              route_config: { virtual_hosts: [{ name: 'backend', domains: ['*'], routes: (o.routes ?? []).map((r) => ({ match: { prefix: r.prefix }, route: { cluster: r.cluster } })) }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

/** A STATIC cluster with one endpoint (TCP port or pipe path). */
export function staticCluster(name: string, endpoint: { port: number } | { pipe: string }): Json {
  const address = 'pipe' in endpoint ? { pipe: { path: endpoint.pipe } } : { socket_address: { address: '127.0.0.1', port_value: endpoint.port } };
  return {
    name,
    type: 'STATIC',
    connect_timeout: '0.250s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] },
  };
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request on a fresh connection; the path is sent unmodified. */
export function request(o: { port?: number; socketPath?: string; method?: string; path: string; headers?: Record<string, string>; timeoutMs?: number }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: o.port, socketPath: o.socketPath, method: o.method ?? 'GET', path: o.path, headers: o.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(o.timeoutMs ?? 3000, () => req.destroy(new Error(`request ${o.path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Does a TCP connect to 127.0.0.1:port succeed? */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** `/stats` text → name → number. */
export function parseStats(body: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of body.split('\n')) {
    const i = line.lastIndexOf(': ');
    if (i > 0) m.set(line.slice(0, i), Number(line.slice(i + 2)));
  }
  return m;
}


const trackedDoubles: DoubleProcess[] = [];

/** `startDouble`, remembering the process so `disposeTrackedDoubles` (an afterEach) cleans it up. */
export function startTrackedDouble(o: StartOptions = {}): DoubleProcess {
  const d = startDouble(o);
  trackedDoubles.push(d);
  return d;
}

export async function disposeTrackedDoubles(): Promise<void> {
  await Promise.all(trackedDoubles.splice(0).map((d) => d.dispose()));
}
