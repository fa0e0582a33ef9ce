/**
 * Readiness (SPEC §6.1) end to end: the real CLI, the Envoy double, `/healthz/ready` on the
 * agent's status port and through the double's 15021 listener (the kubelet's path).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { disposeTrackedAgents, startTrackedAgent, type AgentProcess } from '../support/agent-process.js';

afterEach(disposeTrackedAgents);
const start = startTrackedAgent;

async function probe(port: number): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz/ready`, { signal: AbortSignal.timeout(1000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

/** Polls the probe until `want` matches (the kubelet polls too), with a deadline. */
async function probeUntil(agent: AgentProcess, port: number, want: (r: { status: number; body: string }) => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last: { status: number; body: string } | undefined;
  while (Date.now() < deadline) {
    last = await probe(port);
    if (last && want(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`probe on ${port} never matched; last: ${JSON.stringify(last)}\n${agent.stderr.slice(-3000)}`);
}

describe('readiness state table (SPEC §6.1)', () => {
  test('admin down → 503 naming the connection error', async () => {
    const agent = await start({ files: { 'fake-envoy': '#!/bin/sh\nexec sleep 600\n' }, binaryPath: './fake-envoy' });
    fs.chmodSync(path.join(agent.cwd, 'fake-envoy'), 0o755);
    // binaryPath is resolved by the OS relative to the agent's cwd.
    const r = await probeUntil(agent, agent.ports.status, (x) => x.body.startsWith('failed to get readiness stats'));
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^failed to get readiness stats: .*ECONNREFUSED/);
  });

  test('CDS/LDS not received (control plane mode, no xDS) → 503 with Istio’s message', async () => {
    const agent = await start({ standalone: false });
    const r = await probeUntil(agent, agent.ports.status, (x) => x.body.startsWith('config not received'));
    expect(r).toEqual({
      status: 503,
      body: 'config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected\n',
    });
  });

  test('PRE_INITIALIZING → 503', async () => {
    const agent = await start({ env: { ENVOY_DOUBLE_STATE_OVERRIDE: 'PRE_INITIALIZING' } });
    const r = await probeUntil(agent, agent.ports.status, (x) => x.body.startsWith('server is not live'));
    expect(r.body).toBe('server is not live, current state is: PRE_INITIALIZING\n');
  });

  test('workers not started → 503', async () => {
    const agent = await start({ env: { ENVOY_DOUBLE_WORKERS_DELAY_MS: '60000' } });
    const r = await probeUntil(agent, agent.ports.status, (x) => x.body.startsWith('workers'));
    expect(r.body).toBe('workers have not yet started\n');
  });

  test('LIVE → 200 on 15020 and through Envoy’s 15021 listener; a crash → 503 until the new Envoy is ready; SIGTERM → 503', async () => {
    const agent = await start({ env: { ENVOY_RESTART_BACKOFF_INITIAL: '500ms' }, proxyConfig: { terminationDrainDuration: '3s' } });
    await probeUntil(agent, agent.ports.status, (x) => x.status === 200);
    const viaEnvoy = await probeUntil(agent, agent.ports.envoyStatus, (x) => x.status === 200);
    expect(viaEnvoy.body).toBe('');
    await agent.waitForLog(/readiness: not ready -> ready/); // its stderr pipe may lag the HTTP answer

    process.kill(agent.starts()[0]!.pid, 'SIGKILL');
    const down = await probeUntil(agent, agent.ports.status, (x) => x.status === 503);
    expect(down.body).toMatch(/^(Envoy is not running: killed by SIGKILL|Envoy is starting|failed to get readiness stats)/);
    await agent.waitFor('second Envoy', () => agent.starts().length >= 2);
    await probeUntil(agent, agent.ports.envoyStatus, (x) => x.status === 200);

    agent.signal('SIGTERM');
    const terminated = await probeUntil(agent, agent.ports.status, (x) => x.status === 503);
    expect(terminated.body).toBe('server is terminated: received SIGTERM\n');
    expect((await agent.waitExit()).code).toBe(0);
  });
});
