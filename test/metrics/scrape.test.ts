/**
 * The merged metrics endpoint end to end over real sockets: a StatusServer, a loopback HTTP
 * server standing in for Envoy (serving a real istio-proxy capture), and app servers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import http, { request as httpRequest } from 'node:http';
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
  streamLines,
  type TestServer,
} from '../support/metrics-servers.js';
import { parseExposition } from '../support/metrics-parse.js';
import { startStatus, type StatusHarness } from '../support/status-harness.js';
import { freePort } from '../support/ports.js';
import type { AgentMetrics } from '../../src/metrics/registry.js';
import { DEFAULT_APP_BODY_LIMIT } from '../../src/metrics/scrape.js';

const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const SCRAPE_HEADERS = { accept: PROMETHEUS_ACCEPT, 'user-agent': 'Prometheus/2.42.0', 'x-prometheus-scrape-timeout-seconds': '10' };

async function counter(metrics: AgentMetrics, name: 'scrapeFailures' | 'duplicateFamilies', type: string): Promise<number> {
  const got = await metrics[name].get();
  return got.values.find((v) => v.labels.type === type)?.value ?? 0;
}

let envoy: TestServer;
const cleanup: (() => Promise<void>)[] = [];
const track = <T extends { close(): Promise<void> }>(x: T): T => {
  cleanup.push(() => x.close());
  return x;
};

beforeAll(async () => {
  envoy = await startServer(serveBody(fixture(ENVOY_FIXTURE), 'text/plain; version=0.0.4; charset=utf-8'));
});
afterAll(async () => {
  await envoy.close();
});
afterEach(async () => {
  while (cleanup.length > 0) await (cleanup.pop() as () => Promise<void>)();
});

const ENVOY_TEXT = fixture(ENVOY_FIXTURE).toString('utf8');

/** `toContain` without dumping a 400 KB body into the failure message. */
function expectIncludes(text: string, yes: boolean, needle: string): void {
  if (text.includes(needle) !== yes) throw new Error(`expected the body ${yes ? 'to include' : 'not to include'} ${JSON.stringify(needle.slice(0, 200))}`);
}

function expectAgentAndEnvoy(text: string): void {
  expectIncludes(text, true, '# TYPE istio_agent_scrapes_total counter');
  expectIncludes(text, true, `${ENVOY_TEXT}\n`);
}

describe('merged metrics: sources, negotiation, forwarding', () => {
  test('agent, then Envoy, then an OpenMetrics app (with exemplars): one valid OpenMetrics body', async () => {
    const app = track(await startServer(serveBody(fixture(OPENMETRICS_APP_FIXTURE), OPENMETRICS_CT)));
    const h: StatusHarness = track(await startStatus({ envoyPort: envoy.port, app: { port: app.port, path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus?usedonly&filter=istio', { headers: SCRAPE_HEADERS });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    const agentAt = r.text.indexOf('istio_agent_scrapes_total 1');
    const envoyAt = r.text.indexOf('# TYPE envoy_cluster_client_ssl_socket_factory_ssl_context_update_by_sds counter');
    const appAt = r.text.indexOf('# dummyID="17783"'.slice(2));
    expect(agentAt).toBeGreaterThanOrEqual(0);
    expect(envoyAt).toBeGreaterThan(agentAt);
    expect(appAt).toBeGreaterThan(envoyAt);
    expectAgentAndEnvoy(r.text);
    expect(r.text.endsWith('rpc_requests_created{service="uniform"} 1.7268398130168471e+09\n# EOF\n')).toBe(true);
    parseExposition(r.text, true);

    // What the sources were asked for.
    const toEnvoy = envoy.requests.at(-1) as { url: string; headers: http.IncomingHttpHeaders };
    expect(toEnvoy.url).toBe('/stats/prometheus?usedonly&filter=istio');
    expect(toEnvoy.headers.accept).toBe('text/plain; q=0.1; version=0.0.4');
    expect(toEnvoy.headers['user-agent']).toBe('Prometheus/2.42.0');
    expect(toEnvoy.headers['x-prometheus-scrape-timeout-seconds']).toBe('10');
    const toApp = app.requests.at(-1) as { url: string; headers: http.IncomingHttpHeaders };
    expect(toApp.url).toBe('/metrics');
    expect(toApp.headers.accept).toBe(
      'application/openmetrics-text; q=0.3; version=1.0.0,application/openmetrics-text; q=0.2; version=0.0.1,text/plain; q=0.1; version=0.0.4',
    );
    expect(await counter(h.metrics, 'scrapeFailures', 'envoy')).toBe(0);
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(0);
  });

  test('a text app gives a text body; /metrics is the same endpoint; gzip is streamed when accepted', async () => {
    const app = track(await startServer(serveBody(fixture(TEXT_APP_FIXTURE), TEXT_CT)));
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: app.port, path: '/metrics' } }));
    const plain = await fetch(h.port, '/metrics', { headers: SCRAPE_HEADERS });
    expect(plain.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expectAgentAndEnvoy(plain.text);
    expectIncludes(plain.text, true, 'go_memstats_alloc_bytes');
    parseExposition(plain.text, false);
    const gz = await fetch(h.port, '/stats/prometheus', { headers: { ...SCRAPE_HEADERS, 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers['content-length']).toBeUndefined();
    parseExposition(gz.text, false);
    expect(gz.text.replace(/istio_agent_scrapes_total \d+/, '')).toBe(plain.text.replace(/istio_agent_scrapes_total \d+/, ''));
    expectIncludes(gz.text, true, 'istio_agent_scrapes_total 2');
  });

  test('a family emitted by Envoy and again by the app is dropped from the app and counted', async () => {
    // The app exposes some of the same Envoy/Istio families (e.g. it is itself an Envoy).
    const dup = '# TYPE istio_requests_total counter\nistio_requests_total{reporter="source"} 7\n# TYPE app_own gauge\napp_own 1\n';
    const app = track(await startServer(serveBody(dup, TEXT_CT)));
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: app.port, path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: SCRAPE_HEADERS });
    expect(r.status).toBe(200);
    expect(r.text.match(/^# TYPE istio_requests_total /gm)).toHaveLength(1);
    expectIncludes(r.text, false, 'istio_requests_total{reporter="source"} 7');
    expectIncludes(r.text, true, 'app_own 1');
    parseExposition(r.text, false);
    expect(await counter(h.metrics, 'duplicateFamilies', 'application')).toBe(1);
    const next = await fetch(h.port, '/stats/prometheus');
    expectIncludes(next.text, true, 'istio_agent_scrape_duplicate_families_total{type="application"} 1');
  });

  test('without an app the body is agent + Envoy as text', async () => {
    const h = track(await startStatus({ envoyPort: envoy.port }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: SCRAPE_HEADERS });
    expect(r.headers['content-type']).toBe(TEXT_CT);
    expectAgentAndEnvoy(r.text);
    parseExposition(r.text, false);
  });
});

describe('merged metrics: failure matrix (always 200 with what succeeded, failure counted)', () => {
  test('Envoy down', async () => {
    const app = track(await startServer(serveBody(fixture(OPENMETRICS_APP_FIXTURE), OPENMETRICS_CT)));
    const h = track(await startStatus({ envoyPort: await freePort(), app: { port: app.port, path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: SCRAPE_HEADERS });
    expect(r.status).toBe(200);
    expectIncludes(r.text, true, 'istio_agent_scrapes_total 1');
    expectIncludes(r.text, true, 'rpc_durations_histogram_seconds_bucket');
    expectIncludes(r.text, false, 'envoy_');
    parseExposition(r.text, true);
    expect(await counter(h.metrics, 'scrapeFailures', 'envoy')).toBe(1);
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(0);
  });

  test('Envoy answers 503', async () => {
    const bad = track(await startServer(serveBody('no', 'text/plain', 503)));
    const h = track(await startStatus({ envoyPort: bad.port }));
    const r = await fetch(h.port, '/stats/prometheus');
    expect(r.status).toBe(200);
    expectIncludes(r.text, true, 'istio_agent_scrapes_total 1');
    expectIncludes(r.text, false, 'no');
    expect(await counter(h.metrics, 'scrapeFailures', 'envoy')).toBe(1);
  });

  test('app refuses connections', async () => {
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: await freePort(), path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: SCRAPE_HEADERS });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(TEXT_CT);
    expectAgentAndEnvoy(r.text);
    parseExposition(r.text, false);
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(1);
    expect(await counter(h.metrics, 'scrapeFailures', 'envoy')).toBe(0);
  });

  test('app 10 s slow with a 1 s scrape timeout: the scrape returns in ~0.75 s', async () => {
    const slow = track(
      await startServer((_req, res) => {
        const t = setTimeout(() => serveBody('late 1\n')(_req, res), 10_000);
        res.once('close', () => clearTimeout(t));
      }),
    );
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: slow.port, path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: { ...SCRAPE_HEADERS, 'x-prometheus-scrape-timeout-seconds': '1' } });
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(700);
    expect(r.ms).toBeLessThan(1000);
    expectAgentAndEnvoy(r.text);
    expectIncludes(r.text, false, '\nlate 1\n');
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(1);
  });

  test('app body of 100 MB (streamed) is dropped at the 10 MiB cap', async () => {
    const sent = { sent: 0, closed: false };
    const big = track(await startServer(streamLines(100 * 1024 * 1024, sent)));
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: big.port, path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: SCRAPE_HEADERS });
    expect(r.status).toBe(200);
    expectAgentAndEnvoy(r.text);
    expectIncludes(r.text, false, 'app_big');
    parseExposition(r.text, false);
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(1);
    // The agent stopped reading at the cap: the app could only push the cap plus socket buffers.
    const deadline = Date.now() + 5000;
    while (!sent.closed && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    expect(sent.closed).toBe(true);
    expect(sent.sent).toBeLessThan(DEFAULT_APP_BODY_LIMIT + 16 * 1024 * 1024);
  });

  test('app body over a configured cap announced by Content-Length is dropped without reading it', async () => {
    const app = track(await startServer(serveBody(fixture(TEXT_APP_FIXTURE), TEXT_CT)));
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: app.port, path: '/metrics' }, appBodyLimitBytes: 1024 }));
    const r = await fetch(h.port, '/stats/prometheus');
    expectIncludes(r.text, false, 'go_memstats');
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(1);
  });

  test('app answers garbage', async () => {
    const app = track(await startServer(serveBody('<html><body>Oops</body></html>\n', OPENMETRICS_CT)));
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: app.port, path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: SCRAPE_HEADERS });
    expect(r.status).toBe(200);
    expectIncludes(r.text, false, 'Oops');
    expectAgentAndEnvoy(r.text);
    // The app's headers chose OpenMetrics; the body stays valid OpenMetrics without it.
    expect(r.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    parseExposition(r.text, true);
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(1);
  });

  test('app answers 404', async () => {
    const app = track(await startServer(serveBody('not here\n', 'text/plain', 404)));
    const h = track(await startStatus({ envoyPort: envoy.port, app: { port: app.port, path: '/metrics' } }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: SCRAPE_HEADERS });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(TEXT_CT);
    expectAgentAndEnvoy(r.text);
    expectIncludes(r.text, false, 'not here');
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(1);
    // The agent's own metrics are taken at the start of a scrape: the next one shows the first failure.
    const next = await fetch(h.port, '/stats/prometheus');
    expectIncludes(next.text, true, 'istio_agent_scrape_failures_total{type="application"} 1');
    expect(await counter(h.metrics, 'scrapeFailures', 'application')).toBe(2);
    expectIncludes(next.text, true, 'istio_agent_scrape_failures_total{type="envoy"} 0');
    expectIncludes(next.text, true, 'istio_agent_scrapes_total 2');
  });
});

describe('merged metrics: Envoy body failures mid-stream, the scraper leaving', () => {
  /** An "Envoy" that sends `head` (a complete family and a partial line), then `then`. */
  function partialEnvoy(then: 'stall' | 'reset', seen: { closed: boolean }) {
    return (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.write('# TYPE envoy_partial_total counter\nenvoy_partial_total 7\nenvoy_cut_in_the_mid');
      res.on('close', () => (seen.closed = true));
      if (then === 'reset') setImmediate(() => res.socket?.destroy());
    };
  }

  test('Envoy stalls mid-body: cut at the idle deadline, complete lines kept, counted, valid', async () => {
    const seen = { closed: false };
    const stalled = track(await startServer(partialEnvoy('stall', seen)));
    const h = track(await startStatus({ envoyPort: stalled.port }));
    const r = await fetch(h.port, '/stats/prometheus', { headers: { ...SCRAPE_HEADERS, 'x-prometheus-scrape-timeout-seconds': '1' } });
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(700);
    expect(r.ms).toBeLessThan(3000);
    expectIncludes(r.text, true, 'envoy_partial_total 7\n');
    expectIncludes(r.text, false, 'envoy_cut_in_the_mid');
    parseExposition(r.text, false);
    expect(await counter(h.metrics, 'scrapeFailures', 'envoy')).toBe(1);
    // The stalled request was given up (its connection closed), not left open.
    const deadline = Date.now() + 5000;
    while (!seen.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen.closed).toBe(true);
  });

  test('Envoy resets the connection mid-body: complete lines kept, counted, valid', async () => {
    const reset = track(await startServer(partialEnvoy('reset', { closed: false })));
    const h = track(await startStatus({ envoyPort: reset.port }));
    const r = await fetch(h.port, '/stats/prometheus');
    expect(r.status).toBe(200);
    expectIncludes(r.text, true, 'envoy_partial_total 7\n');
    expectIncludes(r.text, false, 'envoy_cut_in_the_mid');
    parseExposition(r.text, false);
    expect(await counter(h.metrics, 'scrapeFailures', 'envoy')).toBe(1);
  });

  test.each([
    ['mid-body', 256 * 1024],
    ['before Envoy answered', 1],
  ])('the scraper goes away (%s): the agent closes the Envoy request; no failure counted', async (when, readBytes) => {
    const sent = { sent: 0, closed: false };
    const stream = streamLines(1024 * 1024 * 1024, sent, 'envoy_big');
    const envoyServer = track(
      await startServer((req, res) => {
        if (when === 'mid-body') stream(req, res);
        else res.on('close', () => (sent.closed = true)); // never answers
      }),
    );
    const h = track(await startStatus({ envoyPort: envoyServer.port }));
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: h.port, path: '/stats/prometheus', agent: false }, (res) => {
        // Read the agent's part (and into Envoy's body), then hang up.
        let got = 0;
        res.on('data', (c: Buffer) => {
          got += c.length;
          if (got >= readBytes && !req.destroyed) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => undefined);
      req.once('error', reject);
      req.end();
    });
    const deadline = Date.now() + 5000;
    while (!sent.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(sent.closed).toBe(true);
    // Backpressure held: "Envoy" pushed far less than its 1 GiB.
    expect(sent.sent).toBeLessThan(64 * 1024 * 1024);
    // A client leaving is not a source failure.
    expect(await counter(h.metrics, 'scrapeFailures', 'envoy')).toBe(0);
  });
});
