/**
 * The double's admin API: /stats usedonly and filter semantics (raw and percent-encoded
 * queries), /server_info and /config_dump shapes, /stats/prometheus (own stats, fixture,
 * streamed huge body), routing errors, drain_listeners, slow and hanging admin.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  disposeTrackedDoubles,
  startTrackedDouble,
  canConnect,
  goldenBootstrap,
  httpListener,
  minimalBootstrap,
  REPO,
  request,
  waitUntil,
  type DoubleProcess,
} from '../support/envoy-double-harness.js';
import { freePort } from '../support/ports.js';

afterEach(disposeTrackedDoubles);
const start = startTrackedDouble;

describe('/stats', () => {
  test('usedonly and filter: raw and percent-encoded queries agree; the regex is a search; output sorted', async () => {
    const d = start({ env: { ENVOY_DOUBLE_WORKERS_DELAY_MS: '100000' } });
    await d.waitForState('LIVE', (s) => s.state === 'LIVE');
    const raw = '/stats?usedonly&filter=^(server\\.state|listener_manager\\.workers_started)';
    const encoded = `/stats?usedonly&filter=${encodeURIComponent('^(server\\.state|listener_manager\\.workers_started)')}`;
    // Never written: workers_started is absent under usedonly, present (0) without it.
    expect((await d.admin('GET', raw)).body).toBe('server.state: 0\n');
    expect((await d.admin('GET', encoded)).body).toBe('server.state: 0\n');
    expect((await d.admin('GET', '/stats?filter=^(server\\.state|listener_manager\\.workers_started)')).body).toBe('listener_manager.workers_started: 0\nserver.state: 0\n');
    // Partial match (search), and `$` anchors.
    expect((await d.admin('GET', '/stats?usedonly&filter=erver.liv')).body).toBe('server.live: 1\n');
    expect((await d.admin('GET', '/stats?usedonly&filter=total_listeners_active$')).body).toBe('listener_manager.total_listeners_active: 0\n');
    const all = (await d.admin('GET', '/stats')).body.trimEnd().split('\n');
    expect(all.length).toBeGreaterThan(10);
    expect([...all].sort()).toEqual(all);
    for (const line of all) expect(line).toMatch(/^[\w.;\-[\]]+: \d+$/);
    expect(await d.admin('GET', '/stats?filter=(unclosed')).toMatchObject({ status: 400, body: 'Invalid re2 regex' });
    const json = JSON.parse((await d.admin('GET', '/stats?format=json&filter=^server\\.live$')).body);
    expect(json).toEqual({ stats: [{ name: 'server.live', value: 1 }] });
  });

  test('Istio\'s stats_matcher decides which stats exist (listener stats need a downstream_cx_active suffix)', async () => {
    const adminPort = await freePort();
    const istio = goldenBootstrap({ adminPort, agentPort: 1, standalone: true });
    const withSuffix = goldenBootstrap({ adminPort: await freePort(), agentPort: 1, standalone: true });
    withSuffix.stats_config.stats_matcher.inclusion_list.patterns.push({ suffix: 'downstream_cx_active' });
    const a = start({ bootstrap: istio });
    const b = start({ bootstrap: withSuffix });
    await Promise.all([a.live(), b.live()]);
    expect((await a.admin('GET', '/stats?filter=downstream_cx_active$')).body).toBe('');
    const names = (await b.admin('GET', '/stats?filter=downstream_cx_active$')).body.split('\n').filter(Boolean).map((l) => l.split(':')[0]);
    const p15021 = b.listenerPort('0.0.0.0_15021');
    expect(names).toEqual(
      expect.arrayContaining([`listener.127.0.0.1_${p15021}.downstream_cx_active`, `listener.127.0.0.1_${p15021}.worker_0.downstream_cx_active`, 'listener.admin.downstream_cx_active', 'http.agent.downstream_cx_active']),
    );
    // Stats outside the inclusion list never appear, even after being written.
    expect((await a.admin('GET', '/stats?filter=^http\\.admin')).body).toBe('');
  });
});

describe('/server_info and /config_dump', () => {
  test('server_info has the shape of Envoy\'s (docs sample keys), with our flags and node', async () => {
    const d = start({ args: ['--concurrency', '2', '--drain-time-s', '45', '--drain-strategy', 'immediate', '--disable-hot-restart', '-l', 'warning'], bootstrap: { ...minimalBootstrap(), node: { id: 'sidecar~1.2.3.4~x.y~y.svc', cluster: 'x.y' } } });
    await d.live();
    const res = await d.admin('GET', '/server_info');
    expect(res.headers['content-type']).toBe('application/json');
    const info = JSON.parse(res.body);
    const sample = JSON.parse(fs.readFileSync(path.join(REPO, 'test/fixtures/envoy/server_info.envoy-docs.json'), 'utf8'));
    for (const k of Object.keys(sample)) expect(info).toHaveProperty(k);
    for (const k of Object.keys(sample.command_line_options)) expect(info.command_line_options).toHaveProperty(k);
    expect(info.state).toBe('LIVE');
    expect(info.version).toMatch(/^[0-9a-f]{40}\/1\.\d+\.\d+\/Clean\/RELEASE\/BoringSSL$/);
    expect(info.command_line_options).toMatchObject({ concurrency: 2, drain_time: '45s', drain_strategy: 'Immediate', disable_hot_restart: true, log_level: 'warning', mode: 'Serve' });
    expect(info.node).toMatchObject({ id: 'sidecar~1.2.3.4~x.y~y.svc', cluster: 'x.y', user_agent_name: 'envoy' });
    expect(info.uptime_current_epoch).toMatch(/^\d+s$/);
  });
});

describe('/stats/prometheus', () => {
  test('own stats rendered Envoy-style: tags extracted, `{}` for no labels, TYPE lines', async () => {
    const d = start();
    await d.live();
    const res = await d.admin('GET', '/stats/prometheus');
    expect(res.status).toBe(200);
    expect(res.body).toContain('# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n');
    expect(res.body).toMatch(/# TYPE envoy_listener_admin_downstream_cx_total counter\nenvoy_listener_admin_downstream_cx_total\{\} [1-9]/);
    for (const line of res.body.trimEnd().split('\n')) expect(line).toMatch(/^(# TYPE envoy_\w+ (counter|gauge)|envoy_\w+\{([a-z_]+="[^"]*",?)*\} \d+)$/);
  });

  test('a fixture file is served as is; usedonly/filter apply to own stats', async () => {
    const fixture = path.join(REPO, 'test/fixtures/envoy/stats-prometheus.istio-proxy.datadog.txt');
    const d = start({ env: { ENVOY_DOUBLE_PROM_FIXTURE: fixture } });
    await d.live();
    expect((await d.admin('GET', '/stats/prometheus')).body).toBe(fs.readFileSync(fixture, 'utf8'));
    await d.control({ promFixture: '' });
    expect((await d.admin('GET', '/stats/prometheus?usedonly&filter=^server\\.live$')).body).toBe('# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n');
  });

  test('a huge body (ENVOY_DOUBLE_PROM_BYTES) is streamed: valid lines, about the size asked for', async () => {
    const target = 8 * 1024 * 1024;
    const d = start({ env: { ENVOY_DOUBLE_PROM_BYTES: String(target) } });
    await d.live();
    const res = await d.admin('GET', '/stats/prometheus', 10_000);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    const size = Buffer.byteLength(res.body);
    expect(size).toBeGreaterThanOrEqual(target);
    expect(size).toBeLessThan(target + 128 * 1024);
    const lines = res.body.trimEnd().split('\n');
    expect(lines.filter((l) => l === '# TYPE envoy_double_padding counter')).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^envoy_double_padding\{envoy_double_series="\d+"\} 0$/);
  });
});

describe('routing', () => {
  test('unknown path → 404 with the help text; mutating endpoints need POST (405)', async () => {
    const d = start();
    await d.live();
    const r = await d.admin('GET', '/nope');
    expect(r.status).toBe(404);
    expect(r.body).toMatch(/^invalid path\. admin commands are:\n {2}\/: Admin home page\n/);
    expect(r.body).toContain('  /drain_listeners (POST): drain listeners\n');
    for (const p of ['/healthcheck/fail', '/drain_listeners?graceful', '/reset_counters']) {
      expect(await d.admin('PUT', p)).toMatchObject({ status: 405, body: 'Method PUT not allowed, POST required.' });
    }
    expect((await d.admin('GET', '/ready?x=1')).status).toBe(200);
  });
});

describe('POST /drain_listeners', () => {
  function drainBootstrap(): Record<string, unknown> {
    return { ...minimalBootstrap(), static_resources: { listeners: [httpListener('inbound', { direction: 'INBOUND' }), httpListener('outbound', { direction: 'OUTBOUND' }), httpListener('plain', {})] } };
  }

  test('inboundonly without graceful: inbound listeners stop at once, others keep listening, Envoy keeps running', async () => {
    const d = start({ bootstrap: drainBootstrap() });
    await d.live();
    const [inb, outb, plain] = ['inbound', 'outbound', 'plain'].map((n) => d.listenerPort(n)) as [number, number, number];
    expect(await d.admin('POST', '/drain_listeners?inboundonly')).toMatchObject({ status: 200, body: 'OK\n' });
    expect(await canConnect(inb)).toBe(false);
    expect(await canConnect(outb)).toBe(true);
    expect(await canConnect(plain)).toBe(true);
    expect((await d.admin('GET', '/ready')).body).toBe('LIVE\n');
    expect(d.readState()?.listeners.inbound?.stopped).toBe(true);
    expect((await d.admin('POST', '/drain_listeners')).status).toBe(200);
    expect(await canConnect(outb)).toBe(false);
    expect(await canConnect(plain)).toBe(false);
    expect((await d.admin('GET', '/stats?usedonly&filter=listener_stopped')).body).toBe('listener_manager.listener_stopped: 3\n');
    expect(d.exit).toBeUndefined();
  });

  test('graceful: listeners keep accepting for --drain-time-s, then stop (unless skip_exit); skip_exit alone is 400', async () => {
    const a = start({ bootstrap: drainBootstrap(), args: ['--drain-time-s', '1'] });
    const b = start({ bootstrap: drainBootstrap(), args: ['--drain-time-s', '1'] });
    await Promise.all([a.live(), b.live()]);
    expect(await b.admin('POST', '/drain_listeners?skip_exit')).toMatchObject({ status: 400, body: 'skip_exit requires graceful\n' });

    const t0 = Date.now();
    expect((await a.admin('POST', '/drain_listeners?inboundonly&graceful')).body).toBe('OK\n');
    expect((await b.admin('POST', '/drain_listeners?inboundonly&graceful&skip_exit')).body).toBe('OK\n');
    expect(await canConnect(a.listenerPort('inbound'))).toBe(true);
    expect(a.readState()?.draining).toBe('INBOUND');
    // A second graceful drain while draining is a no-op.
    expect((await a.admin('POST', '/drain_listeners?graceful')).body).toBe('OK\n');
    await a.waitForState('inbound stopped', (s) => s.listeners.inbound?.stopped === true, 3000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(await canConnect(a.listenerPort('inbound'))).toBe(false);
    expect(await canConnect(a.listenerPort('outbound'))).toBe(true);
    // b drained with skip_exit: after the drain time its listeners still accept.
    await waitUntil('drain time over', () => Date.now() - t0 > 1300, 3000, 50);
    expect(await canConnect(b.listenerPort('inbound'))).toBe(true);
    expect(b.readState()?.listeners.inbound?.stopped).toBe(false);
  });

  test('a drain closes idle connections on the drained listeners; slow drain holds them open', async () => {
    const bootstrap = drainBootstrap();
    const fast = start({ bootstrap });
    const slow = start({ bootstrap, env: { ENVOY_DOUBLE_SLOW_DRAIN: '1' } });
    await Promise.all([fast.live(), slow.live()]);
    const held = await Promise.all(
      [fast, slow].map(
        (d) =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port: d.listenerPort('inbound') }, () => resolve(s));
            s.on('error', reject);
          }),
      ),
    );
    try {
      const active = async (d: DoubleProcess): Promise<string> => (await d.admin('GET', '/stats?usedonly&filter=^listener\\..*\\.downstream_cx_active$')).body;
      const inboundStat = (d: DoubleProcess): string => `listener.127.0.0.1_${d.listenerPort('inbound')}.downstream_cx_active`;
      await waitUntil('fast: 1 active', async () => (await active(fast)).includes(`${inboundStat(fast)}: 1\n`));
      await waitUntil('slow: 1 active', async () => (await active(slow)).includes(`${inboundStat(slow)}: 1\n`));
      const closed = new Promise((r) => held[0]?.once('close', r));
      await fast.admin('POST', '/drain_listeners?inboundonly&graceful');
      await slow.admin('POST', '/drain_listeners?inboundonly&graceful');
      await closed;
      await waitUntil('fast: 0 active', async () => (await active(fast)).includes(`${inboundStat(fast)}: 0\n`));
      expect(await active(slow)).toContain(`${inboundStat(slow)}: 1\n`);
      expect(held[1]?.destroyed).toBe(false);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});

describe('admin faults', () => {
  test('hanging admin: connections are accepted and never answered; SIGTERM still exits promptly', async () => {
    const d = start({ env: { ENVOY_DOUBLE_ADMIN_HANG: '1' } });
    const s = await d.live();
    expect(await canConnect(s.admin.port)).toBe(true);
    await expect(request({ port: s.admin.port, path: '/ready', timeoutMs: 300 })).rejects.toThrow(/timed out/);
    // The listener routed to admin hangs too (as a real Envoy with a hung admin thread would).
    d.signal('SIGTERM');
    expect(await d.waitExit(2000)).toEqual({ code: 0, signal: null });
  });

  test('slow admin answers after the delay; the control file can switch the delay off', async () => {
    const d = start({ env: { ENVOY_DOUBLE_ADMIN_DELAY_MS: '300' } });
    await d.live();
    let t0 = Date.now();
    expect((await d.admin('GET', '/ready')).body).toBe('LIVE\n');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    await d.control({ adminDelayMs: 0 });
    t0 = Date.now();
    await d.admin('GET', '/ready');
    expect(Date.now() - t0).toBeLessThan(250);
  });
});
