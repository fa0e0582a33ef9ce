/**
 * `pilot-agent wait` (SPEC §10.1): Istio's timing (first attempt one period in), its messages,
 * and the 503-body decision, against real HTTP servers and the real readiness code polling the
 * Envoy double.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvoyAdminClient } from '../../src/envoy/admin.js';
import { createLogger } from '../../src/log.js';
import { ReadinessTracker } from '../../src/status/ready.js';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { startDouble, type DoubleProcess } from '../support/envoy-double-harness.js';
import { httpServer, runCli, runInProcess, type TestHttpServer } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function server(handler: http.RequestListener): Promise<TestHttpServer> {
  const s = await httpServer(handler);
  cleanups.push(() => s.close());
  return s;
}

const TIMEOUT_PREFIX = 'Error: timeout waiting for Envoy proxy to become ready. Last error: ';

describe('wait', () => {
  test('a server that is ready at the third attempt: exit 0 then, ~1.5 s in', async () => {
    let t0 = 0;
    const at: number[] = [];
    // Ready by attempt count, not by clock: a loaded machine delays timers, and the test is about
    // the schedule (one period before every attempt), which the gaps below check.
    const s = await server((_req, res) => {
      at.push(performance.now() - t0);
      if (at.length >= 3) {
        res.writeHead(200).end();
      } else {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('workers have not yet started\n');
      }
    });
    t0 = performance.now();
    const r = await runInProcess(['wait', '--url', s.url()]);
    expect(r.code).toBe(0);
    // Istio's timing: every attempt, the first included, comes one period (500 ms) after the
    // previous step; so attempts at ~0.5 s and ~1.0 s fail and the one at ~1.5 s passes, and
    // there is no fourth.
    expect(at[0]).toBeGreaterThanOrEqual(495);
    for (let i = 1; i < at.length; i++) expect((at[i] as number) - (at[i - 1] as number)).toBeGreaterThanOrEqual(495);
    expect(at.length).toBe(3);
    expect(r.ms).toBeGreaterThanOrEqual(1490);
    expect(r.ms).toBeLessThan(2500);
    expect(r.stdout).toMatch(/\tinfo\tWaiting for Envoy proxy to be ready \(timeout: 60 seconds\)\.\.\.\n/);
    expect(r.stdout).toMatch(/\tinfo\tEnvoy is ready!\n$/);
    expect(r.stderr).toBe('');
  });

  test('never ready (the real readiness code against a double that stays INITIALIZING): exit 255 naming the missing step', async () => {
    const double: DoubleProcess = startDouble({ args: ['--disable-hot-restart'], env: { ENVOY_DOUBLE_NEVER_LIVE: '1' } });
    cleanups.push(() => double.dispose());
    const state = await double.bound();
    const admin = new EnvoyAdminClient({ host: '127.0.0.1', port: state.admin.port });
    const readiness = new ReadinessTracker({ admin, standalone: true, log: createLogger({ outputLevel: 'none' }), pollIntervalMs: 50 });
    readiness.envoyStarted();
    const status = http.createServer(readiness.handler);
    await new Promise<void>((resolve) => status.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      await readiness[Symbol.asyncDispose]();
      await admin.close();
      status.closeAllConnections();
      await new Promise((r) => status.close(r));
    });
    const port = (status.address() as AddressInfo).port;

    const r = await runCli(['wait', '--url', `http://127.0.0.1:${port}/healthz/ready`, '--timeoutSeconds', '2', '--periodMillis', '200']);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe(`${TIMEOUT_PREFIX}HTTP status code 503: server is not live, current state is: INITIALIZING\n`);
    expect(r.stdout).toContain('Waiting for Envoy proxy to be ready (timeout: 2 seconds)...');
    expect(r.stdout).not.toContain('Envoy is ready!');
    expect(r.ms).toBeGreaterThanOrEqual(2000);
  });

  test('never ready (the real agent with no control plane): exit 255 naming the config step', async () => {
    const closed = await server(() => undefined);
    const deadAddress = `127.0.0.1:${closed.port}`;
    await closed.close();
    // Not standalone: Envoy (the double) waits for CDS/LDS that never come; every control-plane
    // address points at a closed loopback port.
    const agent: AgentProcess = await startAgent({ standalone: false, proxyConfig: { discoveryAddress: deadAddress }, env: { CA_ADDR: deadAddress } });
    cleanups.push(() => agent.dispose());
    await agent.waitForLog(/supervisor: starting -> running/, 15_000);

    const r = await runCli(['wait', '--url', `http://127.0.0.1:${agent.ports.status}/healthz/ready`, '--timeoutSeconds', '2', '--periodMillis', '250']);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe(
      `${TIMEOUT_PREFIX}HTTP status code 503: config not received from XDS server (is Istiod running?): ` +
        'cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected\n',
    );
  });

  test('the last error is the last attempt’s: 503 reason, bare status codes, connection errors, attempt timeouts', async () => {
    const bodies = ['config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected\n'];
    const s503 = await server((_req, res) => res.writeHead(503).end(bodies[0]));
    const s503empty = await server((_req, res) => res.writeHead(503).end());
    const s500 = await server((_req, res) => res.writeHead(500).end('boom'));
    const hang = await server(() => undefined);
    const closed = await server(() => undefined);
    const closedPort = closed.port;
    await closed.close();

    const quick = ['--timeoutSeconds', '1', '--periodMillis', '100', '--requestTimeoutMillis', '150'];
    const [a, b, c, d, e] = await Promise.all([
      runInProcess(['wait', '--url', s503.url(), ...quick]),
      runInProcess(['wait', '--url', s503empty.url(), ...quick]),
      runInProcess(['wait', '--url', s500.url(), ...quick]),
      runInProcess(['wait', '--url', hang.url(), ...quick]),
      runInProcess(['wait', '--url', `http://127.0.0.1:${closedPort}/healthz/ready`, ...quick]),
    ]);
    for (const r of [a, b, c, d, e]) expect(r.code).toBe(255);
    expect(a.stderr).toBe(`${TIMEOUT_PREFIX}HTTP status code 503: ${bodies[0]?.trim()}\n`);
    expect(b.stderr).toBe(`${TIMEOUT_PREFIX}HTTP status code 503\n`);
    // Only a 503 carries the reason; other statuses are reported as Istio does.
    expect(c.stderr).toBe(`${TIMEOUT_PREFIX}HTTP status code 500\n`);
    expect(d.stderr).toBe(`${TIMEOUT_PREFIX}Get "${hang.url()}": request timed out after 150ms\n`);
    expect(e.stderr).toBe(`${TIMEOUT_PREFIX}Get "http://127.0.0.1:${closedPort}/healthz/ready": connect ECONNREFUSED 127.0.0.1:${closedPort}\n`);
  });

  test('a deadline shorter than one period: no attempt, `<nil>`, as Istio', async () => {
    const s = await server((_req, res) => res.writeHead(200).end());
    const r = await runInProcess(['wait', '--url', s.url(), '--timeoutSeconds', '0']);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe(`${TIMEOUT_PREFIX}<nil>\n`);
    expect(s.requests).toBe(0);
  });

  test('debug logging shows every failed attempt', async () => {
    let n = 0;
    const s = await server((_req, res) => (++n < 3 ? res.writeHead(503).end('workers have not yet started') : res.writeHead(200).end()));
    const r = await runInProcess(['wait', '--url', s.url(), '--periodMillis', '50', '--log_output_level=default:debug']);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/\tdebug\tNot ready yet: HTTP status code 503: workers have not yet started\n/g)).toHaveLength(2);
  });

  test('usage errors exit 255 and name the flag', async () => {
    const bad = await Promise.all([
      runInProcess(['wait', '--periodMillis', 'soon']),
      runInProcess(['wait', '--timeoutSeconds=-1']),
      runInProcess(['wait', '--url', 'ftp://localhost/ready']),
      runInProcess(['wait', '--bogus']),
    ]);
    expect(bad.map((r) => r.code)).toEqual([255, 255, 255, 255]);
    expect(bad[0]?.stderr).toContain('"--periodMillis"');
    expect(bad[1]?.stderr).toContain('"--timeoutSeconds"');
    expect(bad[2]?.stderr).toContain('"--url"');
    expect(bad[3]?.stderr).toContain('unknown flag: --bogus');
    const help = await runInProcess(['wait', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--timeoutSeconds int');
    expect(help.stdout).toContain('(default http://localhost:15021/healthz/ready)');
  });
});
