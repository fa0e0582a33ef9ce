/**
 * The proxy's byte-level xDS operations, checked against Envoy's own protos: what the proxy
 * reads (type URL, nonce, counts) and writes (node replacement, health reports) must decode
 * exactly as Envoy and istiod would decode it.
 */
import { describe, expect, test } from '@jest/globals';
import { HEALTH_INFO_TYPE, LISTENER_TYPE, healthRequest, replaceNode, summarizeRequest, summarizeResponse, type XdsNode } from '../../src/xds/messages.js';
import { WireError, scanFields } from '../../src/xds/wire.js';
import { TYPES, TYPE_URL, decodeMessage, encodeMessage, jsonToStruct, nodeFromDecoded, packAny } from '../support/control-plane-protos.js';
import { testCluster } from '../support/control-plane.js';

const envoyNode = {
  id: 'sidecar~10.0.0.1~old.ns~ns.svc.cluster.local',
  cluster: 'old.ns',
  metadata: jsonToStruct({ LABELS: { app: 'old' }, NAME: 'old' }),
  locality: { region: 'r0' },
  user_agent_name: 'envoy',
  user_agent_build_version: { version: { major_number: 1, minor_number: 36, patch: 2 } },
  client_features: ['envoy.lb.does_not_support_overprovisioning'],
};

const agentNode: XdsNode = {
  id: 'sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local',
  cluster: 'app.ns',
  locality: { region: 'eu', zone: 'eu-1', sub_zone: 'rack7' },
  metadata: { LABELS: { app: 'new', version: 'v2' }, ENVOY_STATUS_PORT: 15021, PILOT_SAN: ['istiod.istio-system.svc'], EMPTY: null, FLAG: true },
};

describe('summaries', () => {
  test('SotW request: type URL, nonce, version, node, NACK', () => {
    const buf = encodeMessage(TYPES.DiscoveryRequest, {
      version_info: 'v3',
      node: envoyNode,
      type_url: LISTENER_TYPE,
      response_nonce: 'n-7',
      error_detail: { code: 13, message: 'bad' },
    });
    expect(summarizeRequest('sotw', buf)).toEqual({ typeUrl: LISTENER_TYPE, nonce: 'n-7', version: 'v3', hasNode: true, errorDetail: true });
  });

  test('Delta request', () => {
    const buf = encodeMessage(TYPES.DeltaDiscoveryRequest, { type_url: TYPE_URL.cluster, response_nonce: 'abc', initial_resource_versions: { a: '1' } });
    expect(summarizeRequest('delta', buf)).toEqual({ typeUrl: TYPE_URL.cluster, nonce: 'abc', version: '', hasNode: false, errorDetail: false });
  });

  test('responses: resources are counted, never decoded', () => {
    const clusters = Array.from({ length: 50 }, (_, i) => packAny(TYPE_URL.cluster, testCluster(`c${i}`)));
    const sotw = encodeMessage(TYPES.DiscoveryResponse, { version_info: 'v9', resources: clusters, type_url: TYPE_URL.cluster, nonce: 'x1' });
    expect(summarizeResponse(sotw)).toEqual({ typeUrl: TYPE_URL.cluster, nonce: 'x1', version: 'v9', resources: 50 });
    const delta = encodeMessage(TYPES.DeltaDiscoveryResponse, {
      system_version_info: 'v2',
      resources: clusters.slice(0, 3).map((r, i) => ({ name: `c${i}`, version: '1', resource: r })),
      removed_resources: ['gone'],
      type_url: TYPE_URL.cluster,
      nonce: 'd1',
    });
    expect(summarizeResponse(delta)).toEqual({ typeUrl: TYPE_URL.cluster, nonce: 'd1', version: 'v2', resources: 3 });
  });

  test('malformed bytes are a WireError, not a crash', () => {
    expect(() => summarizeResponse(Buffer.from([0x22, 0x05, 0x01]))).toThrow(WireError);
    expect(() => scanFields(Buffer.from([0x80]))).toThrow(WireError);
    expect(() => scanFields(Buffer.from([0x0b]))).toThrow(/wire type 3/);
    expect(() => scanFields(Buffer.from([0x80]))).toThrow(expect.objectContaining({ code: 'XDS_WIRE_MALFORMED', name: 'WireError' }));
  });
});

describe('replaceNode', () => {
  for (const kind of ['sotw', 'delta'] as const) {
    test(`${kind}: id, cluster, metadata, locality replaced; Envoy's other node fields and the request kept`, () => {
      const typeName = kind === 'sotw' ? TYPES.DiscoveryRequest : TYPES.DeltaDiscoveryRequest;
      const original =
        kind === 'sotw'
          ? { version_info: '', node: envoyNode, type_url: TYPE_URL.cluster, resource_names: ['a', 'b'] }
          : { node: envoyNode, type_url: TYPE_URL.cluster, initial_resource_versions: { a: 'v1' }, resource_names_subscribe: ['*'] };
      const encoded = encodeMessage(typeName, original);
      const out = replaceNode(kind, encoded, agentNode);
      const decoded = decodeMessage<Record<string, unknown>>(typeName, out);
      const node = nodeFromDecoded(decoded.node as Record<string, unknown>);
      expect(node?.id).toBe(agentNode.id);
      expect(node?.cluster).toBe(agentNode.cluster);
      expect(node?.locality).toEqual({ region: 'eu', zone: 'eu-1', sub_zone: 'rack7' });
      expect(node?.metadata).toEqual(agentNode.metadata);
      expect(node?.user_agent_name).toBe('envoy');
      expect(node?.user_agent_build_version).toEqual({ version: { major_number: 1, minor_number: 36, patch: 2 } });
      expect(node?.client_features).toEqual(['envoy.lb.does_not_support_overprovisioning']);
      const { node: _n, ...rest } = decoded;
      const { node: _o, ...origRest } = decodeMessage<Record<string, unknown>>(typeName, encoded);
      expect(rest).toEqual(origRest);
    });
  }

  test('a request without a node gets one; no locality when the node has none', () => {
    const out = replaceNode('sotw', encodeMessage(TYPES.DiscoveryRequest, { type_url: TYPE_URL.cluster }), { id: 'x', cluster: 'y', metadata: {} });
    const decoded = decodeMessage<Record<string, unknown>>(TYPES.DiscoveryRequest, out);
    const node = nodeFromDecoded(decoded.node as Record<string, unknown>);
    expect(node).toMatchObject({ id: 'x', cluster: 'y', metadata: {} });
    expect(node?.locality).toBeUndefined();
    expect(decoded.type_url).toBe(TYPE_URL.cluster);
  });
});

describe('healthRequest', () => {
  test('healthy: only the type URL (both kinds)', () => {
    expect(decodeMessage(TYPES.DiscoveryRequest, healthRequest('sotw', { healthy: true }))).toEqual({ type_url: HEALTH_INFO_TYPE, resource_names: [], resource_locators: [] });
    expect(decodeMessage(TYPES.DeltaDiscoveryRequest, healthRequest('delta', { healthy: true }))).toMatchObject({ type_url: HEALTH_INFO_TYPE });
  });

  test('unhealthy: error_detail {code 13, message}', () => {
    const sotw = decodeMessage<Record<string, unknown>>(TYPES.DiscoveryRequest, healthRequest('sotw', { healthy: false, message: 'HTTP probe failed: 503 ✗' }));
    expect(sotw.error_detail).toEqual({ code: 13, message: 'HTTP probe failed: 503 ✗', details: [] });
    const delta = decodeMessage<Record<string, unknown>>(TYPES.DeltaDiscoveryRequest, healthRequest('delta', { healthy: false, message: 'down' }));
    expect(delta).toMatchObject({ type_url: HEALTH_INFO_TYPE, error_detail: { code: 13, message: 'down' } });
  });
});
