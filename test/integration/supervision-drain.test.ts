/**
 * Termination drain with live connections through the Envoy double (SPEC §5.2): the real CLI,
 * extra INBOUND listeners added with ISTIO_BOOTSTRAP_OVERRIDE, an upstream app and an echo
 * server behind them, and the double's record of the admin calls it received.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { freePorts } from '../support/ports.js';
import { processesWithCwd } from '../support/proc.js';
import { EchoClient, EchoServer, UpstreamApp, adminGet, extraListenersOverride, httpGet, readAdminLog, waitUntil } from './supervision-support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  agent: AgentProcess;
  app: UpstreamApp;
  ports: { http: number; tcp: number };
  adminCalls: () => ReturnType<typeof readAdminLog>;
}

async function setup(env: Record<string, string>, proxyConfig: Record<string, unknown>): Promise<Setup> {
  const app = await UpstreamApp.start();
  cleanups.push(() => app.close());
  const echo = await EchoServer.start();
  cleanups.push(() => echo.close());
  const [httpPort, tcpPort] = (await freePorts(2)) as [number, number];
  const agent = await startAgent({
    env: { ISTIO_BOOTSTRAP_OVERRIDE: 'override.json', ENVOY_DOUBLE_ADMIN_LOG: 'admin-calls.jsonl', ...env },
    proxyConfig,
    files: { 'override.json': extraListenersOverride({ httpPort, appPort: app.port, tcpPort, echoPort: echo.port }) },
  });
  cleanups.push(() => agent.dispose());
  const logFile = path.join(agent.cwd, 'admin-calls.jsonl');
  await agent.waitForLog(/readiness: not ready -> ready/);
  return {
    agent,
    app,
    ports: { http: httpPort, tcp: tcpPort },
    adminCalls: () => (fs.existsSync(logFile) ? readAdminLog(fs.readFileSync(logFile, 'utf8')) : []),
  };
}

/** A connection that sends nothing and stays open (an idle client). */
function idleConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.on('error', () => undefined);
      cleanups.push(async () => void s.destroy());
      resolve(s);
    });
    s.once('error', reject);
  });
}

const ACTIVE_POLL = '/stats?usedonly&filter=downstream_cx_active$';
const DRAIN = '/drain_listeners?inboundonly&graceful';

/** Admin calls from the termination on: exactly one drain POST, then only `expectGets`. */
function expectTerminationCalls(calls: ReturnType<typeof readAdminLog>, expectGets: string[]): void {
  const posts = calls.filter((c) => c.method === 'POST');
  expect(posts.map((c) => c.path)).toEqual([DRAIN]);
  const after = calls.slice(calls.indexOf(posts[0] as (typeof calls)[number]) + 1);
  expect([...new Set(after.map((c) => `${c.method} ${c.path}`))]).toEqual(expectGets.map((p) => `GET ${p}`));
}

describe('exit on zero active connections (EXIT_ON_ZERO_ACTIVE_CONNECTIONS)', () => {
  test('waits for a held-open connection on an inbound listener, ignoring the 15021/15090/admin listeners and worker_ lines', async () => {
    const { agent, ports, adminCalls } = await setup(
      { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true', MINIMUM_DRAIN_DURATION: '200ms' },
      { terminationDrainDuration: '0.2s' },
    );
    // Connections that must not count: readiness and Prometheus listeners, admin.
    await idleConnection(agent.ports.envoyStatus);
    await idleConnection(agent.ports.prometheus);
    await idleConnection(agent.ports.admin);
    const tcp = await EchoClient.connect(ports.tcp);
    await tcp.roundTrip('hello');
    // What the agent will read: the excluded listeners and the per-worker lines are there.
    const body = await adminGet(agent.ports.admin, ACTIVE_POLL);
    expect(body).toContain(`listener.0.0.0.0_${agent.ports.envoyStatus}.downstream_cx_active: 1`);
    expect(body).toContain(`listener.0.0.0.0_${agent.ports.prometheus}.downstream_cx_active: 1`);
    expect(body).toMatch(/listener\.admin\.downstream_cx_active: [1-9]/);
    expect(body).toContain(`listener.127.0.0.1_${ports.tcp}.downstream_cx_active: 1`);
    expect(body).toMatch(new RegExp(`listener\\.127\\.0\\.0\\.1_${ports.tcp}\\.worker_\\d\\.downstream_cx_active: 1`));

    agent.signal('SIGTERM');
    await agent.waitForLog(/waiting 200ms, then until Envoy has no active connections/);
    // Exactly the one inbound connection is counted, at least twice (still waiting).
    await agent.waitFor('two polls counting 1', () => (agent.stderr.match(/\t1 active connections, waiting/g) ?? []).length >= 2);
    expect(agent.stderr).not.toMatch(/\t[2-9] active connections/);
    await tcp.roundTrip('still served while draining');
    const t0 = performance.now();
    await tcp.end();
    expect((await agent.waitExit()).code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(agent.stderr).toContain('no active connections: done draining');
    expectTerminationCalls(adminCalls(), [ACTIVE_POLL]);
    expect(processesWithCwd(agent.cwd)).toEqual([]);
  });

  test('an HTTP request in flight completes (connection: close) and then the agent exits', async () => {
    const { agent, app, ports } = await setup({ EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true', MINIMUM_DRAIN_DURATION: '100ms' }, {});
    const inFlight = httpGet(ports.http, '/hold/r1');
    await app.waitHeld('r1');
    agent.signal('SIGTERM');
    await agent.waitForLog(/\t1 active connections, waiting/);
    app.release('r1');
    const res = await inFlight;
    expect(res).toMatchObject({ status: 200, body: 'released r1' });
    expect(res.headers.connection).toBe('close');
    expect((await agent.waitExit()).code).toBe(0);
    expect(agent.stderr).toContain('no active connections: done draining');
  });
});

describe('fixed drain and the optional bound', () => {
  test('the fixed mode does not wait for open connections', async () => {
    const { agent, ports, adminCalls } = await setup({}, { terminationDrainDuration: '0.5s' });
    const tcp = await EchoClient.connect(ports.tcp);
    await tcp.roundTrip('hello');
    const t0 = performance.now();
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3000);
    await tcp.closed; // cut when Envoy stopped
    expect(agent.stderr).toContain('waiting 500ms for Envoy to drain');
    expectTerminationCalls(adminCalls(), []);
  });

  test.each([
    ['exit-on-zero', { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true', MINIMUM_DRAIN_DURATION: '100ms', DRAIN_DEADLINE: '800ms' }, { terminationDrainDuration: '0.1s' }],
    ['fixed', { DRAIN_DEADLINE: '800ms' }, { terminationDrainDuration: '30s' }],
  ])('DRAIN_DEADLINE cuts the %s wait', async (_mode, env, pc) => {
    const { agent, ports } = await setup(env, pc);
    const tcp = await EchoClient.connect(ports.tcp);
    await tcp.roundTrip('hello');
    const t0 = performance.now();
    agent.signal('SIGTERM');
    expect((await agent.waitExit()).code).toBe(0);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(750);
    expect(took).toBeLessThan(3000);
    await tcp.closed;
  });
});

describe('no request in flight is lost before its listener closes', () => {
  test('in-flight and newly accepted requests complete during the drain; after the listener closes, accepted ones still complete', async () => {
    // Envoy drains inbound listeners over --drain-time-s 1, then stops them; the agent waits 3 s.
    const { agent, app, ports, adminCalls } = await setup({}, { terminationDrainDuration: '3s', drainDuration: '1s' });
    const before = httpGet(ports.http, '/hold/before');
    await app.waitHeld('before');
    agent.signal('SIGTERM');
    await waitUntil('drain POST', () => adminCalls().some((c) => c.method === 'POST' && c.path === DRAIN));
    // The listener still accepts while draining.
    const during = httpGet(ports.http, '/hold/during');
    await app.waitHeld('during');
    const fresh = await httpGet(ports.http, '/quick');
    expect(fresh).toMatchObject({ status: 200, body: 'hello' });
    expect(fresh.headers.connection).toBe('close');
    // Once the drain sequence ends the listener stops accepting ...
    await waitUntil('inbound listener stopped', () => {
      const state = JSON.parse(fs.readFileSync(agent.stateFile, 'utf8')) as { listeners: Record<string, { stopped: boolean }> };
      return state.listeners.inbound_app?.stopped === true;
    });
    await expect(httpGet(ports.http, '/late')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // ... and what it accepted still completes.
    app.release('before');
    app.release('during');
    const [b, d] = await Promise.all([before, during]);
    expect(b).toMatchObject({ status: 200, body: 'released before' });
    expect(d).toMatchObject({ status: 200, body: 'released during' });
    expect(agent.child.exitCode).toBeNull(); // all of it inside the agent's drain window
    expect((await agent.waitExit()).code).toBe(0);
  });
});
