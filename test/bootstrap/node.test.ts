import { describe, expect, test } from '@jest/globals';
import { computeIdentity, nodeIps } from '../../src/bootstrap/node.js';
import { POD_INTERFACES, POD_INTERFACES_V6, seedConfig } from '../support/config.js';

describe('node identity (SPEC §3)', () => {
  const config = seedConfig();
  const id = computeIdentity(config, { interfaces: POD_INTERFACES });

  test('node ID for the seed pod', () => {
    expect(id.id).toBe('sidecar~10.244.1.7~jiuxi-7d9c8-abcde.jiuxi-ns~jiuxi-ns.svc.cluster.local');
    expect(id.ips).toEqual(['10.244.1.7']);
    expect(id.ipv6).toBe(false);
    expect(id.localhost).toBe('127.0.0.1');
  });

  test('node cluster from label app (current Istio ignores --serviceCluster)', () => {
    expect(id.cluster).toBe('jiuxi.jiuxi-ns');
    const foo = seedConfig({ podLabelsText: 'app="foo"' });
    expect(computeIdentity(foo, { interfaces: POD_INTERFACES }).cluster).toBe('foo.jiuxi-ns');
  });

  test('node cluster fallbacks and modes', () => {
    const c = (labels: string, proxyConfig?: string) =>
      computeIdentity(seedConfig({ podLabelsText: labels, ...(proxyConfig ? { extraEnv: { PROXY_CONFIG: proxyConfig } } : {}) }), {
        interfaces: POD_INTERFACES,
      }).cluster;
    expect(c('app.kubernetes.io/name="k8sname"')).toBe('k8sname.jiuxi-ns');
    expect(c('')).toBe('jiuxi.jiuxi-ns'); // ISTIO_META_WORKLOAD_NAME
    expect(c('app="a"\nservice.istio.io/canonical-name="canon"', 'tracingServiceName: CANONICAL_NAME_ONLY')).toBe('canon');
    expect(c('app="a"\nservice.istio.io/canonical-name="canon"', 'tracingServiceName: CANONICAL_NAME_AND_NAMESPACE')).toBe('canon.jiuxi-ns');
    expect(c('app="a"', 'serviceCluster: explicit')).toBe('explicit');
  });

  test('metadata: ISTIO_META_* strings, POD_PORTS stays a JSON string, typed fields', () => {
    const m = id.metadata;
    expect(m.POD_PORTS).toBe('[\n    {"containerPort":80}\n]');
    expect(m.CLUSTER_ID).toBe('Kubernetes');
    expect(m.WORKLOAD_NAME).toBe('jiuxi');
    expect(m.NAME).toBe('jiuxi-7d9c8-abcde');
    expect(m.NAMESPACE).toBe('jiuxi-ns');
    expect(m.SERVICE_ACCOUNT).toBe('default');
    expect(m.INSTANCE_IPS).toBe('10.244.1.7');
    expect(m.ENVOY_STATUS_PORT).toBe(15021);
    expect(m.ENVOY_PROMETHEUS_PORT).toBe(15090);
    expect(m.PILOT_SAN).toEqual(['istiod.istio-system.svc']);
    expect(m.PROXY_CONFIG).toMatchObject({ concurrency: 2, drainDuration: '45s', proxyAdminPort: 15000, controlPlaneAuthPolicy: 'MUTUAL_TLS' });
    expect(m.LABELS).toEqual({ app: 'jiuxi', 'istio.io/rev': '', 'security.istio.io/tlsMode': 'istio' });
    expect((m.ANNOTATIONS as Record<string, string>)['sidecar.istio.io/interceptionMode']).toBe('REDIRECT');
    expect(m.WORKLOAD_IDENTITY_SOCKET_FILE).toBe('socket');
    expect(m.METADATA_DISCOVERY).toBe('false');
    expect(m.ENVOY_SKIP_DEPRECATED_LOGS).toBe('true');
    expect(m.EXIT_ON_ZERO_ACTIVE_CONNECTIONS).toBeUndefined();
    expect(Object.keys(m)).toEqual([...Object.keys(m)].sort());
  });

  test('ISTIO_METAJSON_* merges at top level; LABELS from STATIC_LABELS overlaid; bad JSON warns', () => {
    const cfg = seedConfig({
      extraEnv: { ISTIO_METAJSON_X: '{"a":"b"}', ISTIO_METAJSON_LABELS: '{"static":"s","app":"old"}', ISTIO_METAJSON_BAD: '{' },
    });
    const r = computeIdentity(cfg, { interfaces: POD_INTERFACES });
    expect(r.metadata.a).toBe('b');
    expect(r.metadata.STATIC_LABELS).toEqual({ app: 'old', static: 's' });
    expect((r.metadata.LABELS as Record<string, string>).app).toBe('jiuxi');
    expect((r.metadata.LABELS as Record<string, string>).static).toBe('s');
    expect(r.warnings.join()).toContain('ISTIO_METAJSON_BAD');
  });

  test('proxyMetadata ISTIO_META_* feeds metadata; a real env var wins', () => {
    const cfg = seedConfig({ extraEnv: { PROXY_CONFIG: 'proxyMetadata: {ISTIO_META_FOO: pm, ISTIO_META_CLUSTER_ID: pm, OTHER: x}' } });
    const m = computeIdentity(cfg, { interfaces: POD_INTERFACES }).metadata;
    expect(m.FOO).toBe('pm');
    expect(m.CLUSTER_ID).toBe('Kubernetes');
    expect(m.OTHER).toBeUndefined();
  });

  test('locality label', () => {
    const cfg = seedConfig({ podLabelsText: 'app="a"\ntopology.istio.io/locality="us-east.us-east-1a.rack1"' });
    const r = computeIdentity(cfg, { interfaces: POD_INTERFACES });
    expect(r.locality).toEqual({ region: 'us-east', zone: 'us-east-1a', sub_zone: 'rack1' });
    expect((r.metadata.LABELS as Record<string, string>)['istio-locality']).toBe('us-east/us-east-1a/rack1');
  });

  test('IPv6-only pod', () => {
    const cfg = seedConfig({ extraEnv: { INSTANCE_IP: 'fd00:10:244::7' } });
    const r = computeIdentity(cfg, { interfaces: POD_INTERFACES_V6 });
    expect(r.ipv6).toBe(true);
    expect(r.localhost).toBe('::1');
    expect(r.wildcard).toBe('::');
    expect(r.id).toBe('sidecar~fd00:10:244::7~jiuxi-7d9c8-abcde.jiuxi-ns~jiuxi-ns.svc.cluster.local');
  });

  test('node IPs: INSTANCE_IP first, interfaces, exclusions, loopbacks when no interface address', () => {
    expect(nodeIps('10.0.0.9', POD_INTERFACES, [])).toEqual(['10.0.0.9', '10.244.1.7']);
    expect(nodeIps('not-an-ip', POD_INTERFACES, [])).toEqual(['10.244.1.7']);
    expect(nodeIps('10.0.0.9', POD_INTERFACES, ['eth0'])).toEqual(['10.0.0.9', '127.0.0.1', '::1']);
    expect(nodeIps('', { lo: POD_INTERFACES.lo }, [])).toEqual(['127.0.0.1', '::1']);
  });

  test('PILOT_SAN absent in standalone mode and with controlPlaneAuthPolicy NONE', () => {
    expect(computeIdentity(seedConfig({ extraArgs: ['--standalone'] }), { interfaces: POD_INTERFACES }).metadata.PILOT_SAN).toBeUndefined();
    const none = seedConfig({ extraEnv: { PROXY_CONFIG: 'controlPlaneAuthPolicy: NONE' } });
    expect(computeIdentity(none, { interfaces: POD_INTERFACES }).metadata.PILOT_SAN).toBeUndefined();
  });
});

describe('podinfo change (SPEC §8)', () => {
  test('only LABELS and ANNOTATIONS change; ID, cluster and locality stay', async () => {
    const { withPodInfo } = await import('../../src/bootstrap/node.js');
    const config = seedConfig();
    const start = computeIdentity(config, { interfaces: POD_INTERFACES });
    const next = withPodInfo(start, config, POD_INTERFACES, { app: 'other', version: 'v2', 'pod-template-hash': 'x' }, { n: '1' });
    expect(next.metadata.LABELS).toEqual({ app: 'other', version: 'v2' });
    expect(next.metadata.ANNOTATIONS).toEqual({ n: '1' });
    expect(next.cluster).toBe(start.cluster);
    expect(next.id).toBe(start.id);
    expect({ ...next.metadata, LABELS: undefined, ANNOTATIONS: undefined }).toEqual({ ...start.metadata, LABELS: undefined, ANNOTATIONS: undefined });
  });
});
