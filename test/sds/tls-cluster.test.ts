/**
 * The control plane's `tlsCluster` (what istiod sends for a DestinationRule with TLS and no
 * credentialName) is a valid Envoy v3 Cluster, and the double finds every SDS name it references
 * with the gRPC cluster it names (the double fetches each over that cluster).
 */
import { describe, expect, test } from '@jest/globals';
import { validateMessage } from '../support/bootstrap-validator.js';
import { tlsCluster } from '../support/control-plane.js';
import { sdsSecretRefs } from '../support/envoy-double/sds.js';

/** protobufjs object form → proto JSON for the validator: `{ seconds: n }` durations become `"ns"`. */
function protoJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(protoJson);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === 'seconds' && typeof o.seconds === 'number') return `${o.seconds}s`;
  return Object.fromEntries(keys.map((k) => [k, protoJson(o[k])]));
}

describe('tlsCluster', () => {
  type Secrets = { certificate?: string; validation?: string; validationCluster?: string; sni?: string };
  test.each<[Secrets]>([
    [{ certificate: 'file-cert:/a/cert.pem~/a/key.pem', validation: 'file-root:/a/ca.pem' }],
    [{ validation: 'file-root:system', sni: 'public.example.com' }],
    [{ certificate: 'default', validation: 'ROOTCA' }],
    [{ validation: 'file-root:/a/ca.pem', validationCluster: 'sds-files-grpc' }],
  ])('%j: a valid Cluster whose SDS references the double finds', (secrets) => {
    const c = tlsCluster('outbound|443||x.example.com', secrets);
    expect(validateMessage('envoy.config.cluster.v3.Cluster', protoJson(c))).toEqual([]);
    const want = [
      ...(secrets.certificate ? [{ name: secrets.certificate, cluster: 'sds-grpc' }] : []),
      ...(secrets.validation ? [{ name: secrets.validation, cluster: secrets.validationCluster ?? 'sds-grpc' }] : []),
    ];
    expect(sdsSecretRefs(c)).toEqual(want);
  });

  test('a misspelt field is caught by the validator', () => {
    const c = tlsCluster('x', { validation: 'ROOTCA' }) as { transport_socket: { typed_config: Record<string, unknown> } };
    c.transport_socket.typed_config.common_tls_contxt = {};
    expect(validateMessage('envoy.config.cluster.v3.Cluster', protoJson(c)).map((e) => e.path)).toEqual(['transport_socket.typed_config.common_tls_contxt']);
  });
});
