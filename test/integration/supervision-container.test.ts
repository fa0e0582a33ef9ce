/**
 * As in a container (SPEC §5): the agent is PID 1 of a fresh PID namespace
 * (`unshare --pid --fork --mount-proc`), the Envoy double its child. Needs root (skipped with
 * the reason otherwise). The double's parent-watch is off, so only the namespace can end it.
 *
 * PIDs inside the namespace differ from the host's: processes are found by their cwd (the
 * test's temp dir) and told apart by the `NSpid` line of /proc/<pid>/status. Cleanup SIGKILLs
 * the namespace's init, which the kernel turns into SIGKILL for every process in it.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, ENVOY_DOUBLE } from '../support/agent-process.js';
import { launcherArgv } from '../support/launcher.js';
import { freePorts } from '../support/ports.js';
import { processesWithCwd } from '../support/proc.js';
import { SEED_ARGS, SEED_ENV } from '../support/seed.js';
import { waitUntil } from './supervision-support.js';

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (unshare --pid)';
  const probe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { encoding: 'utf8' });
  if (probe.error) return `unshare not runnable: ${probe.error.message}`;
  if (probe.status !== 0) return `unshare --pid --fork --mount-proc failed: ${probe.stderr.trim()}`;
  return undefined;
}
const skipReason = unavailable();
if (skipReason) console.log(`skipping the PID-namespace tests: ${skipReason}`);
const maybe = skipReason ? test.skip : test;

/** PIDs of a process in each PID namespace it belongs to, outermost first (`NSpid`). */
function nsPids(pid: number): number[] {
  try {
    const m = /^NSpid:\s+(.+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (m[1] as string).trim().split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

/** Is signal `sig` caught (a handler installed) by `pid`? (`SigCgt` bit sig-1.) */
function catches(pid: number, sig: number): boolean {
  const m = /^SigCgt:\s+([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m !== null && (BigInt(`0x${m[1]}`) & (1n << BigInt(sig - 1))) !== 0n;
}

interface Contained {
  agent: AgentProcess;
  /** Host PID of the agent (PID 1 inside). */
  init: number;
  /** Host PIDs of the Envoy doubles (their cwd is the temp dir; not the agent, not unshare). */
  envoys: () => number[];
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function startContained(): Promise<Contained> {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-pidns-'));
  const [admin, status, envoyStatus, prometheus] = (await freePorts(4)) as [number, number, number, number];
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...SEED_ENV,
    INSTANCE_IP: '127.0.0.1',
    PROXY_CONFIG: JSON.stringify({ binaryPath: ENVOY_DOUBLE, proxyAdminPort: admin, statusPort: status, proxyMetadata: { DNS_AGENT: '' }, terminationDrainDuration: '0.3s' }),
    ENVOY_STATUS_PORT: String(envoyStatus),
    ENVOY_PROMETHEUS_PORT: String(prometheus),
    ENVOY_DOUBLE_RECORD: path.join(cwd, 'double-record.jsonl'),
    ENVOY_DOUBLE_PARENT_WATCH: '0',
  };
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, ...launcherArgv(['proxy', ...SEED_ARGS, '--standalone'])], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const agent = new AgentProcess(child, cwd, { admin, status, envoyStatus, prometheus }, env.ENVOY_DOUBLE_RECORD as string, path.join(cwd, 'none'));
  const others = () => processesWithCwd(cwd).filter((p) => p !== child.pid);
  let init = 0;
  cleanups.push(async () => {
    // Never AgentProcess.dispose(): the record file holds namespace PIDs, not the host's.
    for (const p of others()) if (nsPids(p).at(-1) === 1) process.kill(p, 'SIGKILL');
    await agent.waitExit(10_000).catch(() => child.kill('SIGKILL'));
    await waitUntil('namespace empty', () => others().length === 0);
    fs.rmSync(cwd, { recursive: true, force: true });
  });
  init = await waitUntil('the agent as PID 1', () => others().find((p) => nsPids(p).at(-1) === 1));
  return { agent, init, envoys: () => others().filter((p) => p !== init) };
}

describe('as in a container: the agent is PID 1 of its own PID namespace', () => {
  maybe('SIGKILL of the agent leaves no Envoy behind', async () => {
    const { agent, init, envoys } = await startContained();
    await agent.waitForLog(/readiness: not ready -> ready/);
    const [envoy] = envoys();
    expect(envoy).toBeDefined();
    // The double runs inside the namespace, as the agent's child.
    const ids = nsPids(envoy as number);
    expect(ids).toHaveLength(2);
    expect(ids[1]).not.toBe(ids[0]);
    expect(agent.starts()[0]?.pid).toBe(ids[1]);
    expect(Number(/^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${envoy}/status`, 'utf8'))?.[1])).toBe(init);

    process.kill(init, 'SIGKILL');
    const exit = await agent.waitExit();
    expect(exit.code).not.toBe(0); // unshare reports its child's death by SIGKILL
    await waitUntil('no Envoy left', () => envoys().length === 0, 3000);
  });

  maybe('SIGTERM to PID 1 follows the normal drain path and exits 0', async () => {
    const { agent, init, envoys } = await startContained();
    await agent.waitForLog(/readiness: not ready -> ready/);
    // PID 1 only receives the signals it has handlers for: the agent installs SIGTERM and SIGINT.
    expect(catches(init, 15)).toBe(true);
    expect(catches(init, 2)).toBe(true);
    expect(envoys()).toHaveLength(1);
    process.kill(init, 'SIGTERM');
    const exit = await agent.waitExit();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(agent.stderr).toContain('received SIGTERM, stopping');
    expect(agent.stderr).toMatch(/POST \/drain_listeners\?inboundonly&graceful: draining/);
    expect(agent.stderr).toMatch(/waiting 300ms for Envoy to drain/);
    expect(agent.stderr).toMatch(/Envoy \(pid \d+\) exited with code 0/);
    expect(envoys()).toEqual([]);
  });
});
