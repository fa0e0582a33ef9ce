/**
 * PURE: the agent's reduced SDS codec against Envoy's real protos (`@grpc/grpc-js-xds/deps`):
 * what it encodes decodes as Envoy's DiscoveryResponse/Secret with the same values, and what
 * Envoy sends (node with metadata, error_detail, fields we do not model) decodes correctly.
 * Then the SotW bookkeeping of one stream (`SotwWatch`).
 */
import { beforeAll, describe, expect, test } from '@jest/globals';
import type { IssuedCertificate } from '../../src/ca/chain.js';
import { SECRET_TYPE_URL, decodeDiscoveryRequest, encodeDiscoveryResponse, encodeSecret } from '../../src/sds/proto.js';
import { SotwWatch, secretResource } from '../../src/sds/sotw.js';
import { sdsCodec, type Codec } from '../support/envoy-double/sds.js';

let envoy: Codec;
beforeAll(async () => {
  envoy = await sdsCodec();
});

const cert: IssuedCertificate = {
  certChainPem: '-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n',
  privateKeyPem: '-----BEGIN RSA PRIVATE KEY-----\nKEY\n-----END RSA PRIVATE KEY-----\n',
  rootCertPem: '-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n',
  identities: ['spiffe://cluster.local/ns/a/sa/b'],
  serialNumber: '01',
  notBefore: 0,
  notAfter: 1,
  createdAt: 0,
};

describe('wire compatibility with Envoy', () => {
  test("a response with default and ROOTCA decodes with Envoy's DiscoveryResponse and Secret", () => {
    const buf = encodeDiscoveryResponse({
      version_info: '2026-01-01T00:00:00Z/1',
      type_url: SECRET_TYPE_URL,
      nonce: 'n-1',
      resources: ['default', 'ROOTCA'].map((n) => ({ type_url: SECRET_TYPE_URL, value: encodeSecret(secretResource(n, cert)) })),
    });
    const res = envoy.response.toObject(envoy.response.decode(buf), { bytes: Buffer, arrays: true }) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(res).toMatchObject({ version_info: '2026-01-01T00:00:00Z/1', type_url: SECRET_TYPE_URL, nonce: 'n-1' });
    const secrets = (res.resources as Array<{ type_url: string; value: Buffer }>).map((a) => {
      expect(a.type_url).toBe(SECRET_TYPE_URL);
      return envoy.secret.toObject(envoy.secret.decode(a.value), { bytes: String, oneofs: true }) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    });
    expect(secrets[0]).toEqual({
      name: 'default',
      type: 'tls_certificate',
      tls_certificate: {
        certificate_chain: { inline_bytes: Buffer.from(cert.certChainPem).toString('base64'), specifier: 'inline_bytes' },
        private_key: { inline_bytes: Buffer.from(cert.privateKeyPem).toString('base64'), specifier: 'inline_bytes' },
      },
    });
    expect(secrets[1]).toEqual({
      name: 'ROOTCA',
      type: 'validation_context',
      validation_context: { trusted_ca: { inline_bytes: Buffer.from(cert.rootCertPem).toString('base64'), specifier: 'inline_bytes' } },
    });
    // Envoy's proto validation rules hold too (e.g. DataSource oneofs, required fields).
    for (const s of secrets) expect(envoy.secret.verify(envoy.secret.fromObject(s))).toBeNull();
  });

  test("Envoy's requests decode: node id, names, nonce, version, error_detail; unknown fields skipped", () => {
    const req = envoy.request.fromObject({
      version_info: 'v7',
      node: {
        id: 'sidecar~10.244.1.7~jiuxi.jiuxi-ns~jiuxi-ns.svc.cluster.local',
        cluster: 'jiuxi.jiuxi-ns',
        metadata: { fields: { CLUSTER_ID: { string_value: 'Kubernetes' } } },
        user_agent_name: 'envoy',
        user_agent_build_version: { version: { major_number: 1, minor_number: 36 } },
        client_features: ['envoy.lb.does_not_support_overprovisioning'],
      },
      resource_names: ['default'],
      type_url: SECRET_TYPE_URL,
      response_nonce: 'n-9',
      error_detail: { code: 13, message: 'Failed to load private key' },
      resource_locators: [{ name: 'default' }],
    });
    const decoded = decodeDiscoveryRequest(Buffer.from(envoy.request.encode(req).finish()));
    expect(decoded).toEqual({
      version_info: 'v7',
      node: { id: 'sidecar~10.244.1.7~jiuxi.jiuxi-ns~jiuxi-ns.svc.cluster.local', cluster: 'jiuxi.jiuxi-ns' },
      resource_names: ['default'],
      type_url: SECRET_TYPE_URL,
      response_nonce: 'n-9',
      error_detail: { code: 13, message: 'Failed to load private key' },
    });
  });
});

describe('SotwWatch: one stream', () => {
  const req = (o: { names: string[]; nonce?: string; version?: string; error?: string; type?: string }) => ({
    version_info: o.version ?? '',
    resource_names: o.names,
    type_url: o.type ?? SECRET_TYPE_URL,
    response_nonce: o.nonce ?? '',
    ...(o.error ? { error_detail: { code: 13, message: o.error } } : {}),
  });

  test('first request → respond; ACK → nothing; NACK → nothing (error kept); stale → nothing; new name → respond with all', () => {
    const w = new SotwWatch();
    expect(w.onRequest(req({ names: ['default'] }))).toEqual({ kind: 'respond', names: ['default'], reason: 'initial' });
    w.sent('n1');
    expect(w.onRequest(req({ names: ['default'], nonce: 'n1', version: 'v1' }))).toEqual({ kind: 'ack' });
    expect(w.versionAcked).toBe('v1');
    expect(w.onRequest(req({ names: ['default'], nonce: 'n1', version: 'v0', error: 'bad key' }))).toEqual({ kind: 'nack', code: 13, message: 'bad key' });
    expect(w.lastError).toBe('bad key');
    expect(w.onRequest(req({ names: ['default'], nonce: 'n0' }))).toEqual({ kind: 'stale', nonce: 'n0' });
    expect(w.onRequest(req({ names: ['default', 'ROOTCA'], nonce: 'n1', version: 'v1' }))).toEqual({ kind: 'respond', names: ['default', 'ROOTCA'], reason: 'names changed' });
    expect(w.lastError).toBeUndefined();
    w.sent('n2');
    expect(w.onRequest(req({ names: ['ROOTCA'], nonce: 'n2', version: 'v2' }))).toEqual({ kind: 'ack' }); // only removed
    expect(w.watches('default')).toBe(false);
    expect(w.watches('ROOTCA')).toBe(true);
    expect(w.onRequest(req({ names: [], nonce: 'n2', version: 'v2' }))).toEqual({ kind: 'unsubscribe' });
  });

  test('a reconnecting Envoy (a nonce from its previous stream, no watch here yet) is answered', () => {
    const w = new SotwWatch();
    expect(w.onRequest(req({ names: ['ROOTCA'], nonce: 'from-old-stream', version: 'v3' }))).toEqual({ kind: 'respond', names: ['ROOTCA'], reason: 'reconnect' });
  });

  test('another type is ignored', () => {
    const w = new SotwWatch();
    expect(w.onRequest(req({ names: ['x'], type: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' }))).toEqual({
      kind: 'wrong-type',
      typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
    });
    expect(w.names).toBeUndefined();
  });
});
