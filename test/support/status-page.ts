/**
 * Helpers for the status page tests: read `/status` from a running agent, and crash the Envoy
 * double once through its control file (ENVOY_DOUBLE_CONTROL: `crashAfterMs: 0` plus
 * `stderrOnCrash`), clearing the knob as soon as the crashed pid's exit is recorded so the
 * restarted double runs normally. Agents using `crashOnce` need a restart backoff longer than
 * that (CRASH_TEST_ENV: 3 s ±20%).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AgentProcess } from './agent-process.js';

export const CRASH_TEST_ENV = { ENVOY_RESTART_BACKOFF_INITIAL: '3s' };

export function controlFile(cwd: string): string {
  return path.join(cwd, 'double-control.json');
}

export function httpGet(port: number, p: string, host = '127.0.0.1'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
  });
}

export async function getStatus(port: number): Promise<{ schemaVersion: number; generatedAt: string; sections: Record<string, any> }> {
  const r = await httpGet(port, '/status');
  if (r.status !== 200) throw new Error(`GET /status: ${r.status} ${r.body}`);
  return JSON.parse(r.body);
}

/** Crashes the running double once with these stderr lines; resolves with the crashed pid once its exit is recorded. */
export async function crashOnce(agent: AgentProcess, stderrLines: string[], exitCode = 3): Promise<number> {
  const starts = agent.starts();
  const pid = starts[starts.length - 1]?.pid;
  if (pid === undefined) throw new Error('no Envoy double started yet');
  const file = controlFile(agent.cwd);
  fs.writeFileSync(file, JSON.stringify({ crashAfterMs: 0, exitCode, stderrOnCrash: stderrLines }));
  await agent.waitFor(`exit record of pid ${pid}`, () => agent.records().some((r) => r.pid === pid && r.event === 'exit'), 10_000);
  fs.writeFileSync(file, '{}');
  return pid;
}

/** Polls `/status` (every 50 ms) until `pred` holds for the document; rejects at the deadline with the last one. */
export async function statusUntil(port: number, what: string, pred: (doc: Awaited<ReturnType<typeof getStatus>>) => boolean, timeoutMs = 10_000): Promise<Awaited<ReturnType<typeof getStatus>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const doc = await getStatus(port);
    if (pred(doc)) return doc;
    if (Date.now() > deadline) throw new Error(`/status never showed ${what}; last: ${JSON.stringify(doc)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
