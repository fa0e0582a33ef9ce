/**
 * A failure injected at each start-up step (issue 13): the real CLI exits 255 with a message
 * naming the input, and leaves nothing behind — no child process, no socket file, no listening
 * port — whatever the steps before it had started (the agent's disposable stack undoes them).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { disposeTrackedAgents, startTrackedAgent, type AgentProcess, type StartAgentOptions } from '../support/agent-process.js';
import { canConnect } from '../support/envoy-double-harness.js';
import { freePorts } from '../support/ports.js';
import { processesWithCwd } from '../support/proc.js';

afterEach(disposeTrackedAgents);

const CONFIG_DIR = 'etc/istio/proxy';
const XDS_SOCKET = `${CONFIG_DIR}/XDS`;
const SDS_SOCKET = `${CONFIG_DIR}/SDS`;
const BOOTSTRAP = `${CONFIG_DIR}/envoy-rev.json`;

/** Socket files anywhere under dir. */
function socketFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    if (fs.lstatSync(full).isSocket()) out.push(path.relative(dir, full));
  }
  return out;
}

/** Runs the agent to its exit and checks it left nothing behind; returns its stderr. */
async function failedStart(
  options: StartAgentOptions,
  expected: RegExp,
  notListening: (a: AgentProcess) => number[] = (a) => [a.ports.status, a.ports.admin],
  code = 255,
): Promise<AgentProcess> {
  const agent = await startTrackedAgent(options);
  const exit = await agent.waitExit();
  expect({ exit, message: expected.exec(agent.stderr)?.[0] }).toEqual({ exit: { code, signal: null }, message: expect.any(String) });
  expect(agent.stderr).not.toMatch(/internal error/);
  expect(processesWithCwd(agent.cwd)).toEqual([]);
  expect(socketFiles(agent.cwd)).toEqual([]);
  for (const port of notListening(agent)) expect(`${port}: ${await canConnect(port)}`).toBe(`${port}: false`);
  return agent;
}

describe('a failed start-up step leaves nothing behind', () => {
  test('bootstrap write: configPath under a regular file (standalone: the status server was up)', async () => {
    const agent = await failedStart(
      { standalone: true, proxyConfig: { configPath: './blocker/proxy' }, files: { blocker: 'a regular file, not a directory\n' } },
      /Error: configPath \S*blocker\/proxy: cannot write the Envoy bootstrap: ENOTDIR/,
    );
    expect(agent.starts()).toEqual([]);
    // The status server had started (Envoy is spawned after it) and was closed again.
    expect(agent.stderr).toMatch(/status server listening on port \d+/);
    expect(agent.stderr).toMatch(/status server closed/);
  });

  test('bootstrap write: the bootstrap path is taken by a directory (every other component was up; no temp file is left)', async () => {
    const agent = await failedStart(
      { standalone: false, files: { [`${BOOTSTRAP}/keep`]: '' } },
      /Error: configPath \S*etc\/istio\/proxy: cannot write the Envoy bootstrap: .+/,
    );
    expect(agent.stderr).toMatch(/status server listening on port \d+/);
    expect(fs.readdirSync(path.join(agent.cwd, CONFIG_DIR)).sort()).toEqual(['envoy-rev.json']);
    expect(agent.starts()).toEqual([]);
  });

  test('xDS socket: its path is taken by a directory', async () => {
    const agent = await failedStart(
      { standalone: false, files: { [`${XDS_SOCKET}/keep`]: '' } },
      /Error: xDS proxy: cannot listen on \S*etc\/istio\/proxy\/XDS: \S*XDS exists and is not a socket/,
    );
    expect(fs.statSync(path.join(agent.cwd, XDS_SOCKET)).isDirectory()).toBe(true); // not ours to remove
    expect(agent.stderr).not.toMatch(/SDS server listening|status server listening/);
  });

  test('SDS socket: its path is taken by a directory (the xDS proxy was listening)', async () => {
    const agent = await failedStart(
      { standalone: false, files: { [`${SDS_SOCKET}/keep`]: '' } },
      /Error: cannot serve SDS on \S*etc\/istio\/proxy\/SDS: .+/,
    );
    expect(agent.stderr).toMatch(/xDS proxy listening on \S*XDS/);
    expect(fs.existsSync(path.join(agent.cwd, XDS_SOCKET))).toBe(false);
    expect(agent.stderr).not.toMatch(/status server listening/);
  });

  test('status port already taken (xDS proxy and SDS server were up)', async () => {
    const [port] = (await freePorts(1)) as [number];
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(port, '0.0.0.0', resolve));
    try {
      const agent = await failedStart(
        { standalone: false, proxyConfig: { statusPort: port } },
        new RegExp(`Error: status server: cannot listen on port ${port}: the port is already in use`),
        (a) => [a.ports.admin],
      );
      expect(agent.stderr).toMatch(/xDS proxy listening/);
      expect(fs.existsSync(path.join(agent.cwd, XDS_SOCKET))).toBe(false);
      expect(fs.existsSync(path.join(agent.cwd, SDS_SOCKET))).toBe(false);
      expect(agent.starts()).toEqual([]);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  test('Envoy spawn: binaryPath does not exist (every other component was up)', async () => {
    const agent = await failedStart(
      { standalone: false, binaryPath: '/nonexistent/envoy' },
      /Error: cannot start Envoy: binaryPath \/nonexistent\/envoy: .*\(ENOENT\)/,
    );
    expect(agent.stderr).toMatch(/status server listening on port \d+/);
    expect(fs.existsSync(path.join(agent.cwd, BOOTSTRAP))).toBe(false);
    expect(fs.existsSync(path.join(agent.cwd, XDS_SOCKET))).toBe(false);
    expect(fs.existsSync(path.join(agent.cwd, SDS_SOCKET))).toBe(false);
    // Exactly one attempt: a spawn failure is a configuration error, never retried (SPEC §5.1).
    expect(agent.stderr.match(/cannot start Envoy/g)).toHaveLength(1);
  });

  test('a fatal error after start-up (crash loop) unwinds the same way, with exit 1', async () => {
    const agent = await failedStart(
      {
        standalone: false,
        env: { ENVOY_DOUBLE_CRASH_AFTER_MS: '0', ENVOY_DOUBLE_EXIT_CODE: '3', ENVOY_RESTART_BACKOFF_INITIAL: '10ms', ENVOY_RESTART_BACKOFF_MAX: '20ms' },
      },
      /Error: Envoy exited 5 times within 5m0s \(last: .*\); giving up/,
      (a) => [a.ports.status, a.ports.admin],
      1,
    );
    expect(agent.starts()).toHaveLength(5);
    expect(agent.stderr).toMatch(/xDS proxy listening/);
    expect(fs.existsSync(path.join(agent.cwd, BOOTSTRAP))).toBe(false);
  });
});
