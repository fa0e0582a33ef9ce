/**
 * Helpers for the command tests: run the CLI in-process (captured streams) or as a real
 * process, and small loopback HTTP servers on port 0.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';
import { launcherArgv } from '../support/launcher.js';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `pilot-agent <argv>` in this process with captured stdout/stderr. */
export async function runInProcess(argv: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  err.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const t0 = performance.now();
  const code = await main(argv, { stdout: out, stderr: err, env, cwd: process.cwd() });
  const ms = performance.now() - t0;
  await new Promise((r) => setImmediate(r));
  return { code, stdout, stderr, ms };
}

/** Runs the real CLI (`bin/pilot-agent.js`) as a child process; kills it after `timeoutMs`. */
export function runCli(argv: string[], o: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, launcherArgv(argv), {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(o.env ?? {}) },
      cwd: o.cwd ?? process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 20_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

export interface TestHttpServer {
  port: number;
  url: (path?: string) => string;
  requests: number;
  close: () => Promise<void>;
}

/** A loopback HTTP server on port 0; `handler` answers every request. */
export async function httpServer(handler: http.RequestListener): Promise<TestHttpServer> {
  const server = http.createServer();
  const state = { requests: 0 };
  server.on('request', (req, res) => {
    state.requests++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (p = '/healthz/ready') => `http://127.0.0.1:${port}${p}`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
