/**
 * `pilot-agent request` (SPEC §10.2). The port checks and usage errors need no server. The
 * requests themselves go to Istio's fixed debug ports, so they run in a private network
 * namespace (root) where the real agent (`proxy sidecar --standalone`) runs the Envoy double
 * with every default port: admin on 15000, status server on 15020, listener 15021.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, CLI, ENVOY_DOUBLE } from '../support/agent-process.js';
import { SEED_ARGS, SEED_ENV } from '../support/seed.js';
import { httpServer, runInProcess } from './helpers.js';
import { Netns, netnsSkipReason, recordedPids } from './netns.js';

describe('request: arguments', () => {
  test('a debug port outside the allowed list is refused before anything is sent', async () => {
    const listening = await httpServer((_req, res) => res.end('{}'));
    try {
      for (const port of [String(listening.port), '15001', '0']) {
        const r = await runInProcess(['request', 'GET', 'server_info', '--debug-port', port]);
        expect(r.code).toBe(255);
        expect(r.stderr).toBe(`Error: debug port ${port} is not in allowed list [15000 15004 15020 15021]\n`);
        expect(r.stdout).toBe('');
      }
      expect(listening.requests).toBe(0);
    } finally {
      await listening.close();
    }
  });

  test('fewer than two arguments, a bad method or an unknown flag: exit 255', async () => {
    const one = await runInProcess(['request', 'GET']);
    expect(one.code).toBe(255);
    expect(one.stderr).toContain('Error: requires at least 2 arg(s), only received 1');
    expect((await runInProcess(['request', 'G E T', 'server_info'])).code).toBe(255);
    const flag = await runInProcess(['request', 'GET', 'server_info', '--port', '15000']);
    expect(flag.code).toBe(255);
    expect(flag.stderr).toContain('unknown flag: --port');
  });
});

const skip = netnsSkipReason();
if (skip) console.log(`skipping request/wait against the agent on Istio's default ports: ${skip}`);

(skip ? describe.skip : describe)('request and wait against the agent on the default ports (private network namespace)', () => {
  let ns: Netns;
  let agent: AgentProcess;
  let cwd: string;
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), ...extra });
  const cli = (args: string[]) => ns.run(process.execPath, [CLI, ...args], { cwd, env: env() });

  beforeAll(async () => {
    ns = new Netns();
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-request-'));
    const recordFile = path.join(cwd, 'double-record.jsonl');
    const stateFile = path.join(cwd, 'double-state.json');
    const child = ns.spawn(process.execPath, [CLI, 'proxy', ...SEED_ARGS, '--standalone'], {
      cwd,
      env: env({
        ...SEED_ENV,
        INSTANCE_IP: '127.0.0.1',
        PROXY_CONFIG: JSON.stringify({ binaryPath: ENVOY_DOUBLE, proxyMetadata: { DNS_AGENT: '' } }),
        ENVOY_DOUBLE_RECORD: recordFile,
        ENVOY_DOUBLE_STATE: stateFile,
        // /stats/prometheus answers 500 when its fixture is unreadable: the failing request below.
        ENVOY_DOUBLE_PROM_FIXTURE: path.join(cwd, 'no-such-fixture.txt'),
      }),
    });
    agent = new AgentProcess(child, cwd, { admin: 15000, status: 15020, envoyStatus: 15021, prometheus: 15090 }, recordFile, stateFile);
    await agent.waitFor('the double to be LIVE on port 15000', () => {
      try {
        const s = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { state: string; workersStarted: boolean; admin?: { port: number } };
        return s.state === 'LIVE' && s.workersStarted && s.admin?.port === 15000;
      } catch {
        return false;
      }
    }, 15_000);
  }, 30_000);

  afterAll(async () => {
    if (agent) {
      agent.signal('SIGKILL');
      await agent.exited;
    }
    await ns?.destroy(agent ? recordedPids(agent.recordFile) : []);
    if (cwd) fs.rmSync(cwd, { recursive: true, force: true });
  });

  test('request GET server_info prints the admin JSON and a newline, nothing else', async () => {
    const r = await cli(['request', 'GET', 'server_info']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.endsWith('}\n') || r.stdout.endsWith('}\n\n')).toBe(true);
    const info = JSON.parse(r.stdout) as { state: string; command_line_options: Record<string, unknown> };
    expect(info.state).toBe('LIVE');
    expect(info.command_line_options.concurrency).toBe(2);
    // A leading slash and a query string work too (sent as is).
    const stats = await cli(['request', 'GET', '/stats?usedonly&filter=^server\\.state$']);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toBe('server.state: 0\n\n');
  });

  test('a 500 exits 255 with the status and body; a 404 is printed and exits 0 (as Istio)', async () => {
    const r500 = await cli(['request', 'GET', 'stats/prometheus']);
    expect(r500.code).toBe(255);
    expect(r500.stdout).toBe('');
    expect(r500.stderr).toMatch(/^Error: received unsuccessful status code 500: /);
    const r404 = await cli(['request', 'GET', 'no_such_handler']);
    expect(r404.code).toBe(0);
    expect(r404.stdout).toMatch(/^invalid path\. admin commands are:/);
  });

  test('nothing listening on an allowed port: exit 255 with a Go-like transport error', async () => {
    const r = await cli(['request', 'GET', '/debug/x', '--debug-port', '15004']);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Error: Get "http:\/\/localhost:15004\/debug\/x": connect ECONNREFUSED (127\.0\.0\.1|::1):15004/);
  });

  test('wait with every default (http://localhost:15021/healthz/ready, through the double’s listener to the agent’s 15020)', async () => {
    const r = await cli(['wait', '--timeoutSeconds', '10']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/Envoy is ready!\n$/);
    const ready = await cli(['request', 'GET', 'healthz/ready', '--debug-port', '15020']);
    expect({ code: ready.code, stdout: ready.stdout }).toEqual({ code: 0, stdout: '\n' });
  });

  test('the method is passed through: mutating admin handlers answer GET with 405 (exit 255), POST with a body works', async () => {
    const get = await cli(['request', 'GET', 'runtime_modify?x=y']);
    expect(get.code).toBe(255);
    expect(get.stderr).toBe('Error: received unsuccessful status code 405: Method GET not allowed, POST required.\n');
    const post = await cli(['request', 'POST', 'runtime_modify?x=y', 'a request body']);
    expect(post.code).toBe(0);
    expect(post.stdout).toBe('OK\n\n');
  });
});
