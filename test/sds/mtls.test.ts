/**
 * The certificates are usable for Istio's mutual TLS: two workloads (frontend, backend) get
 * their `default` and `ROOTCA` over SDS into their Envoy doubles; a real node:tls handshake with
 * those PEMs succeeds in both directions with each side seeing the other's SPIFFE identity. A
 * workload whose certificate comes from another CA is rejected, as client and as server.
 */
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { uriSansOf } from '../../src/ca/chain.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { startDouble } from '../support/envoy-double-harness.js';
import { RawSdsStream, doubleSecrets, pemOf, sdsBootstrap, socketDir, workloadStack } from './helpers.js';

interface Identity {
  name: string;
  cert: string;
  key: string;
  ca: string;
}

let ca: TestCa;
let caServer: CaServer;
let otherServer: CaServer;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  ca = await TestCa.create();
  caServer = await CaServer.start({ ca, tokens: {} });
  otherServer = await CaServer.start({ ca: await TestCa.create({ organization: 'other.example' }), tokens: {} });
});
afterAll(async () => {
  await caServer.close();
  await otherServer.close();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A workload served by its own SDS server, its Envoy double holding the secrets. */
async function viaDouble(serviceAccount: string): Promise<Identity> {
  const dir = socketDir();
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'socket');
  const w = await workloadStack({ ca: caServer, socketPath, serviceAccount, env: { ECC_SIGNATURE_ALGORITHM: 'ECDSA' } });
  cleanups.push(() => w.dispose());
  const d = startDouble({ bootstrap: sdsBootstrap(socketPath) });
  cleanups.push(() => d.dispose());
  const s = doubleSecrets(await d.live(15_000));
  return { name: w.fixture.identity, cert: s.default?.certChain as string, key: s.default?.privateKey as string, ca: s.ROOTCA?.trustedCa as string };
}

/** A workload of another mesh (another CA), fetched over SDS directly. */
async function viaOtherCa(): Promise<Identity> {
  const w = await workloadStack({ ca: otherServer, serviceAccount: 'intruder' });
  cleanups.push(() => w.dispose());
  const get = async (name: string) => {
    const s = await RawSdsStream.open(w.socketPath);
    cleanups.push(() => s.close());
    s.send({ names: [name] });
    return (await s.next()).secrets[0];
  };
  const d = await get('default');
  return { name: w.fixture.identity, cert: pemOf(d, 'chain'), key: pemOf(d, 'key'), ca: pemOf(await get('ROOTCA'), 'ca') };
}

interface Outcome {
  /** `data`: what the client read from the server (it writes `ok` once the handshake is accepted). */
  client: { ok: boolean; error?: string; peer?: string[]; data?: string };
  server: { ok: boolean; error?: string; peer?: string[] };
}

/** One mutual-TLS handshake: `server` requires and verifies a client certificate against its ROOTCA. */
async function handshake(client: Identity, server: Identity): Promise<Outcome> {
  const out: Outcome = { client: { ok: false }, server: { ok: false } };
  const srv = tls.createServer({ cert: server.cert, key: server.key, ca: server.ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['istio'] });
  const serverDone = new Promise<void>((resolve) => {
    srv.once('secureConnection', (sock) => {
      out.server = { ok: sock.authorized, peer: uriSansOf(sock.getPeerX509Certificate() as NonNullable<ReturnType<typeof sock.getPeerX509Certificate>>) };
      sock.end('ok');
      resolve();
    });
    srv.once('tlsClientError', (err) => {
      out.server = { ok: false, error: err.message };
      resolve();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      cert: client.cert,
      key: client.key,
      ca: client.ca,
      ALPNProtocols: ['istio'],
      // Istio peers verify the SPIFFE URI SAN, not a host name.
      checkServerIdentity: (_host, cert) => (cert.subjectaltname?.includes(`URI:${server.name}`) ? undefined : new Error(`unexpected peer ${cert.subjectaltname}`)),
    });
    sock.once('secureConnect', () => {
      out.client = { ok: true, peer: uriSansOf(sock.getPeerX509Certificate() as NonNullable<ReturnType<typeof sock.getPeerX509Certificate>>) };
    });
    sock.setEncoding('utf8').on('data', (d: string) => (out.client.data = (out.client.data ?? '') + d));
    sock.once('error', (err) => {
      out.client = { ok: false, error: err.message };
      resolve();
    });
    sock.once('close', () => resolve());
  });
  await serverDone;
  await new Promise((r) => srv.close(r));
  return out;
}

test('mutual TLS between two workloads with their SDS secrets; another CA is rejected both ways', async () => {
  const [frontend, backend] = await Promise.all([viaDouble('frontend'), viaDouble('backend')]);
  expect(frontend.name).toBe('spiffe://cluster.local/ns/jiuxi-ns/sa/frontend');
  expect(frontend.ca).toBe(ca.rootCertPem);

  const ok = await handshake(frontend, backend);
  expect(ok.client).toEqual({ ok: true, peer: [backend.name], data: 'ok' });
  expect(ok.server).toEqual({ ok: true, peer: [frontend.name] });
  const back = await handshake(backend, frontend);
  expect(back.client).toEqual({ ok: true, peer: [frontend.name], data: 'ok' });
  expect(back.server).toEqual({ ok: true, peer: [backend.name] });

  const intruder = await viaOtherCa();
  // As a client it even trusts the mesh root (roots are public): the server still refuses it.
  const asClient = await handshake({ ...intruder, ca: ca.rootCertPem }, backend);
  expect(asClient.server.ok).toBe(false); // no secureConnection: the TLS stack refused the client certificate
  expect(asClient.client.data).toBeUndefined();
  const asServer = await handshake(frontend, intruder);
  expect(asServer.client.ok).toBe(false);
  expect(asServer.client.error).toBe('self-signed certificate in certificate chain');
  expect(asServer.client.data).toBeUndefined();
});
