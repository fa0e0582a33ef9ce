/**
 * The image's runtime: the real launcher (bin/pilot-agent.js with its `#!` node flags) under
 * Node 24, with the Envoy double behind ENVOY_PROMETHEUS_PORT. Merged scrapes of the real
 * capture and of multi-MB bodies must complete byte-complete (Node 24.21 stalled them: a
 * corked batch's 'drain' came inside uncork() or never). Node 24 comes from
 * `npx -y -p node@24`; without it (no registry) the file is skipped with the reason printed.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import path from 'node:path';
import { disposeTrackedAgents, startTrackedAgent, type AgentProcess } from '../support/agent-process.js';
import { ENVOY_FIXTURE, FIXTURES, TEXT_CT, fetch, fixture, serveBody, startServer, type TestServer } from '../support/metrics-servers.js';
import { findNode24 } from '../support/node24.js';
import { slowGet } from '../support/slow-reader.js';

const node24 = findNode24();
if (node24.path === undefined) console.log(`SKIP test/integration/node24.test.ts: ${node24.reason}`);
const maybe = node24.path === undefined ? describe.skip : describe;

const servers: TestServer[] = [];
afterEach(async () => {
  await disposeTrackedAgents();
  for (const s of servers.splice(0)) await s.close();
});

const TEXT_ACCEPT = { accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1' };

async function readyAgent(env: Record<string, string>): Promise<AgentProcess> {
  const agent = await startTrackedAgent({ node: node24.path as string, env, proxyConfig: { terminationDrainDuration: '0.1s' } });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await fetch(agent.ports.status, '/healthz/ready').catch(() => undefined);
    if (r?.status === 200) return agent;
    if (Date.now() > deadline) throw new Error(`agent under ${node24.path} not ready within 30 s; last ${r?.status} ${r?.text}\n${agent.stderr.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

maybe(`the launcher under Node 24 (${node24.path === undefined ? '' : node24.version})`, () => {
  test('ready, and a merged scrape of the real 387 KiB capture arrives byte-complete', async () => {
    const agent = await readyAgent({ ENVOY_DOUBLE_PROM_FIXTURE: path.join(FIXTURES, ENVOY_FIXTURE) });
    const r = await slowGet(agent.ports.status, '/stats/prometheus', { keep: true, headers: TEXT_ACCEPT });
    expect(r.status).toBe(200);
    const text = r.body.toString('utf8');
    expect(text).toMatch(/^# HELP istio_agent_/);
    const envoy = fixture(ENVOY_FIXTURE).toString('utf8');
    const at = text.indexOf(envoy);
    if (at < 0) throw new Error(`the merged body (${r.bytes} bytes) does not hold the ${envoy.length}-byte capture whole`);
    expect(text.slice(at + envoy.length)).toBe('\n');
  }, 120_000);

  test('20 concurrent merged scrapes of an 8 MB Envoy body and a 1 MB application body all complete with full bodies', async () => {
    const promBytes = 8_000_000;
    // The application's body is emitted as one batch of many buffers: the corked write Node 24 stalled.
    const lines: string[] = ['# TYPE app_padding gauge'];
    for (let i = 0, size = 0; size < 1_000_000; i++) {
      const line = `app_padding{app_series="${i}",pad="${'p'.repeat(40)}"} 1`;
      lines.push(line);
      size += line.length + 1;
    }
    const appText = `${lines.join('\n')}\n`;
    const app = await startServer(serveBody(appText, TEXT_CT));
    servers.push(app);
    const agent = await readyAgent({
      ENVOY_DOUBLE_PROM_BYTES: String(promBytes),
      ISTIO_PROMETHEUS_ANNOTATIONS: JSON.stringify({ scrape: 'true', port: String(app.port), path: '/metrics' }),
    });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => slowGet(agent.ports.status, '/stats/prometheus', { keep: true, headers: TEXT_ACCEPT, stallMs: 20_000 })),
    );
    expect(app.requests.length).toBe(20);
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.bytes).toBeGreaterThanOrEqual(promBytes + appText.length);
      const text = r.body.toString('utf8');
      expect(text).toMatch(/^# HELP istio_agent_/);
      if (!text.endsWith(`\n${appText}`)) throw new Error(`a merged body (${r.bytes} bytes) does not end with the application's ${appText.length} bytes`);
      // The double's padding series are numbered 0…n-1: a cut or a gap shows as a wrong count.
      const envoy = text.slice(0, text.length - appText.length);
      const series = envoy.match(/^envoy_double_padding\{envoy_double_series="\d+"\} 0$/gm) ?? [];
      const last = /envoy_double_series="(\d+)"\} 0\n$/.exec(envoy);
      expect(last).not.toBeNull();
      expect(series.length).toBe(Number(last?.[1]) + 1);
      expect(series.length).toBeGreaterThan(promBytes / 60);
    }
  }, 240_000);
});
