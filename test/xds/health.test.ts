/**
 * Health reporting (SPEC §7.2): probe config validation, threshold rules, each check kind
 * against a real server/process, and the prober driving the xDS proxy so the test control
 * plane receives HealthInformation events in SotW and Delta form.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import protobuf from 'protobufjs';
import { ConfigError } from '../../src/errors.js';
import { HealthProber, HealthThresholds, parseReadinessProbe, readinessProbeFromConfig, type ReadinessProbeSpec } from '../../src/xds/health.js';
import { runCheck, type HealthCheck } from '../../src/xds/health-checks.js';
import { XdsProxy } from '../../src/xds/proxy.js';
import { ProbeNetwork } from '../../src/probe/network.js';
import { startServer } from '../support/metrics-servers.js';
import { ControlPlane, testCluster, testListener, type StreamKind } from '../support/control-plane.js';
import { TYPE_URL } from '../support/control-plane-protos.js';
import { seedConfig } from '../support/config.js';
import { FakeEnvoy, captureLogger, tempDir, waitUntil } from './harness.js';

const D = { defaultHost: '10.244.1.7' };

describe('parseReadinessProbe', () => {
  test('Istio defaults: timeout 1s, period 10s, thresholds 1, path /, scheme http, host = first node IP', () => {
    expect(parseReadinessProbe({ httpGet: { port: 8080 } }, D)).toEqual({
      initialDelayMs: 0,
      timeoutMs: 1000,
      periodMs: 10_000,
      successThreshold: 1,
      failureThreshold: 1,
      check: { kind: 'httpGet', scheme: 'http', host: '10.244.1.7', port: 8080, path: '/', headers: [] },
    });
  });

  test('all fields, snake_case and quoted integers accepted', () => {
    const spec = parseReadinessProbe(
      {
        initial_delay_seconds: '2',
        timeoutSeconds: 3,
        periodSeconds: 4,
        successThreshold: 2,
        failure_threshold: 5,
        http_get: { path: 'healthz', port: '8443', host: 'app.local', scheme: 'HTTPS', http_headers: [{ name: 'X-Probe', value: 'istio' }] },
      },
      D,
    );
    expect(spec).toEqual({
      initialDelayMs: 2000,
      timeoutMs: 3000,
      periodMs: 4000,
      successThreshold: 2,
      failureThreshold: 5,
      check: { kind: 'httpGet', scheme: 'https', host: 'app.local', port: 8443, path: 'healthz', headers: [{ name: 'X-Probe', value: 'istio' }] },
    });
  });

  test('tcpSocket, exec, grpc', () => {
    expect(parseReadinessProbe({ tcpSocket: { port: 3306 } }, D).check).toEqual({ kind: 'tcpSocket', host: '10.244.1.7', port: 3306 });
    expect(parseReadinessProbe({ exec: { command: ['cat', '/tmp/ready'] } }, D).check).toEqual({ kind: 'exec', command: ['cat', '/tmp/ready'] });
    expect(parseReadinessProbe({ grpc: { port: 9090, service: 'app' } }, D).check).toEqual({ kind: 'grpc', host: '10.244.1.7', port: 9090, service: 'app' });
  });

  test.each([
    [{}, 'ProxyConfig readinessProbe: expected exactly one of httpGet, tcpSocket, exec, grpc'],
    [{ httpGet: { port: 1 }, tcpSocket: { port: 2 } }, 'got httpGet and tcpSocket'],
    [{ httpGet: { port: 'http' } }, 'ProxyConfig readinessProbe.httpGet.port: expected a port 1-65535, got "http"'],
    [{ tcpSocket: { port: 70000 } }, 'tcpSocket.port: expected a port 1-65535'],
    [{ exec: { command: [] } }, 'exec.command: expected a non-empty list of strings'],
    [{ httpGet: { port: 80, scheme: 'ftp' } }, 'httpGet.scheme: expected HTTP or HTTPS'],
    [{ periodSeconds: -1, tcpSocket: { port: 1 } }, 'readinessProbe.periodSeconds: expected a non-negative integer, got -1'],
  ])('%j is rejected naming the field', (raw, message) => {
    expect(() => parseReadinessProbe(raw, D)).toThrow(ConfigError);
    expect(() => parseReadinessProbe(raw, D)).toThrow(message);
  });

  test('from the effective config: the first node IP, or localhost in legacy-localhost mode; unset → undefined', () => {
    const pc = (extra: Record<string, unknown>) => JSON.stringify({ proxyMetadata: { DNS_AGENT: '' }, ...extra });
    expect(readinessProbeFromConfig(seedConfig(), ['10.244.1.7'])).toBeUndefined();
    const config = seedConfig({ extraEnv: { PROXY_CONFIG: pc({ readinessProbe: { tcpSocket: { port: 80 } } }) } });
    expect(readinessProbeFromConfig(config, ['10.244.1.7', '127.0.0.1'])?.check).toEqual({ kind: 'tcpSocket', host: '10.244.1.7', port: 80 });
    const legacy = seedConfig({ extraEnv: { PROXY_CONFIG: pc({ readinessProbe: { tcpSocket: { port: 80 } } }), REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION: 'true' } });
    expect(readinessProbeFromConfig(legacy, ['10.244.1.7'])?.check).toEqual({ kind: 'tcpSocket', host: 'localhost', port: 80 });
  });
});

describe('HealthThresholds', () => {
  const run = (s: number, f: number, outcomes: Array<string | undefined>) => {
    const t = new HealthThresholds(s, f);
    return outcomes.map((o) => t.record(o));
  };

  test('first report after the threshold; then only on a change', () => {
    const ok = undefined;
    expect(run(2, 3, [ok, ok, ok, 'e1', 'e2', 'e3', 'e4', ok, ok])).toEqual([
      undefined,
      { healthy: true },
      undefined,
      undefined,
      undefined,
      { healthy: false, message: 'e3' },
      undefined,
      undefined,
      { healthy: true },
    ]);
  });

  test('an initial failure is reported (no report was made yet); failures must be consecutive', () => {
    expect(run(1, 2, ['a', undefined, 'b', 'c', 'd'])).toEqual([undefined, { healthy: true }, undefined, { healthy: false, message: 'c' }, undefined]);
    expect(run(1, 1, ['down'])).toEqual([{ healthy: false, message: 'down' }]);
  });
});

describe('checks against real endpoints', () => {
  const closers: Array<() => Promise<unknown> | void> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  async function httpApp(): Promise<{ port: number; setStatus: (s: number) => void; requests: http.IncomingMessage[] }> {
    let status = 200;
    const requests: http.IncomingMessage[] = [];
    const srv = http.createServer((req, res) => {
      requests.push(req);
      res.writeHead(status).end('x');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => srv.close(r)));
    return { port: (srv.address() as net.AddressInfo).port, setStatus: (s) => (status = s), requests };
  }

  test('httpGet: 2xx/3xx pass, others fail with the status; headers sent; refused and timeout named', async () => {
    const app = await httpApp();
    const check: HealthCheck = { kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: app.port, path: '/ready', headers: [{ name: 'X-Probe', value: 'istio' }] };
    expect(await runCheck(check, 1000)).toBeUndefined();
    expect(app.requests[0]?.url).toBe('/ready');
    expect(app.requests[0]?.headers['x-probe']).toBe('istio');
    app.setStatus(302);
    expect(await runCheck(check, 1000)).toBeUndefined();
    app.setStatus(503);
    expect(await runCheck(check, 1000)).toBe(`HTTP probe of http://127.0.0.1:${app.port}/ready failed with status code 503`);
    const closed = await closedPort();
    expect(await runCheck({ ...check, port: closed }, 1000)).toMatch(/ECONNREFUSED/);
    const hang = net.createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const socks: net.Socket[] = [];
    hang.on('connection', (s) => socks.push(s));
    closers.push(() => {
      for (const s of socks) s.destroy();
      return new Promise((r) => hang.close(r));
    });
    expect(await runCheck({ ...check, port: (hang.address() as net.AddressInfo).port }, 200)).toMatch(/timed out after 200ms/);
  });

  test("httpGet connects from 127.0.0.6 (Istio's source rule), sends istio-probe/1.0 unless told otherwise, and a configured Host", async () => {
    const app = await startServer((_req, res) => res.writeHead(200).end());
    closers.push(() => app.close());
    const check: HealthCheck = { kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: app.port, path: '/', headers: [] };
    expect(await runCheck(check, 1000)).toBeUndefined();
    const custom = [{ name: 'User-Agent', value: 'mine' }, { name: 'Host', value: 'app.example' }];
    expect(await runCheck({ ...check, headers: custom }, 1000, ProbeNetwork.forPod(false))).toBeUndefined();
    expect(app.requests.map((r) => [r.remoteAddress, r.headers['user-agent'], r.headers.host])).toEqual([
      ['127.0.0.6', 'istio-probe/1.0', `127.0.0.1:${app.port}`],
      ['127.0.0.6', 'mine', 'app.example'],
    ]);
  });

  test('tcpSocket: connect passes, refused fails', async () => {
    const app = await httpApp();
    expect(await runCheck({ kind: 'tcpSocket', host: '127.0.0.1', port: app.port }, 1000)).toBeUndefined();
    expect(await runCheck({ kind: 'tcpSocket', host: '127.0.0.1', port: await closedPort() }, 1000)).toMatch(/^TCP probe of 127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/);
  });

  test('grpc: SERVING passes, NOT_SERVING fails', async () => {
    const root = protobuf.Root.fromJSON({
      nested: { Req: { fields: { service: { type: 'string', id: 1 } } }, Res: { fields: { status: { type: 'int32', id: 1 } } } },
    });
    const Req = root.lookupType('Req');
    const Res = root.lookupType('Res');
    let serving = 1;
    const server = new grpc.Server();
    server.addService(
      {
        Check: {
          path: '/grpc.health.v1.Health/Check',
          requestStream: false,
          responseStream: false,
          requestDeserialize: (b: Buffer) => Req.toObject(Req.decode(b)),
          requestSerialize: (m: object) => Buffer.from(Req.encode(m).finish()),
          responseSerialize: (m: object) => Buffer.from(Res.encode(m).finish()),
          responseDeserialize: (b: Buffer) => Res.decode(b),
        },
      },
      { Check: (_call: unknown, cb: (e: null, r: object) => void) => cb(null, { status: serving }) },
    );
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    closers.push(() => server.forceShutdown());
    const check: HealthCheck = { kind: 'grpc', host: '127.0.0.1', port, service: '' };
    expect(await runCheck(check, 2000)).toBeUndefined();
    serving = 2;
    expect(await runCheck(check, 2000)).toBe(`gRPC probe of 127.0.0.1:${port}: status NOT_SERVING`);
  });
});

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('prober → proxy → control plane', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('xds-health-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  test.each(['sotw', 'delta'] as StreamKind[])('%s: a toggling app gives one event per state change after the thresholds; Envoy not ready counts as a failure', async (kind) => {
    let appStatus = 200;
    const app = http.createServer((_req, res) => res.writeHead(appStatus).end());
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => app.close(r)));
    const cp = await ControlPlane.start({ clusters: [testCluster('c')], listeners: [testListener('l', 15001, 'c')] });
    cleanups.push(() => cp.close());
    const { log } = captureLogger();
    const proxy = await XdsProxy.start({
      socketPath: path.join(dir, `XDS-${kind}`),
      upstream: { address: cp.address, plaintext: true },
      headers: () => ({}),
      node: () => ({ id: 'sidecar~1~p.ns~ns', cluster: 'c', metadata: {} }),
      log,
    });
    cleanups.push(() => proxy.close());
    const e = new FakeEnvoy(proxy.options.socketPath, kind);
    cleanups.push(() => e.close());

    let envoyReady = false;
    let probes = 0;
    const spec: ReadinessProbeSpec = {
      initialDelayMs: 0,
      timeoutMs: 500,
      periodMs: 30,
      successThreshold: 2,
      failureThreshold: 3,
      check: { kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: (app.address() as net.AddressInfo).port, path: '/', headers: [] },
    };
    const prober = new HealthProber({
      spec,
      envoyReady: () => (envoyReady ? { ready: true } : { ready: false, reason: 'config not received from XDS server (is Istiod running?)' }),
      onReport: (r) => proxy.sendHealth(r),
      log,
      check: async (c, t) => {
        probes++;
        return runCheck(c, t);
      },
    });
    cleanups.push(() => prober.close());
    prober.start();
    const afterProbes = async (n: number) => {
      const target = probes + n;
      await waitUntil(`${n} more probes`, () => probes >= target);
    };

    // Envoy not ready: the first report (after 3 failures) is unhealthy with the readiness reason.
    await cp.waitFor('unhealthy report', () => cp.health.length >= 1);
    expect(cp.health[0]).toMatchObject({ kind, healthy: false, code: 13, message: 'config not received from XDS server (is Istiod running?)' });
    envoyReady = true;
    await cp.waitFor('healthy', () => cp.health.length >= 2);
    appStatus = 503;
    await cp.waitFor('unhealthy (app)', () => cp.health.length >= 3);
    appStatus = 200;
    await cp.waitFor('healthy again', () => cp.health.length >= 4);
    await afterProbes(5);
    expect(cp.health.map((h) => (h.healthy ? 'healthy' : h.message))).toEqual([
      'config not received from XDS server (is Istiod running?)',
      'healthy',
      expect.stringMatching(/failed with status code 503$/),
      'healthy',
    ]);
    // Reconnect: the latest report again, right after LDS on the new stream, and nothing else new.
    cp.dropStreams();
    await cp.waitFor('re-sent after reconnect', () => cp.health.length >= 5);
    expect(cp.health[4]).toMatchObject({ stream: 2, healthy: true });
    const r2 = cp.streams[1]?.requests ?? [];
    const lds = r2.findIndex((r) => r.typeUrl === TYPE_URL.listener);
    expect(lds).toBeGreaterThan(0);
    expect(r2.findIndex((r) => r.typeUrl === TYPE_URL.health)).toBe(lds + 1);
    await afterProbes(3);
    expect(cp.health).toHaveLength(5);
  });

  test("the checks get the prober's network: IPv6 pods resolve names to IPv6 first; the source rule is 127.0.0.6 / ::6", async () => {
    const seen: Array<ProbeNetwork['options']> = [];
    const spec: ReadinessProbeSpec = { initialDelayMs: 0, timeoutMs: 100, periodMs: 1000, successThreshold: 1, failureThreshold: 1, check: { kind: 'tcpSocket', host: 'localhost', port: 1 } };
    for (const ipv6 of [true, false, undefined]) {
      const prober = new HealthProber({
        spec,
        envoyReady: () => ({ ready: true }),
        onReport: () => undefined,
        log: captureLogger().log,
        ...(ipv6 === undefined ? {} : { ipv6 }),
        check: async (_c, _t, network) => {
          seen.push(network.options);
          return undefined;
        },
      });
      expect(await prober.probeOnce()).toBeUndefined();
    }
    const rule = { v4: '127.0.0.6', v6: '::6' };
    expect(seen).toEqual([
      { family: 6, sourceAddresses: rule },
      { family: 4, sourceAddresses: rule },
      { family: 4, sourceAddresses: rule },
    ]);
  });

  test('initialDelay is honoured and close() stops probing', async () => {
    let probes = 0;
    const reports: unknown[] = [];
    const t0 = performance.now();
    let firstAt = 0;
    const prober = new HealthProber({
      spec: { initialDelayMs: 200, timeoutMs: 100, periodMs: 20, successThreshold: 1, failureThreshold: 1, check: { kind: 'exec', command: ['true'] } },
      envoyReady: () => ({ ready: true }),
      onReport: (r) => reports.push(r),
      log: captureLogger().log,
      check: async () => {
        if (probes++ === 0) firstAt = performance.now() - t0;
        return undefined;
      },
    });
    prober.start();
    await waitUntil('probes', () => probes >= 3);
    expect(firstAt).toBeGreaterThanOrEqual(190);
    expect(reports).toEqual([{ healthy: true }]);
    await prober.close();
    const n = probes;
    await new Promise((r) => setTimeout(r, 60));
    expect(probes).toBe(n);
  });
});
