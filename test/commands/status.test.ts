/**
 * `pilot-agent status` (issue 17): the real CLI reads `GET /status` from a running agent (the
 * real CLI with the Envoy double) on `--port`, and prints a summary or, with `--json`, the
 * document. Bad flags and an unreachable port are errors (exit 255) naming the culprit.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { startAgent, type AgentProcess } from '../support/agent-process.js';
import { freePorts } from '../support/ports.js';
import { summarizeStatus } from '../../src/commands/status-summary.js';
import { runCli, runInProcess } from './helpers.js';

let agent: AgentProcess;
beforeAll(async () => {
  agent = await startAgent();
  await agent.waitForLog(/readiness: not ready -> ready/, 15_000);
}, 20_000);
afterAll(async () => agent?.dispose());

describe('pilot-agent status', () => {
  test('prints a readable summary of the running agent', async () => {
    const pid = agent.starts()[0]?.pid as number;
    const r = await runCli(['status', '--port', String(agent.ports.status)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^pilot-agent status \(schema 1, 20\d\d-/);
    expect(r.stdout).toContain(`\nEnvoy\n  state LIVE, pid ${pid}, epoch 0, up `);
    expect(r.stdout).toContain('\nReadiness\n  ready\n');
    expect(r.stdout).toContain('\nControl plane\n  standalone mode: no control plane\n');
  });

  test('--json prints the /status document on one line', async () => {
    const r = await runCli(['status', '--json', `--port=${agent.ports.status}`]);
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    const doc = JSON.parse(r.stdout) as { schemaVersion: number; sections: Record<string, { state?: string }> };
    expect(doc.schemaVersion).toBe(1);
    expect(doc.sections.envoy?.state).toBe('running');
  });

  test('an unreachable port is an error naming the URL; bad flags name the input', async () => {
    const [unused] = (await freePorts(1)) as [number];
    const down = await runInProcess(['status', '--port', String(unused)]);
    expect(down.code).toBe(255);
    expect(down.stderr).toContain(`http://localhost:${unused}/status`);
    const bad = await runInProcess(['status', '--port', '70000']);
    expect(bad).toMatchObject({ code: 255, stderr: 'Error: --port: expected a port number 1-65535, got "70000"\n' });
    const extra = await runInProcess(['status', 'now']);
    expect(extra.code).toBe(255);
    expect(extra.stderr).toMatch(/^Error: status takes no arguments, got "now"/);
  });

  test('a section the summary does not know is printed generically', () => {
    const text = summarizeStatus({ schemaVersion: 1, generatedAt: 'T', sections: { dns: { tableSize: 3, queries: 10 } } });
    expect(text).toBe('pilot-agent status (schema 1, T)\n\ndns\n  tableSize: 3\n  queries: 10\n');
  });
});
