/**
 * End to end (SPEC §7): the real CLI (`pilot-agent proxy sidecar`, seed args and env) with the
 * Envoy double as Envoy and the test control plane as istiod. Envoy's ADS goes over the
 * `xds-grpc` pipe to the agent's proxy on `etc/istio/proxy/XDS`, and from there to the control
 * plane over TCP (plaintext or TLS). Nothing is faked in between.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startAgent, type AgentProcess, type StartAgentOptions } from '../support/agent-process.js';
import { ControlPlane, testCluster, testListener } from '../support/control-plane.js';
import { createTestPki, ISTIOD_SAN, type TestPki } from '../support/control-plane-tls.js';
import { SEED_ANNOTATIONS, SEED_LABELS } from '../support/seed.js';
import { kubeletWrite, podInfoText } from '../support/kubelet-volume.js';
import type { AdsSnapshot } from '../support/envoy-double/ads.js';
import { tempDir } from './harness.js';
import { request } from '../support/envoy-double-harness.js';

const TOKEN_FILE = 'var/run/secrets/tokens/istio-token';
const NODE_ID = 'sidecar~127.0.0.1~jiuxi-7d9c8-abcde.jiuxi-ns~jiuxi-ns.svc.cluster.local';

let dir: string;
let pki: TestPki;
beforeAll(() => {
  dir = tempDir('xds-e2e-');
  pki = createTestPki(path.join(dir, 'pki'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function controlPlane(options: Parameters<typeof ControlPlane.start>[0] = {}): Promise<ControlPlane> {
  const cp = await ControlPlane.start({
    clusters: [testCluster('outbound|80||jiuxi.jiuxi-ns.svc.cluster.local'), testCluster('BlackHoleCluster')],
    listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')],
    token: 'e2e-token',
    ...options,
  });
  cleanups.push(() => cp.close());
  return cp;
}

async function agent(cp: ControlPlane, o: { env?: Record<string, string>; proxyConfig?: Record<string, unknown>; files?: Record<string, string>; token?: boolean } = {}): Promise<AgentProcess> {
  const options: StartAgentOptions = {
    standalone: false,
    env: { JWT_POLICY: 'third-party-jwt', ENVOY_DOUBLE_ADS_BACKOFF_MS: '100', ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS: '500', ...(o.env ?? {}) },
    proxyConfig: { discoveryAddress: cp.address, controlPlaneAuthPolicy: 'NONE', terminationDrainDuration: '0.1s', ...(o.proxyConfig ?? {}) },
    files: {
      'etc/istio/pod/labels': SEED_LABELS,
      'etc/istio/pod/annotations': SEED_ANNOTATIONS,
      ...(o.token === false ? {} : { [TOKEN_FILE]: 'e2e-token\n' }),
      ...(o.files ?? {}),
    },
  };
  const a = await startAgent(options);
  cleanups.push(() => a.dispose());
  return a;
}

function doubleState(a: AgentProcess): { state: string; ads?: AdsSnapshot } | undefined {
  try {
    return JSON.parse(fs.readFileSync(a.stateFile, 'utf8')) as { state: string; ads?: AdsSnapshot };
  } catch {
    return undefined;
  }
}

/** The agent's own metric (status server `/stats/prometheus`), summed over matching series. */
async function agentMetric(a: AgentProcess, name: string, labels = ''): Promise<number> {
  // Envoy's listeners do not accept before it is LIVE: a short scrape timeout lets the agent's own series through.
  const body = (await request({ port: a.ports.status, path: '/stats/prometheus', headers: { 'x-prometheus-scrape-timeout-seconds': '1' }, timeoutMs: 5000 })).body;
  let sum = 0;
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name && (labels === '' || (m[2] ?? '').includes(labels))) sum += Number(m[3]);
  }
  return sum;
}

async function stopAgent(a: AgentProcess): Promise<void> {
  a.signal('SIGTERM');
  expect(await a.waitExit()).toEqual({ code: 0, signal: null });
}

describe('agent + Envoy double + control plane', () => {
  test('Delta (default): config through the proxy, readiness passes, the control plane sees the node of SPEC §3 and the metadata headers; health from readinessProbe', async () => {
    let appStatus = 200;
    const app = http.createServer((_req, res) => res.writeHead(appStatus).end());
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => app.close(r)));
    const cp = await controlPlane();
    const a = await agent(cp, {
      env: { XDS_HEADER_TEAM: 'payments' },
      proxyConfig: { readinessProbe: { httpGet: { port: (app.address() as net.AddressInfo).port, path: '/ready' }, periodSeconds: 1 } },
    });
    await a.waitFor('the double to receive CDS and LDS', () => {
      const s = doubleState(a);
      return s?.ads && s.ads.cds.accepted >= 1 && s.ads.lds.accepted >= 1 ? s : undefined;
    });
    const s = doubleState(a);
    expect(s?.ads?.apiType).toBe('DELTA_GRPC');
    expect(s?.ads?.cds.names).toEqual(['BlackHoleCluster', 'outbound|80||jiuxi.jiuxi-ns.svc.cluster.local']);
    expect(s?.ads?.lds.names).toEqual(['virtualOutbound']);
    await a.waitForLog(/readiness: not ready -> ready/);
    await a.waitFor('LIVE', () => doubleState(a)?.state === 'LIVE');
    // Readiness through Envoy's 15021 listener (the double routes it to the agent's status port).
    const ready = await request({ port: a.ports.envoyStatus, path: '/healthz/ready' });
    expect(ready.status).toBe(200);
    expect(ready.headers.server).toBe('envoy');
    expect(await agentMetric(a, 'istio_agent_xds_proxy_requests')).toBeGreaterThanOrEqual(4); // CDS+LDS subscribe and ACK
    expect(await agentMetric(a, 'istio_agent_xds_proxy_responses')).toBeGreaterThanOrEqual(2);

    const stream = cp.streams[0];
    expect(stream?.kind).toBe('delta');
    expect(stream?.metadata).toMatchObject({ authorization: 'Bearer e2e-token', clusterid: 'Kubernetes', team: 'payments' });
    const node = stream?.node;
    expect(node?.id).toBe(NODE_ID);
    expect(node?.cluster).toBe('jiuxi.jiuxi-ns');
    expect(node?.user_agent_name).toBe('envoy');
    expect(node?.metadata).toMatchObject({
      NAME: 'jiuxi-7d9c8-abcde',
      NAMESPACE: 'jiuxi-ns',
      SERVICE_ACCOUNT: 'default',
      INSTANCE_IPS: expect.stringMatching(/^127\.0\.0\.1/),
      CLUSTER_ID: 'Kubernetes',
      WORKLOAD_NAME: 'jiuxi',
      MESH_ID: 'cluster.local',
      LABELS: { app: 'jiuxi', 'istio.io/rev': '', 'security.istio.io/tlsMode': 'istio' },
      ANNOTATIONS: expect.objectContaining({ 'sidecar.istio.io/interceptionMode': 'REDIRECT' }),
      WORKLOAD_IDENTITY_SOCKET_FILE: 'socket',
      METADATA_DISCOVERY: 'false',
      PROXY_CONFIG: expect.objectContaining({ discoveryAddress: cp.address, readinessProbe: expect.any(Object) }),
    });
    expect(typeof node?.metadata.ENVOY_STATUS_PORT).toBe('number');
    expect(node?.metadata.PILOT_SAN).toBeUndefined(); // plaintext: no PILOT_SAN

    // Health: healthy once Envoy is ready and the app answers; an unhealthy event when it stops.
    await cp.waitFor('healthy event', () => cp.health.find((h) => h.healthy));
    appStatus = 500;
    await cp.waitFor('unhealthy event', () => cp.health.find((h) => !h.healthy && /status code 500/.test(h.message ?? '')));
    const reqs = stream?.requests ?? [];
    const lds = reqs.findIndex((r) => r.typeUrl.endsWith('Listener'));
    expect(reqs.findIndex((r) => r.typeUrl.endsWith('HealthInformation'))).toBeGreaterThan(lds);
    await stopAgent(a);
    expect(fs.existsSync(path.join(a.cwd, 'etc/istio/proxy/XDS'))).toBe(false);
  });

  test('SotW with ISTIO_DELTA_XDS=false, over TLS with the test CA and istiod SAN', async () => {
    const cp = await controlPlane({ tls: { cert: pki.cert, key: pki.key } });
    const a = await agent(cp, {
      env: { ISTIO_DELTA_XDS: 'false', XDS_ROOT_CA: pki.caCertPath, ISTIOD_SAN },
      proxyConfig: { controlPlaneAuthPolicy: 'MUTUAL_TLS' },
    });
    await a.waitForLog(/readiness: not ready -> ready/);
    expect(doubleState(a)?.ads?.apiType).toBe('GRPC');
    expect(cp.streams[0]?.kind).toBe('sotw');
    expect(cp.streams[0]?.node?.id).toBe(NODE_ID);
    expect(cp.streams[0]?.node?.metadata.PILOT_SAN).toEqual([ISTIOD_SAN]);
    await stopAgent(a);
  });
});

describe('the control plane misbehaving never takes the agent down', () => {
  test('down at start, then flapping every second: Envoy gets and keeps its config, reconnects, the agent keeps running', async () => {
    const cp = await controlPlane({ startDown: true });
    const a = await agent(cp);
    await a.waitForLog(/failed to connect to upstream 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(doubleState(a)?.state).toBe('INITIALIZING');
    // Readiness is refreshed off the probe path: poll until it has seen the bound admin.
    let notReady = await request({ port: a.ports.status, path: '/healthz/ready' });
    for (const deadline = Date.now() + 5000; !notReady.body.startsWith('config not received') && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 50));
      notReady = await request({ port: a.ports.status, path: '/healthz/ready' });
    }
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatch(/^config not received from XDS server \(is Istiod running\?\)/);
    expect(await agentMetric(a, 'istio_agent_istiod_connection_failures')).toBeGreaterThanOrEqual(1);
    await cp.restart();
    await a.waitForLog(/readiness: not ready -> ready/, 15_000);
    for (let i = 0; i < 3; i++) {
      await cp.stop();
      await a.waitFor(`Envoy's stream ended (flap ${i})`, () => doubleState(a)?.ads?.connected === false);
      expect(doubleState(a)).toMatchObject({ state: 'LIVE', ads: { lds: { names: ['virtualOutbound'] } } }); // last config kept
      await new Promise((r) => setTimeout(r, 1000)); // the scenario: down for a second, then up
      await cp.restart();
      await a.waitFor(`Envoy reconnected and got config again (flap ${i})`, () => doubleState(a)?.ads?.connected === true, 15_000);
    }
    const s = doubleState(a);
    expect(s?.state).toBe('LIVE');
    expect(s?.ads?.cds.names).toContain('BlackHoleCluster');
    expect(a.child.exitCode).toBeNull();
    expect(a.stderr).toMatch(/upstream terminated with unexpected error: UNAVAILABLE|failed to connect to upstream/);
    // Every upstream stream re-announced the node; the cuts were counted as istiod terminations.
    expect(cp.streams.every((st) => st.node?.id === NODE_ID)).toBe(true);
    expect(await agentMetric(a, 'istio_agent_istiod_connection_terminations')).toBeGreaterThanOrEqual(3); // both types: a stopped server is an expected end
    expect((await request({ port: a.ports.status, path: '/healthz/ready' })).status).toBe(200);
    await stopAgent(a);
  });

  test('TLS SAN mismatch: named in the log, Envoy stays uninitialised, the agent keeps running', async () => {
    const cp = await controlPlane({ tls: { cert: pki.cert, key: pki.key } });
    const a = await agent(cp, { env: { XDS_ROOT_CA: pki.caCertPath, ISTIOD_SAN: 'istiod.other-ns.svc' }, proxyConfig: { controlPlaneAuthPolicy: 'MUTUAL_TLS' } });
    const [line] = await a.waitForLog(/failed to connect to upstream [^\n]*(altnames|ERR_TLS_CERT_ALTNAME_INVALID)[^\n]*/);
    expect(line).toMatch(/istiod\.other-ns\.svc/);
    await a.waitFor('a second attempt', () => (a.stderr.match(/xDS stream \d+: failed to connect to upstream/g)?.length ?? 0) >= 2);
    expect(cp.streams).toHaveLength(0);
    expect(doubleState(a)?.state).toBe('INITIALIZING');
    expect(a.child.exitCode).toBeNull();
    expect(await agentMetric(a, 'istio_agent_istiod_connection_failures')).toBeGreaterThanOrEqual(2);
    await stopAgent(a);
  });

  test('token file missing: the error names the file and JWT_POLICY; config flows once the token appears', async () => {
    const cp = await controlPlane();
    const a = await agent(cp, { token: false });
    const tokenPath = path.join(fs.realpathSync(a.cwd), TOKEN_FILE);
    await a.waitForLog(/token file [^\n]*istio-token \(JWT_POLICY=third-party-jwt\) does not exist/);
    expect(a.stderr).toContain(`${path.join(a.cwd, TOKEN_FILE)} (JWT_POLICY=third-party-jwt) does not exist`);
    expect(cp.streams).toHaveLength(0);
    expect(await agentMetric(a, 'istio_agent_istiod_connection_failures')).toBeGreaterThanOrEqual(1);
    fs.mkdirSync(path.dirname(tokenPath), { recursive: true });
    fs.writeFileSync(tokenPath, 'e2e-token');
    await a.waitForLog(/readiness: not ready -> ready/, 15_000);
    expect(cp.streams.at(-1)?.metadata.authorization).toBe('Bearer e2e-token');
    await stopAgent(a);
  });
});

describe('podinfo → control plane (SPEC §7.2, with the agent\'s podinfo watcher)', () => {
  test('a kubelet-style label swap reaches the control plane as new LABELS; a burst of 100 ends on the final labels with at most one new stream per 5 s', async () => {
    const cp = await controlPlane();
    const cwd = tempDir('xds-e2e-podinfo-');
    const podDir = path.join(cwd, 'etc/istio/pod');
    const labels = (version: string) => podInfoText({ app: 'jiuxi', 'pod-template-hash': '5479899b95', version });
    kubeletWrite(podDir, { labels: labels('v1'), annotations: SEED_ANNOTATIONS });
    const a = await startAgent({
      cwd,
      standalone: false,
      env: { JWT_POLICY: 'third-party-jwt', ENVOY_DOUBLE_ADS_BACKOFF_MS: '100', ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS: '500' },
      proxyConfig: { discoveryAddress: cp.address, controlPlaneAuthPolicy: 'NONE', terminationDrainDuration: '0.1s' },
      files: { [TOKEN_FILE]: 'e2e-token' },
    });
    cleanups.push(() => a.dispose());
    await a.waitForLog(/readiness: not ready -> ready/);
    expect(cp.streams[0]?.node?.metadata.LABELS).toEqual({ app: 'jiuxi', version: 'v1' });

    const t0 = performance.now();
    kubeletWrite(podDir, { labels: labels('v2'), annotations: SEED_ANNOTATIONS });
    await cp.waitFor('LABELS v2', () => (cp.lastNode()?.metadata.LABELS as Record<string, string> | undefined)?.version === 'v2');
    const latency = performance.now() - t0;
    expect(latency).toBeLessThan(2000); // target 1 s; generous for a loaded 2-core machine

    const streamsBefore = cp.streams.length;
    for (let i = 3; i <= 102; i++) kubeletWrite(podDir, { labels: labels(`v${i}`), annotations: SEED_ANNOTATIONS });
    await cp.waitFor('the final labels', () => (cp.lastNode()?.metadata.LABELS as Record<string, string> | undefined)?.version === 'v102', 15_000);
    const opened = cp.streams.slice(streamsBefore - 1).map((s) => s.openedAt);
    for (let i = 1; i < opened.length; i++) expect((opened[i] as number) - (opened[i - 1] as number)).toBeGreaterThanOrEqual(4800);
    expect(cp.streams.length - streamsBefore).toBeLessThanOrEqual(2);
    expect((await request({ port: a.ports.status, path: '/healthz/ready' })).status).toBe(200);
    await stopAgent(a);
  });
});
