/**
 * A real Prometheus scrapes the merged endpoint (`up == 1`), for an OpenMetrics app with
 * exemplars and for a text app, both merged with a real istio-proxy capture served by a
 * stand-in for Envoy; `promtool check metrics` accepts the text body (exit 0 or 3 = lint only).
 * Skips with a printed reason when the binaries are missing.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ENVOY_FIXTURE,
  OPENMETRICS_APP_FIXTURE,
  OPENMETRICS_CT,
  TEXT_APP_FIXTURE,
  TEXT_CT,
  fetch,
  fixture,
  serveBody,
  startServer,
  type TestServer,
} from '../support/metrics-servers.js';
import { DEFAULT_FAMILIES } from '../support/default-metrics.js';
import { startStatus, type StatusHarness } from '../support/status-harness.js';
import { freePort } from '../support/ports.js';
import { which } from '../support/proc.js';


const PROMETHEUS = which('prometheus');
const PROMTOOL = which('promtool');
if (!PROMETHEUS) console.log('SKIP prometheus scrape test: no `prometheus` binary (apt-get install -y prometheus)');
if (!PROMTOOL) console.log('SKIP promtool check: no `promtool` binary (apt-get install -y prometheus)');

const servers: { close(): Promise<void> }[] = [];
let envoy: TestServer;
let om: StatusHarness;
let text: StatusHarness;

beforeAll(async () => {
  envoy = await startServer(serveBody(fixture(ENVOY_FIXTURE), TEXT_CT));
  const omApp = await startServer(serveBody(fixture(OPENMETRICS_APP_FIXTURE), OPENMETRICS_CT));
  const textApp = await startServer(serveBody(fixture(TEXT_APP_FIXTURE), TEXT_CT));
  servers.push(envoy, omApp, textApp);
  om = await startStatus({ envoyPort: envoy.port, app: { port: omApp.port, path: '/metrics' }, defaultMetrics: true });
  text = await startStatus({ envoyPort: envoy.port, app: { port: textApp.port, path: '/metrics' }, defaultMetrics: true });
  servers.push(om, text);
});

afterAll(async () => {
  for (const s of servers.reverse()) await s.close();
});

describe('a real Prometheus scrapes the merged endpoint', () => {
  (PROMETHEUS ? test : test.skip)(
    'up == 1 for an OpenMetrics app with exemplars and for a text app',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prom-'));
      const port = await freePort();
      const config = [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        'scrape_configs:',
        '  - job_name: openmetrics',
        '    metrics_path: /stats/prometheus',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${om.port}']`,
        '  - job_name: text',
        '    metrics_path: /stats/prometheus',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${text.port}']`,
        '',
      ].join('\n');
      fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
      let child: ChildProcess | undefined;
      let log = '';
      try {
        child = spawn(
          PROMETHEUS as string,
          [
            `--config.file=${path.join(dir, 'prometheus.yml')}`,
            `--storage.tsdb.path=${path.join(dir, 'data')}`,
            `--web.listen-address=127.0.0.1:${port}`,
            '--log.level=warn',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
        child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
        const exited = new Promise<void>((resolve) => child?.once('exit', () => resolve()));

        const query = async (q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
          const r = await fetch(port, `/api/v1/query?query=${encodeURIComponent(q)}`);
          if (r.status !== 200) return [];
          return (JSON.parse(r.text) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
        };
        const upOf = (rows: { metric: Record<string, string>; value: [number, string] }[], job: string) =>
          rows.find((x) => x.metric.job === job)?.value[1];

        // Poll the query API until both jobs were scraped successfully (deadline, no sleeps).
        const deadline = Date.now() + 30_000;
        let up: { metric: Record<string, string>; value: [number, string] }[] = [];
        while (Date.now() < deadline) {
          if (child.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
          up = await query('up').catch(() => []);
          if (upOf(up, 'openmetrics') === '1' && upOf(up, 'text') === '1') break;
          // Poll interval, cut short if Prometheus exits.
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, 200)))]);
          clearTimeout(timer);
        }
        expect({ openmetrics: upOf(up, 'openmetrics'), text: upOf(up, 'text') }).toEqual({ openmetrics: '1', text: '1' });

        // Samples of all three sources arrived, for both jobs.
        for (const job of ['openmetrics', 'text']) {
          expect((await query(`istio_agent_scrapes_total{job="${job}"}`)).length).toBe(1);
          expect((await query(`istio_requests_total{job="${job}"}`)).length).toBe(7);
          expect(Number((await query(`scrape_samples_scraped{job="${job}"}`))[0]?.value[1])).toBeGreaterThan(773);
        }
        expect((await query('rpc_durations_histogram_seconds_count{job="openmetrics"}')).length).toBe(1);
        expect((await query('go_goroutines{job="text"}')).length).toBe(1);
        // The agent's process and Node.js families, as Prometheus stored them (a histogram as its
        // _bucket/_sum/_count series). Two labelled families may have no series yet, until a label
        // value exists: `nodejs_active_requests{type}` (a pending libuv request) and
        // `nodejs_gc_duration_seconds{kind}` (a GC observed since the registry was made).
        const seriesNames = (families: typeof DEFAULT_FAMILIES) =>
          families.flatMap(([name, type]) => (type === 'histogram' ? ['_bucket', '_count', '_sum'].map((x) => name + x) : [name])).sort();
        const mayBeEmpty = ['istio_agent_nodejs_active_requests', 'istio_agent_nodejs_gc_duration_seconds'];
        const required = seriesNames(DEFAULT_FAMILIES.filter(([name]) => !mayBeEmpty.includes(name)));
        const optional = seriesNames(DEFAULT_FAMILIES.filter(([name]) => mayBeEmpty.includes(name)));
        for (const job of ['openmetrics', 'text']) {
          const rows = await query(`group by (__name__) ({__name__=~"istio_agent_(process|nodejs)_.+",job="${job}"})`);
          const names = rows.map((r) => r.metric.__name__ as string).sort();
          expect(names.filter((n) => !optional.includes(n))).toEqual(required);
        }
        // Nothing failed on the agent's side either.
        expect((await query('sum(istio_agent_scrape_failures_total)'))[0]?.value[1]).toBe('0');

        child.kill('SIGTERM');
        await exited;
      } finally {
        if (child && child.exitCode === null && child.signalCode === null) {
          const gone = new Promise<void>((resolve) => child?.once('exit', () => resolve()));
          child.kill('SIGKILL');
          await gone;
        }
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    45_000,
  );

  (PROMTOOL ? test : test.skip)('promtool check metrics accepts the merged text body (0 = clean, 3 = lint warnings only)', async () => {
    const r = await fetch(text.port, '/stats/prometheus');
    expect(r.headers['content-type']).toBe(TEXT_CT);
    const check = spawnSync(PROMTOOL as string, ['check', 'metrics'], { input: r.body, encoding: 'utf8' });
    expect([0, 3]).toContain(check.status);
    expect(check.stdout + check.stderr).not.toMatch(/error while linting|parse error|unexpected end/i);
    // The capture as stored (no final newline) is what promtool rejects; the merged body is fixed up.
    const raw = spawnSync(PROMTOOL as string, ['check', 'metrics'], { input: fixture(ENVOY_FIXTURE), encoding: 'utf8' });
    expect(raw.status).toBe(1);
  });
});
