/**
 * The double's lifecycle against Istio's real bootstrap (test/fixtures): INITIALIZING while
 * ADS is configured and no config has arrived, LIVE once CDS and LDS arrive (faked), /ready
 * transitions, health-check failure → DRAINING, the LIVE and workers delays, SIGTERM/SIGINT,
 * /quitquitquit, parent-watch, and the record file.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import {
  disposeTrackedDoubles,
  startTrackedDouble,
  ENVOY_DOUBLE_BIN,
  goldenBootstrap,
  minimalBootstrap,
  parseStats,
  request,
  waitUntil,
} from '../support/envoy-double-harness.js';
import { freePort } from '../support/ports.js';
import { processAlive } from '../support/proc.js';

afterEach(disposeTrackedDoubles);
const start = startTrackedDouble;

const READINESS_CONFIG = '/stats?usedonly&filter=^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$';
const READINESS_LIVE = '/stats?usedonly&filter=^(server\\.state|listener_manager\\.workers_started)';

describe('lifecycle with Istio\'s bootstrap', () => {
  test('ADS configured: INITIALIZING until CDS and LDS arrive, then LIVE with workers started', async () => {
    const adminPort = await freePort();
    const d = start({ bootstrap: goldenBootstrap({ adminPort, agentPort: 1 }), args: ['--concurrency', '2', '-l', 'info'] });
    await d.waitForState('INITIALIZING', (s) => s.state === 'INITIALIZING');
    expect(await d.admin('GET', '/ready')).toMatchObject({ status: 503, body: 'INITIALIZING\n' });
    expect((await d.admin('GET', READINESS_CONFIG)).body).toBe('');
    expect((await d.admin('GET', READINESS_LIVE)).body).toBe('server.state: 3\n');
    // A real Envoy lists stats it never wrote when usedonly is absent.
    expect((await d.admin('GET', '/stats?filter=cds\\.update_success')).body).toBe('cluster_manager.cds.update_success: 0\n');

    await d.control({ fakeXds: true });
    await d.live();
    expect(await d.admin('GET', '/ready')).toMatchObject({ status: 200, body: 'LIVE\n' });
    expect((await d.admin('GET', READINESS_CONFIG)).body).toBe('cluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\n');
    expect((await d.admin('GET', READINESS_LIVE)).body).toBe('listener_manager.workers_started: 1\nserver.state: 0\n');
    expect(d.stderr).toMatch(/\tinfo\tenvoy main \S+:\d+\tall dependencies initialized\. starting workers\tthread=\d+\n/);
  });

  test('standalone (no ADS): LIVE as soon as listeners are bound, quickly', async () => {
    const adminPort = await freePort();
    const t0 = Date.now();
    const d = start({ bootstrap: goldenBootstrap({ adminPort, agentPort: 1, standalone: true }) });
    const s = await d.live();
    const elapsed = Date.now() - t0;
    // Process start included; the double itself needs a few ms (benchmarks care, SPEC §11).
    expect(elapsed).toBeLessThan(1500);
    expect(s.admin.port).toBe(adminPort);
    expect(Object.keys(s.listeners)).toEqual(['0.0.0.0_15090', '0.0.0.0_15021']);
    expect(await d.admin('GET', '/ready')).toMatchObject({ status: 200, body: 'LIVE\n' });
    // No dynamic_resources → no cds/lds stats at all.
    expect((await d.admin('GET', '/stats?filter=cds|lds')).body).toBe('');
  });

  test('rejected CDS/LDS still complete initialization (Envoy goes LIVE; Istio\'s readiness reports the rejection)', async () => {
    const adminPort = await freePort();
    const d = start({ bootstrap: goldenBootstrap({ adminPort, agentPort: 1 }), env: { ENVOY_DOUBLE_CDS_REJECTED: '1', ENVOY_DOUBLE_LDS_REJECTED: '2' } });
    await d.live();
    expect((await d.admin('GET', READINESS_CONFIG)).body).toBe('cluster_manager.cds.update_rejected: 1\nlistener_manager.lds.update_rejected: 2\n');
  });
});

describe('lifecycle knobs and transitions', () => {
  test('LIVE delay: INITIALIZING first, LIVE after the delay', async () => {
    const t0 = Date.now();
    const d = start({ env: { ENVOY_DOUBLE_LIVE_DELAY_MS: '400' } });
    await d.waitForState('INITIALIZING', (s) => s.state === 'INITIALIZING');
    expect((await d.admin('GET', '/ready')).status).toBe(503);
    await d.live();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
  });

  test('workers delay: LIVE before workers_started; connections wait in the accept queue until workers start', async () => {
    const upstream = http.createServer((req, res) => res.end(`upstream saw ${req.url}`));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    try {
      const port = (upstream.address() as net.AddressInfo).port;
      const d = start({
        bootstrap: {
          ...minimalBootstrap(),
          static_resources: {
            clusters: [{ name: 'up', load_assignment: { cluster_name: 'up', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] } }],
            listeners: [
              {
                name: 'l',
                address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
                filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { stat_prefix: 'l', route_config: { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'up' } }] }] } } }] }],
              },
            ],
          },
        },
        env: { ENVOY_DOUBLE_WORKERS_DELAY_MS: '500' },
      });
      const s = await d.waitForState('LIVE', (x) => x.state === 'LIVE');
      expect(s.workersStarted).toBe(false);
      expect((await d.admin('GET', READINESS_LIVE)).body).toBe('server.state: 0\n');
      const sent = Date.now();
      const res = await request({ port: d.listenerPort('l'), path: '/queued' });
      expect(res).toMatchObject({ status: 200, body: 'upstream saw /queued' });
      expect(d.readState()?.workersStarted).toBe(true);
      expect(Date.now() - sent).toBeGreaterThan(100);
      expect((await d.admin('GET', READINESS_LIVE)).body).toBe('listener_manager.workers_started: 1\nserver.state: 0\n');
    } finally {
      upstream.close();
    }
  });

  test('never LIVE until the control file releases it', async () => {
    const d = start({ env: { ENVOY_DOUBLE_NEVER_LIVE: '1' } });
    await d.waitForState('INITIALIZING', (s) => s.state === 'INITIALIZING');
    await d.control({ neverLive: true });
    expect((await d.admin('GET', '/ready')).body).toBe('INITIALIZING\n');
    await d.control({ neverLive: false });
    await d.live();
  });

  test('/healthcheck/fail → DRAINING (503, server.state 1, server.live 0); /healthcheck/ok → LIVE; control state override', async () => {
    const d = start();
    await d.live();
    expect(await d.admin('POST', '/healthcheck/fail')).toMatchObject({ status: 200, body: 'OK\n' });
    expect(await d.admin('GET', '/ready')).toMatchObject({ status: 503, body: 'DRAINING\n' });
    const stats = parseStats((await d.admin('GET', '/stats?usedonly&filter=^server\\.(state|live)$')).body);
    expect(Object.fromEntries(stats)).toEqual({ 'server.live': 0, 'server.state': 1 });
    expect((await d.admin('POST', '/healthcheck/ok')).status).toBe(200);
    expect(await d.admin('GET', '/ready')).toMatchObject({ status: 200, body: 'LIVE\n' });
    expect((await d.admin('GET', '/healthcheck/fail')).status).toBe(405);

    await d.control({ state: 'PRE_INITIALIZING' });
    expect(await d.admin('GET', '/ready')).toMatchObject({ status: 503, body: 'PRE_INITIALIZING\n' });
    expect(JSON.parse((await d.admin('GET', '/server_info')).body).state).toBe('PRE_INITIALIZING');
    await d.control({});
    expect((await d.admin('GET', '/ready')).body).toBe('LIVE\n');
  });

  test('stats flush emulation: server.state is absent under usedonly until the first flush or LIVE', async () => {
    const d = start({ env: { ENVOY_DOUBLE_STATS_FLUSH_MS: '300', ENVOY_DOUBLE_NEVER_LIVE: '1' } });
    await d.waitForState('INITIALIZING', (s) => s.state === 'INITIALIZING');
    expect((await d.admin('GET', READINESS_LIVE)).body).toBe('');
    await waitUntil('first stats flush', async () => (await d.admin('GET', READINESS_LIVE)).body === 'server.state: 3\n');
  });
});

describe('exits', () => {
  test('SIGTERM and SIGINT: exit 0 promptly, exit recorded, sockets closed', async () => {
    const a = start();
    const b = start();
    const [sa] = await Promise.all([a.live(), b.live()]);
    a.signal('SIGTERM');
    b.signal('SIGINT');
    const t0 = Date.now();
    expect(await a.waitExit(2000)).toEqual({ code: 0, signal: null });
    expect(await b.waitExit(2000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(a.stderr).toContain('caught SIGTERM');
    expect(b.stderr).toContain('caught SIGINT');
    expect(a.records().at(-1)).toMatchObject({ pid: a.pid, event: 'exit', code: 0 });
    expect(a.readState()?.state).toBe('EXITED');
    await expect(request({ port: sa.admin.port, path: '/ready' })).rejects.toThrow(/ECONNREFUSED/);
  });

  test('POST /quitquitquit answers 200 OK then exits 0; GET is refused with 405', async () => {
    const d = start();
    await d.live();
    expect(await d.admin('GET', '/quitquitquit')).toMatchObject({ status: 405, body: 'Method GET not allowed, POST required.' });
    expect(await d.admin('POST', '/quitquitquit')).toMatchObject({ status: 200, body: 'OK\n' });
    expect(await d.waitExit(2000)).toEqual({ code: 0, signal: null });
  });

  test('parent-watch: the double exits within ~1 s of its parent being SIGKILLed', async () => {
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'envoy-double-parent-'));
    try {
      fs.writeFileSync(path.join(dir, 'b.json'), JSON.stringify(minimalBootstrap()));
      // The intermediate parent spawns the double, reports its pid, then waits forever.
      const script = `
        const { spawn } = require('node:child_process');
        const c = spawn(${JSON.stringify(ENVOY_DOUBLE_BIN)}, ['-c', 'b.json'], { stdio: 'ignore', env: { PATH: process.env.PATH, ENVOY_DOUBLE_STATE: 'state.json' } });
        console.log(c.pid);
        setInterval(() => {}, 1000);`;
      const parent = spawn(process.execPath, ['-e', script], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      parent.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      const pid = await waitUntil('the grandchild pid', () => (/^\d+\n/.test(out) ? Number(out.trim()) : undefined));
      await waitUntil('the double to start', () => fs.existsSync(path.join(dir, 'state.json')));
      const parentExit = new Promise((r) => parent.once('exit', r));
      parent.kill('SIGKILL');
      await parentExit;
      const t0 = Date.now();
      await waitUntil('the orphaned double to exit', () => !processAlive(pid), 2000);
      expect(Date.now() - t0).toBeLessThan(1200);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the record file: start entry with pid, ppid, argv, env and cwd; exit entry', async () => {
    const d = start({ args: ['--concurrency', '3'], env: { SOME_VAR: 'v1' } });
    await d.live();
    d.signal('SIGTERM');
    await d.waitExit();
    const [startRec, exitRec, ...rest] = d.records();
    expect(rest).toEqual([]);
    expect(startRec).toMatchObject({ pid: d.pid, ppid: process.pid, cwd: fs.realpathSync(d.dir) });
    expect(startRec?.argv).toEqual([ENVOY_DOUBLE_BIN, '-c', path.join(d.dir, 'envoy.json'), '--concurrency', '3']);
    expect((startRec?.env as Record<string, string>).SOME_VAR).toBe('v1');
    expect(new Date(String(startRec?.startedAt)).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(exitRec).toMatchObject({ pid: d.pid, event: 'exit', code: 0 });
  });
});

describe('bootstrap merging and formats', () => {
  test('YAML file + --config-yaml merged like proto MergeFrom (repeated fields appended, scalars replaced)', async () => {
    const yaml = [
      'node: { id: from-file, cluster: c1 }',
      'admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }',
      'static_resources:',
      '  listeners:',
      '  - name: from-file',
      '    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }',
      '    filter_chains: [ { filters: [] } ]',
    ].join('\n');
    const override = JSON.stringify({
      node: { id: 'from-flag' },
      static_resources: { listeners: [{ name: 'from-flag', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [{ filters: [] }] }] },
    });
    const d = start({ files: { 'envoy.yaml': yaml }, rawArgs: ['-c', 'envoy.yaml', '--config-yaml', override] });
    const s = await d.live();
    expect(Object.keys(s.listeners)).toEqual(['from-file', 'from-flag']);
    const info = JSON.parse((await d.admin('GET', '/server_info')).body);
    expect(info.node).toMatchObject({ id: 'from-flag', cluster: 'c1', user_agent_name: 'envoy' });
    const dump = JSON.parse((await d.admin('GET', '/config_dump')).body);
    expect(dump.configs[0]['@type']).toBe('type.googleapis.com/envoy.admin.v3.BootstrapConfigDump');
    expect(dump.configs[0].bootstrap.node.id).toBe('from-flag');
  });
});
