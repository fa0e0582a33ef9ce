/**
 * The xDS proxy against real peers: the Envoy double's ADS client (in process) on the proxy's
 * UDS, and the test control plane over TCP (plaintext and TLS). Everything goes through real
 * sockets; assertions look at what each side received.
 */
import { afterEach, beforeAll, afterAll, describe, expect, test } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { XdsProxy, type XdsProxyOptions } from '../../src/xds/proxy.js';
import { HEALTH_INFO_TYPE, LISTENER_TYPE, type XdsNode } from '../../src/xds/messages.js';
import { xdsHeaderSource } from '../../src/xds/upstream.js';
import { ControlPlane, testCluster, testListener, type StreamKind } from '../support/control-plane.js';
import { TYPES, TYPE_URL, encodeMessage, packAny } from '../support/control-plane-protos.js';
import { createTestPki, ISTIOD_SAN, type TestPki } from '../support/control-plane-tls.js';
import { ENVOY_CLIENT_FEATURES } from '../support/envoy-double/ads.js';
import { FakeEnvoy, RawStream, captureLogger, proxyMetrics, tempDir, waitUntil } from './harness.js';

const KINDS: StreamKind[] = ['sotw', 'delta'];

let dir: string;
let pki: TestPki;
const cleanups: Array<() => unknown> = [];

beforeAll(() => {
  dir = tempDir('xds-proxy-');
  pki = createTestPki(path.join(dir, 'pki'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function currentNode(labels: Record<string, string> = { app: 'jiuxi' }): XdsNode {
  return {
    id: 'sidecar~10.244.1.7~jiuxi-7d9c8-abcde.jiuxi-ns~jiuxi-ns.svc.cluster.local',
    cluster: 'jiuxi.jiuxi-ns',
    locality: { region: 'us-east1', zone: 'us-east1-b' },
    metadata: { LABELS: labels, NAMESPACE: 'jiuxi-ns', ENVOY_STATUS_PORT: 15021 },
  };
}

async function startCp(options: Parameters<typeof ControlPlane.start>[0] = {}): Promise<ControlPlane> {
  const cp = await ControlPlane.start({
    clusters: [testCluster('outbound|80||a.default.svc.cluster.local'), testCluster('BlackHoleCluster')],
    listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')],
    ...options,
  });
  cleanups.push(() => cp.close());
  return cp;
}

let socketNo = 0;
async function startProxy(cp: ControlPlane, over: Partial<XdsProxyOptions> = {}) {
  const captured = captureLogger();
  const m = proxyMetrics();
  let node = currentNode();
  const proxy = await XdsProxy.start({
    socketPath: path.join(dir, `XDS-${++socketNo}`),
    upstream: { address: cp.address, plaintext: true },
    headers: () => ({ clusterid: 'Kubernetes', authorization: 'Bearer t0k3n', team: 'payments' }),
    node: () => node,
    log: captured.log,
    metrics: m.metrics,
    ...over,
  });
  cleanups.push(() => proxy.close());
  return { proxy, ...captured, ...m, setNode: (n: XdsNode) => (node = n) };
}

function envoy(socketPath: string, kind: StreamKind, options?: ConstructorParameters<typeof FakeEnvoy>[2]): FakeEnvoy {
  const e = new FakeEnvoy(socketPath, kind, options);
  cleanups.push(() => e.close());
  return e;
}

describe.each(KINDS)('%s', (kind) => {
  test('Envoy gets CDS then LDS through the proxy; the control plane sees the agent node, Envoy user agent and the metadata', async () => {
    const cp = await startCp();
    const { proxy, value } = await startProxy(cp);
    const e = envoy(proxy.options.socketPath, kind);
    await waitUntil('CDS and LDS accepted', () => e.accepted('cds') >= 1 && e.accepted('lds') >= 1);
    expect(e.snapshot().cds.names).toEqual(['BlackHoleCluster', 'outbound|80||a.default.svc.cluster.local']);
    expect(e.snapshot().lds.names).toEqual(['virtualOutbound']);
    await cp.waitFor('ACKs for CDS and LDS', () => cp.allRequests().filter((r) => r.nonce !== '' && !r.errorDetail).length >= 2);

    const [stream] = cp.streams;
    expect(cp.streams).toHaveLength(1);
    expect(stream?.kind).toBe(kind);
    expect(stream?.metadata).toMatchObject({ authorization: 'Bearer t0k3n', clusterid: 'Kubernetes', team: 'payments' });
    const node = stream?.node;
    expect(node?.id).toBe(currentNode().id);
    expect(node?.cluster).toBe('jiuxi.jiuxi-ns');
    expect(node?.locality).toEqual({ region: 'us-east1', zone: 'us-east1-b' });
    expect(node?.metadata).toEqual(currentNode().metadata);
    expect(node?.user_agent_name).toBe('envoy');
    expect(node?.client_features).toEqual(ENVOY_CLIENT_FEATURES);
    // Node on the first request only; CDS subscribed before LDS.
    const reqs = stream?.requests ?? [];
    expect(reqs.filter((r) => r.node !== undefined)).toHaveLength(1);
    expect(reqs[0]?.typeUrl).toBe(TYPE_URL.cluster);
    expect(reqs.findIndex((r) => r.typeUrl === TYPE_URL.listener)).toBeGreaterThan(0);

    expect(await value('istio_agent_xds_proxy_requests')).toBe(reqs.length);
    expect(await value('istio_agent_xds_proxy_responses')).toBe(2);
    expect(proxy.status()).toMatchObject({ streams: 1, active: { kind, upstreamConnected: true, ldsForwarded: true } });
  });

  test('pushes reach Envoy; an undecodable resource is NACKed back to the control plane and the last good config stays', async () => {
    const cp = await startCp();
    const { proxy } = await startProxy(cp);
    const e = envoy(proxy.options.socketPath, kind);
    await waitUntil('initial config', () => e.accepted('lds') >= 1);
    cp.setResources({ clusters: [testCluster('new-cluster')] });
    await waitUntil('pushed CDS accepted', () => e.snapshot().cds.names.join() === 'new-cluster');
    cp.setResources({ clusters: [{ name: 'broken', rawValue: Buffer.from('not a protobuf') }] });
    const [nack] = await cp.waitFor('a NACK', () => (cp.nacks().length > 0 ? cp.nacks() : undefined));
    expect(nack?.typeUrl).toBe(TYPE_URL.cluster);
    expect(nack?.errorDetail?.code).toBe(13);
    expect(nack?.errorDetail?.message).toMatch(/Unable to unpack as envoy\.config\.cluster\.v3\.Cluster/);
    if (kind === 'sotw') expect(nack?.version).toBe(`v${cp.version - 1}`); // SotW NACKs carry the last accepted version
    expect(e.updates.filter((u) => !u.accepted)).toEqual([{ type: 'cds', accepted: false, detail: nack?.errorDetail?.message }]);
    expect(e.snapshot().cds.names).toEqual(['new-cluster']);
  });

  test('the control plane dropping the stream ends Envoy\'s stream with its status; Envoy re-subscribes with its state', async () => {
    const cp = await startCp();
    const { proxy, value, text } = await startProxy(cp);
    const e = envoy(proxy.options.socketPath, kind);
    await waitUntil('initial config', () => e.accepted('lds') >= 1);
    cp.dropStreams(grpc.status.UNAVAILABLE, 'istiod restarting');
    await waitUntil('second upstream stream with CDS and LDS', () => cp.streams.length >= 2 && (cp.streams[1]?.requests.length ?? 0) >= 2);
    await waitUntil('Envoy saw the status', () => e.snapshot().lastStreamEnd !== null);
    expect(e.snapshot().lastStreamEnd).toEqual({ code: grpc.status.UNAVAILABLE, details: 'istiod restarting' });
    const second = cp.streams[1];
    expect(second?.node?.id).toBe(currentNode().id);
    const cds = second?.requests.find((r) => r.typeUrl === TYPE_URL.cluster);
    const lds = second?.requests.find((r) => r.typeUrl === TYPE_URL.listener);
    if (kind === 'delta') {
      expect(cds?.initialResourceVersions).toEqual({ BlackHoleCluster: 'v1', 'outbound|80||a.default.svc.cluster.local': 'v1' });
      expect(lds?.initialResourceVersions).toEqual({ virtualOutbound: 'v1' });
    } else {
      expect(cds?.version).toBe('v1');
      expect(lds?.version).toBe('v1');
    }
    expect(await value('istio_agent_istiod_connection_terminations', { type: 'error' })).toBe(1);
    expect(text()).toMatch(/upstream terminated with unexpected error: UNAVAILABLE: istiod restarting/);
  });

  test('health: held until Envoy\'s first LDS request, sent at once on an open stream, re-sent on every new stream', async () => {
    const cp = await startCp({ silent: true });
    const { proxy } = await startProxy(cp);
    proxy.sendHealth({ healthy: false, message: 'app not ready' });
    const e = envoy(proxy.options.socketPath, kind);
    await cp.waitFor('CDS request', () => cp.allRequests().some((r) => r.typeUrl === TYPE_URL.cluster));
    // A silent control plane: no CDS response, so Envoy has not asked for LDS, so no health report yet.
    expect(cp.health).toHaveLength(0);
    expect(proxy.status().active?.ldsForwarded).toBe(false);

    cp.silent = false;
    cp.setResources({ clusters: [testCluster('c1')] });
    await cp.waitFor('the held report', () => cp.health.length === 1);
    const reqs = cp.streams[0]?.requests ?? [];
    const ldsAt = reqs.findIndex((r) => r.typeUrl === LISTENER_TYPE);
    const healthAt = reqs.findIndex((r) => r.typeUrl === HEALTH_INFO_TYPE);
    expect(healthAt).toBe(ldsAt + 1);
    expect(cp.health[0]).toMatchObject({ kind, healthy: false, message: 'app not ready', code: 13 });

    proxy.sendHealth({ healthy: true });
    await cp.waitFor('healthy report', () => cp.health.length === 2);
    expect(cp.health[1]).toMatchObject({ kind, healthy: true });
    expect(cp.health[1]?.message).toBeUndefined();

    cp.dropStreams();
    await cp.waitFor('report re-sent on the new stream', () => cp.health.length === 3);
    expect(cp.health[2]).toMatchObject({ stream: 2, healthy: true });
    const r2 = cp.streams[1]?.requests ?? [];
    expect(r2.findIndex((r) => r.typeUrl === HEALTH_INFO_TYPE)).toBe(r2.findIndex((r) => r.typeUrl === LISTENER_TYPE) + 1);
    expect(e.accepted('lds')).toBeGreaterThan(0);
  });

  test('resetEnvoyStream: UNAVAILABLE to Envoy, at most one per interval, and the control plane sees the new node', async () => {
    const cp = await startCp();
    const { proxy, setNode } = await startProxy(cp, { resetIntervalMs: 600 });
    const e = envoy(proxy.options.socketPath, kind);
    await waitUntil('initial config', () => e.accepted('lds') >= 1);
    const t0 = performance.now();
    setNode(currentNode({ app: 'jiuxi', version: 'v1' }));
    proxy.resetEnvoyStream('pod labels changed');
    await cp.waitFor('second stream with v1 labels', () => cp.streams[1]?.node);
    expect(e.snapshot().lastStreamEnd).toEqual({ code: grpc.status.UNAVAILABLE, details: 'pod labels changed' });
    expect(cp.streams[1]?.node?.metadata.LABELS).toEqual({ app: 'jiuxi', version: 'v1' });
    // A burst: one deferred reset at the end of the interval, with the last node.
    for (let i = 2; i <= 20; i++) {
      setNode(currentNode({ app: 'jiuxi', version: `v${i}` }));
      proxy.resetEnvoyStream(`change ${i}`);
    }
    await cp.waitFor('third stream', () => cp.streams[2]?.node);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(600);
    expect(cp.streams[2]?.node?.metadata.LABELS).toEqual({ app: 'jiuxi', version: 'v20' });
    expect(proxy.status()).toMatchObject({ resets: 2, resetPending: false });
    expect(cp.streams).toHaveLength(3);
    // Nothing changed since the last stream opened: no reset, now or at the end of the interval.
    proxy.resetEnvoyStream('spurious');
    await waitUntil('no reset pending', () => !proxy.status().resetPending);
    expect(proxy.status().resets).toBe(2);
    expect(cp.streams).toHaveLength(3);
  });
});

describe('failures never take the proxy down', () => {
  test('control plane down: Envoy\'s stream fails with the cause named and counted; service resumes when it comes back', async () => {
    const cp = await startCp({ startDown: true });
    const { proxy, value, records } = await startProxy(cp);
    const e = envoy(proxy.options.socketPath, 'delta');
    await waitUntil('two failed attempts', async () => (await value('istio_agent_istiod_connection_failures')) >= 2);
    expect(e.snapshot().lastStreamEnd?.code).toBe(grpc.status.UNAVAILABLE);
    expect(e.snapshot().lastStreamEnd?.details).toMatch(new RegExp(`failed to connect to upstream ${cp.address}: .*ECONNREFUSED`));
    expect(records.some((r) => r.level === 'error' && /failed to connect to upstream .*ECONNREFUSED/.test(r.msg))).toBe(true);
    await cp.restart();
    await waitUntil('config after the control plane came back', () => e.accepted('lds') >= 1, 10_000);
    expect(await value('istio_agent_istiod_connection_terminations', { type: 'error' })).toBe(0);
  });

  test('token file missing: the attempt fails naming the path and JWT_POLICY; nothing reaches the control plane', async () => {
    const cp = await startCp({ token: 'secret' });
    const tokenPath = path.join(dir, 'tokens', 'istio-token');
    const { proxy, value } = await startProxy(cp, { headers: xdsHeaderSource({ staticHeaders: { clusterid: 'Kubernetes' }, token: { path: tokenPath, jwtPolicy: 'third-party-jwt' } }) });
    const e = envoy(proxy.options.socketPath, 'sotw');
    await waitUntil('a failed attempt', () => e.snapshot().lastStreamEnd !== null);
    expect(e.snapshot().lastStreamEnd?.details).toBe(`failed to connect to upstream ${cp.address}: token file ${tokenPath} (JWT_POLICY=third-party-jwt) does not exist`);
    expect(cp.streams).toHaveLength(0);
    expect(await value('istio_agent_istiod_connection_failures')).toBeGreaterThanOrEqual(1);
    // A wrong token: istiod's UNAUTHENTICATED is passed to Envoy as is.
    fs.mkdirSync(path.dirname(tokenPath), { recursive: true });
    fs.writeFileSync(tokenPath, 'wrong');
    await cp.waitFor('a refused stream', () => cp.streams.find((s) => s.rejected));
    await waitUntil('Envoy saw UNAUTHENTICATED', () => e.snapshot().lastStreamEnd?.code === grpc.status.UNAUTHENTICATED);
    fs.writeFileSync(tokenPath, 'secret');
    await waitUntil('config with the right token', () => e.accepted('lds') >= 1, 10_000);
    expect(cp.streams.at(-1)?.metadata.authorization).toBe('Bearer secret');
  });

  test('TLS: the SAN is verified against the test CA', async () => {
    const cp = await startCp({ tls: { cert: pki.cert, key: pki.key } });
    const { proxy } = await startProxy(cp, { upstream: { address: cp.address, plaintext: false, rootCaPath: pki.caCertPath, serverName: ISTIOD_SAN } });
    const e = envoy(proxy.options.socketPath, 'delta');
    await waitUntil('config over TLS', () => e.accepted('lds') >= 1);
    expect(cp.streams[0]?.node?.id).toBe(currentNode().id);
  });

  test('TLS SAN mismatch: named in the error, counted, Envoy retries', async () => {
    const cp = await startCp({ tls: { cert: pki.cert, key: pki.key } });
    const { proxy, value, text } = await startProxy(cp, { upstream: { address: cp.address, plaintext: false, rootCaPath: pki.caCertPath, serverName: 'istiod.wrong-ns.svc' } });
    const e = envoy(proxy.options.socketPath, 'delta');
    await waitUntil('two failed attempts', async () => (await value('istio_agent_istiod_connection_failures')) >= 2);
    expect(e.snapshot().lastStreamEnd?.details).toMatch(/does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/);
    expect(text()).toMatch(/istiod\.wrong-ns\.svc/);
    expect(cp.streams).toHaveLength(0);
  });

  test('TLS: an untrusted server certificate and a missing root CA file are named', async () => {
    const other = createTestPki(path.join(dir, 'other-pki'));
    const cp = await startCp({ tls: { cert: other.cert, key: other.key } });
    const { proxy, value } = await startProxy(cp, { upstream: { address: cp.address, plaintext: false, rootCaPath: pki.caCertPath, serverName: ISTIOD_SAN } });
    const e = envoy(proxy.options.socketPath, 'sotw');
    await waitUntil('a failed attempt', async () => (await value('istio_agent_istiod_connection_failures')) >= 1);
    await waitUntil('status', () => e.snapshot().lastStreamEnd);
    expect(e.snapshot().lastStreamEnd?.details).toMatch(/unable to verify the first certificate|self[- ]signed|UNABLE_TO_VERIFY|unable to get local issuer/i);
    e.close();
    const missing = path.join(dir, 'nope', 'root-cert.pem');
    const p2 = await startProxy(cp, { upstream: { address: cp.address, plaintext: false, rootCaPath: missing, serverName: ISTIOD_SAN } });
    const e2 = envoy(p2.proxy.options.socketPath, 'sotw');
    await waitUntil('status', () => e2.snapshot().lastStreamEnd);
    expect(e2.snapshot().lastStreamEnd?.details).toBe(`failed to connect to upstream ${cp.address}: root CA ${missing} for the xDS connection does not exist`);
  });

  test('dial timeout: a peer that never completes the handshake fails the attempt after dialTimeoutMs', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => silent.close(r));
    });
    const address = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const cp = await startCp();
    const { proxy, value } = await startProxy(cp, { upstream: { address, plaintext: false, rootCaPath: pki.caCertPath, serverName: ISTIOD_SAN }, dialTimeoutMs: 300 });
    const raw = new RawStream(proxy.options.socketPath, 'delta');
    cleanups.push(() => raw.close());
    const t0 = performance.now();
    await waitUntil('status', () => raw.status, 5000);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(raw.status?.code).toBe(grpc.status.UNAVAILABLE);
    expect(raw.status?.details).toBe(`failed to connect to upstream ${address}: no connection within 300ms (dial timeout)`);
    expect(await value('istio_agent_istiod_connection_failures')).toBe(1);
  });
});

describe('streams and sockets', () => {
  test('one Envoy stream at a time: a new stream closes the previous one', async () => {
    const cp = await startCp();
    const { proxy } = await startProxy(cp);
    const first = new RawStream(proxy.options.socketPath, 'sotw');
    cleanups.push(() => first.close());
    first.write(encodeMessage(TYPES.DiscoveryRequest, { type_url: TYPE_URL.cluster }));
    await cp.waitFor('first upstream stream', () => cp.streams[0]?.requests.length);
    const second = new RawStream(proxy.options.socketPath, 'sotw');
    cleanups.push(() => second.close());
    second.write(encodeMessage(TYPES.DiscoveryRequest, { type_url: TYPE_URL.cluster }));
    await waitUntil('first stream ended', () => first.status);
    expect(first.status?.code).toBe(grpc.status.OK);
    await cp.waitFor('first upstream stream closed', () => cp.streams[0]?.closedAt);
    await cp.waitFor('second upstream stream', () => cp.streams[1]?.requests.length);
    expect(proxy.status().active?.id).toBe(2);
    expect(second.status).toBeUndefined();
  });

  test('a 5 MB response is forwarded byte for byte', async () => {
    const cp = await startCp({ silent: true });
    const { proxy } = await startProxy(cp);
    const raw = new RawStream(proxy.options.socketPath, 'sotw');
    cleanups.push(() => raw.close());
    raw.write(encodeMessage(TYPES.DiscoveryRequest, { type_url: TYPE_URL.cluster }));
    await cp.waitFor('upstream stream', () => cp.openStreams().length === 1);
    const resources = Array.from({ length: 2000 }, (_, i) => packAny(TYPE_URL.cluster, { ...testCluster(`c${i}`), alt_stat_name: 'x'.repeat(2500) }));
    const big = encodeMessage(TYPES.DiscoveryResponse, { version_info: 'big', resources, type_url: TYPE_URL.cluster, nonce: 'n1' });
    expect(big.length).toBeGreaterThan(5_000_000);
    for (let i = 0; i < 3; i++) cp.sendRaw('sotw', big);
    await waitUntil('three responses', () => raw.responses.length === 3, 20_000);
    for (const r of raw.responses) expect(r.equals(big)).toBe(true);
  });

  test('a stale socket is replaced; a non-socket file is an error naming the path; close() removes the socket', async () => {
    const cp = await startCp();
    const socketPath = path.join(dir, 'stale-XDS');
    // A crashed agent leaves its socket file behind (a clean close would unlink it, so keep a link).
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(socketPath, r));
    fs.linkSync(socketPath, `${socketPath}.keep`);
    await new Promise((r) => stale.close(r));
    fs.renameSync(`${socketPath}.keep`, socketPath);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    const { proxy } = await startProxy(cp, { socketPath });
    const e = envoy(socketPath, 'delta');
    await waitUntil('config', () => e.accepted('lds') >= 1);
    e.close();
    await proxy.close();
    expect(fs.existsSync(socketPath)).toBe(false);

    const file = path.join(dir, 'not-a-socket');
    fs.writeFileSync(file, 'x');
    await expect(startProxy(cp, { socketPath: file })).rejects.toThrow(`xDS proxy: cannot listen on ${file}: ${file} exists and is not a socket`);
  });
});
