/**
 * The Envoy double's ADS client as a real process: Istio's golden bootstrap with the `xds-grpc`
 * pipe pointing at the test control plane on a UDS (no agent in between). Readiness stats,
 * lifecycle, reconnects and the state-file record are what the agent and tests rely on.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import path from 'node:path';
import { ControlPlane, testCluster, testListener, type StreamKind } from '../support/control-plane.js';
import { TYPE_URL, packAny } from '../support/control-plane-protos.js';
import { goldenBootstrap, parseStats, startDouble, tempDir, type DoubleProcess } from '../support/envoy-double-harness.js';
import type { AdsSnapshot } from '../support/envoy-double/ads.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function setup(kind: StreamKind, cpOptions: Parameters<typeof ControlPlane.start>[0] = {}) {
  const dir = tempDir();
  const socket = path.join(dir, 'etc/istio/proxy/XDS');
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  const cp = await ControlPlane.start({
    unixPath: socket,
    clusters: [testCluster('outbound|9080||reviews.default.svc.cluster.local'), testCluster('InboundPassthroughCluster')],
    listeners: [testListener('virtualInbound', 15006, 'InboundPassthroughCluster')],
    ...cpOptions,
  });
  cleanups.push(() => cp.close());
  const b = goldenBootstrap({ adminPort: 0, agentPort: 1 }) as Json;
  b.dynamic_resources.ads_config.api_type = kind === 'delta' ? 'DELTA_GRPC' : 'GRPC';
  for (const c of b.static_resources.clusters as Json[]) {
    if (c.name === 'xds-grpc') c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address = { pipe: { path: './etc/istio/proxy/XDS' } };
  }
  const d = startDouble({ dir, bootstrap: b, env: { ENVOY_DOUBLE_ADS_BACKOFF_MS: '50', ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS: '200' } });
  cleanups.push(() => d.dispose());
  return { cp, d };
}

const bootstrapNodeId = (goldenBootstrap({ adminPort: 0, agentPort: 1 }) as Json).node.id as string;

function ads(d: DoubleProcess): AdsSnapshot | undefined {
  return (d.readState() as unknown as { ads?: AdsSnapshot } | undefined)?.ads;
}

async function stats(d: DoubleProcess): Promise<Map<string, number>> {
  return parseStats((await d.admin('GET', '/stats?usedonly&filter=^(cluster_manager\\.cds|listener_manager\\.lds)\\.update_')).body);
}

describe.each(['delta', 'sotw'] as StreamKind[])('%s', (kind) => {
  test('INITIALIZING until CDS and LDS arrive, then LIVE with update_success counted; node on the first request only', async () => {
    const { cp, d } = await setup(kind, { silent: true });
    await cp.waitFor('CDS subscription', () => cp.streams[0]?.requests.length);
    await d.waitForState('INITIALIZING', (s) => s.state === 'INITIALIZING');
    expect(cp.streams[0]?.kind).toBe(kind);
    cp.silent = false;
    cp.setResources({ clusters: [testCluster('c1')] });
    const live = await d.live();
    const snap = (live as unknown as { ads: AdsSnapshot }).ads;
    expect(snap.apiType).toBe(kind === 'delta' ? 'DELTA_GRPC' : 'GRPC');
    expect(snap.cds.names).toEqual(['c1']);
    expect(snap.lds.names).toEqual(['virtualInbound']);
    const s = await stats(d);
    expect(s.get('cluster_manager.cds.update_success')).toBe(1);
    expect(s.get('listener_manager.lds.update_success')).toBe(1);
    const reqs = cp.streams[0]?.requests ?? [];
    expect(reqs.map((r) => [r.typeUrl === TYPE_URL.cluster ? 'cds' : 'lds', r.nonce === '' ? 'subscribe' : 'ack'])).toEqual([
      ['cds', 'subscribe'],
      ['cds', 'ack'],
      ['lds', 'subscribe'],
      ['lds', 'ack'],
    ]);
    expect(reqs.filter((r) => r.node).length).toBe(1);
    expect(reqs[0]?.node?.id).toBe(bootstrapNodeId);
    expect(reqs[0]?.node?.user_agent_name).toBe('envoy');
    expect(reqs[0]?.node?.metadata).toMatchObject({ ISTIO_VERSION: expect.any(String) });
  });

  test('a NACK counts update_rejected and keeps the last config; a reconnect re-subscribes with its state and Envoy stays LIVE', async () => {
    const { cp, d } = await setup(kind);
    await d.live();
    cp.setResources({ listeners: [{ name: 'bad', rawValue: Buffer.from('garbage!') }] });
    await cp.waitFor('NACK', () => cp.nacks()[0]);
    await d.waitForState('rejected recorded', (s) => (s as unknown as { ads: AdsSnapshot }).ads.lds.rejected === 1);
    expect((await stats(d)).get('listener_manager.lds.update_rejected')).toBe(1);
    expect(ads(d)?.lds.names).toEqual(['virtualInbound']);

    await cp.stop();
    await d.waitForState('stream ended', (s) => (s as unknown as { ads: AdsSnapshot }).ads.lastStreamEnd !== null);
    await cp.restart();
    await cp.waitFor('re-subscribed', () => cp.streams.length >= 2 && (cp.streams.at(-1)?.requests.length ?? 0) >= 2);
    const again = cp.streams.at(-1)?.requests ?? [];
    const cds = again.find((r) => r.typeUrl === TYPE_URL.cluster);
    const lds = again.find((r) => r.typeUrl === TYPE_URL.listener);
    expect(again[0]?.node?.id).toBeTruthy();
    if (kind === 'delta') {
      expect(cds?.initialResourceVersions).toEqual({ 'outbound|9080||reviews.default.svc.cluster.local': 'v1', InboundPassthroughCluster: 'v1' });
      expect(lds?.initialResourceVersions).toEqual({ virtualInbound: 'v1' });
    } else {
      expect(cds?.version).toBe('v1');
      expect(lds?.version).toBe('v1');
    }
    expect(d.readState()?.state).toBe('LIVE');
    await d.waitForState('stream count', (s) => (s as unknown as { ads: AdsSnapshot }).ads.streams >= 2);
  });
});

test('reconnects back off (doubling to the cap) while the control plane stays down; config and LIVE stay; a response resets the backoff', async () => {
  const { cp, d } = await setup('delta');
  await d.live();
  expect(ads(d)?.retryCeilingMs).toBe(50);
  await cp.stop();
  const down = await d.waitForState('backoff at its cap', (s) => (s as unknown as { ads: AdsSnapshot }).ads.retryCeilingMs === 200, 10_000);
  const snap = (down as unknown as { ads: AdsSnapshot }).ads;
  expect(snap.streams).toBeGreaterThanOrEqual(2); // two stream ends: 50 → 100 → 200
  expect(snap.lastStreamEnd?.code).toBe(grpc.status.UNAVAILABLE);
  expect(down.state).toBe('LIVE');
  expect((await stats(d)).get('cluster_manager.cds.update_success')).toBe(1);
  await cp.restart();
  await d.waitForState('reconnected and reset', (s) => {
    const a = (s as unknown as { ads: AdsSnapshot }).ads;
    return a.connected && a.retryCeilingMs === 50;
  });
  expect((await stats(d)).get('cluster_manager.cds.update_success')).toBe(2);
});

test('a cluster referencing an SDS secret holds LIVE until the secret arrives (the ADS→SDS seam)', async () => {
  const tlsCluster = {
    ...testCluster('outbound|443||secure.default.svc.cluster.local'),
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: packAny('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
        common_tls_context: {
          tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { api_config_source: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] } } }],
        },
      }),
    },
  };
  // No SDS server behind sds-grpc: the secret never arrives.
  const { cp, d } = await setup('delta', { clusters: [tlsCluster] });
  await d.waitForState('CDS and LDS accepted', (s) => {
    const a = (s as unknown as { ads: AdsSnapshot }).ads;
    return a.cds.accepted === 1 && a.lds.accepted === 1;
  });
  await cp.waitFor('ACKs', () => cp.allRequests().filter((r) => r.nonce !== '').length >= 2);
  expect(d.readState()?.state).toBe('INITIALIZING');
  expect((d.readState() as unknown as { sds?: Record<string, { cluster: string }> }).sds?.default?.cluster).toBe('sds-grpc');
  expect((await stats(d)).get('listener_manager.lds.update_success')).toBe(1);
});
