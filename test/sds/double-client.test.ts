/**
 * The Envoy double's SDS client on its own: which config references it follows (pure), and
 * Envoy's NACK path end to end — served a certificate whose key does not match, the double
 * rejects it with Envoy's message (our server logs the NACK), stays INITIALIZING, and accepts
 * the next, good one on the same stream.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import type { IssuedCertificate } from '../../src/ca/chain.js';
import { SdsServer } from '../../src/sds/server.js';
import { TestCa } from '../support/ca-server.js';
import { startDouble } from '../support/envoy-double-harness.js';
import { sdsSecretRefs } from '../support/envoy-double/sds.js';
import { ISTIO_COMMON_TLS_CONTEXT, captureLogger, doubleSecrets, sdsBootstrap, socketDir } from './helpers.js';
import { waitUntil } from '../support/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('sdsSecretRefs', () => {
  test("Istio's mTLS context: default and ROOTCA on sds-grpc, once each", () => {
    expect(sdsSecretRefs({ a: { common_tls_context: ISTIO_COMMON_TLS_CONTEXT }, b: [{ common_tls_context: ISTIO_COMMON_TLS_CONTEXT }] })).toEqual([
      { name: 'default', cluster: 'sds-grpc' },
      { name: 'ROOTCA', cluster: 'sds-grpc' },
    ]);
  });

  test('JSON (camelCase) names and @type forms; static secrets and ADS-delivered ones are not gRPC SDS', () => {
    const resource = {
      '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
      transportSocket: {
        typedConfig: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          commonTlsContext: {
            tlsCertificateSdsSecretConfigs: [{ name: 'default', sdsConfig: { apiConfigSource: { grpcServices: [{ envoyGrpc: { clusterName: 'sds-grpc' } }] } } }, { name: 'static-only' }],
            validationContextSdsSecretConfig: { name: 'ROOTCA', sdsConfig: { ads: {} } },
          },
        },
      },
    };
    expect(sdsSecretRefs(resource)).toEqual([
      { name: 'default', cluster: 'sds-grpc' },
      { name: 'ROOTCA', cluster: undefined },
    ]);
  });
});

test('a certificate whose key does not match is NACKed with Envoy’s message; the next good one is accepted', async () => {
  const ca = await TestCa.create();
  const a = await ca.issue({ uris: ['spiffe://cluster.local/ns/a/sa/a'] });
  const b = await ca.issue({ uris: ['spiffe://cluster.local/ns/b/sa/b'] });
  const cert = (chain: string, key: string, serial: string): IssuedCertificate => ({
    certChainPem: chain,
    privateKeyPem: key,
    rootCertPem: ca.rootCertPem,
    identities: [],
    serialNumber: serial,
    notBefore: 0,
    notAfter: Date.now() + 3_600_000,
    createdAt: Date.now(),
  });
  let current = cert(a.certPem, b.keyPem, 'mismatched');
  const listeners = new Set<(c: IssuedCertificate, change: { rootChanged: boolean; first: boolean }) => void>();
  const manager = {
    get certificate() {
      return current;
    },
    onUpdate: (l: (c: IssuedCertificate, change: { rootChanged: boolean; first: boolean }) => void) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  const dir = socketDir();
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'socket');
  const logs = captureLogger();
  const server = await SdsServer.start({ socketPath, manager, log: logs.log });
  cleanups.push(() => server.close());
  const d = startDouble({ bootstrap: sdsBootstrap(socketPath) });
  cleanups.push(() => d.dispose());

  const rejected = await d.waitForState('default rejected', (s) => (doubleSecrets(s).default?.rejected ?? 0) >= 1, 15_000);
  expect(rejected.state).toBe('INITIALIZING'); // ROOTCA arrived, default did not
  expect(doubleSecrets(rejected).default).toMatchObject({ updates: 0, connects: 1, lastRejection: 'Failed to load certificate chain from <inline>, private key does not match' });
  await waitUntil('the NACK in the server log', () => /Envoy rejected default \(nonce [\w-]+, code 13\): Failed to load certificate chain from <inline>, private key does not match/.test(logs.text()));

  current = cert(a.certPem, a.keyPem, 'good');
  for (const l of listeners) l(current, { rootChanged: false, first: false });
  const live = await d.live(10_000);
  expect(doubleSecrets(live).default).toMatchObject({ updates: 1, rejected: 1, connects: 1, uris: ['spiffe://cluster.local/ns/a/sa/a'] });
});
