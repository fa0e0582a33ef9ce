/**
 * CaClient against a real gRPC CA (test/support/ca-server.ts) over TLS and plaintext: the
 * issued chain is real (Node's X509Certificate and `openssl verify` accept it against the
 * root, the URI SAN is the SPIFFE identity, the key matches), the request carries the token,
 * ClusterID and TTL, the token file is re-read per call; every fault fails with an error naming
 * its cause; the CSR metrics count what happened.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { CaClient } from '../../src/ca/client.js';
import { registerCaMetrics } from '../../src/ca/metrics.js';
import { AgentError } from '../../src/errors.js';
import { CaServer, TestCa, workloadFixture, type WorkloadFixture } from '../support/ca-server.js';

let ca: TestCa;
let server: CaServer;
const fixtures: WorkloadFixture[] = [];
const servers: CaServer[] = [];

beforeAll(async () => {
  ca = await TestCa.create();
  server = await CaServer.start({ ca, tokens: {} });
});
afterAll(async () => {
  await server.close();
});
afterEach(async () => {
  for (const f of fixtures.splice(0)) f.dispose();
  for (const s of servers.splice(0)) await s.close();
  server.setFault(undefined);
});

function workload(o: Parameters<typeof workloadFixture>[0]): WorkloadFixture {
  const f = workloadFixture(o);
  fixtures.push(f);
  return f;
}

/** Is the openssl CLI available? (CI installs it; elsewhere its checks are skipped with a note.) */
const HAVE_OPENSSL = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    console.log('openssl not found: skipping the openssl cross-checks (Node\'s X509Certificate checks still run)');
    return false;
  }
})();

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function rejection(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

describe('issuing a workload certificate', () => {
  test('TLS to the CA: a real chain for the SPIFFE identity, with the token, ClusterID and TTL on the wire', async () => {
    const w = workload({ server, env: { SECRET_TTL: '6s' } });
    expect(w.options.ca.tls).toMatchObject({ serverName: 'istiod.istio-system.svc' });
    const before = server.requests.length;
    const { certificate: c, warnings } = await new CaClient(w.options.ca).issue();
    expect(warnings).toEqual([]);

    const req = server.requests[before];
    expect(req).toMatchObject({ authorization: `Bearer ${w.token}`, clusterId: 'Kubernetes', validityDuration: 6, csrSans: [w.identity], outcome: 'OK' });

    const certs = c.certChainPem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
    expect(certs).toHaveLength(2); // leaf + root, as istiod answers
    const leaf = new X509Certificate(c.certChainPem);
    const root = new X509Certificate(c.rootCertPem);
    expect(c.rootCertPem).toBe(ca.rootCertPem);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.subjectAltName).toBe(`URI:${w.identity}`);
    expect(c.identities).toEqual([w.identity]);
    expect(leaf.checkPrivateKey(createPrivateKey(c.privateKeyPem))).toBe(true);
    expect(c.privateKeyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/); // PKCS#1, Istio's default
    expect(createPrivateKey(c.privateKeyPem).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(c.notAfter - c.notBefore).toBe(6000);
    expect(c.serialNumber).toBe(leaf.serialNumber);

    // openssl agrees: the chain verifies against the root, and the key is the certificate's.
    if (!HAVE_OPENSSL) return;
    fs.writeFileSync(path.join(w.cwd, 'root.pem'), c.rootCertPem);
    fs.writeFileSync(path.join(w.cwd, 'chain.pem'), c.certChainPem);
    fs.writeFileSync(path.join(w.cwd, 'key.pem'), c.privateKeyPem);
    expect(openssl(['verify', '-CAfile', 'root.pem', 'chain.pem'], w.cwd)).toBe('chain.pem: OK\n');
    const certPub = openssl(['x509', '-in', 'chain.pem', '-noout', '-pubkey'], w.cwd);
    const keyPub = openssl(['pkey', '-in', 'key.pem', '-pubout'], w.cwd);
    expect(keyPub).toBe(certPub);
    expect(openssl(['x509', '-in', 'chain.pem', '-noout', '-ext', 'subjectAltName'], w.cwd)).toContain(`URI:${w.identity}`);
  });

  test('an intermediate CA: default carries leaf + intermediate + root, ROOTCA the root; openssl verifies the chain', async () => {
    const ica = await TestCa.create({ intermediate: true });
    const s = await CaServer.start({ ca: ica, tokens: {} });
    servers.push(s);
    const w = workload({ server: s });
    const { certificate: c } = await new CaClient(w.options.ca).issue();
    expect(c.certChainPem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(3);
    expect(c.rootCertPem).toBe(ica.rootCertPem);
    expect(new X509Certificate(c.certChainPem).checkIssued(new X509Certificate(ica.intermediatePem as string))).toBe(true);
    if (!HAVE_OPENSSL) return;
    fs.writeFileSync(path.join(w.cwd, 'root.pem'), c.rootCertPem);
    fs.writeFileSync(path.join(w.cwd, 'inter.pem'), ica.intermediatePem as string);
    fs.writeFileSync(path.join(w.cwd, 'chain.pem'), c.certChainPem);
    expect(openssl(['verify', '-CAfile', 'root.pem', '-untrusted', 'inter.pem', 'chain.pem'], w.cwd)).toBe('chain.pem: OK\n');
  });

  test('ECC_SIGNATURE_ALGORITHM=ECDSA: a P-256 key in SEC 1 form; PKCS8_KEY=true: PKCS#8', async () => {
    const w = workload({ server, env: { ECC_SIGNATURE_ALGORITHM: 'ECDSA' } });
    const { certificate: c } = await new CaClient(w.options.ca).issue();
    expect(c.privateKeyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----\n/);
    const key = createPrivateKey(c.privateKeyPem);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(new X509Certificate(c.certChainPem).checkPrivateKey(key)).toBe(true);

    const w8 = workload({ server, env: { ECC_SIGNATURE_ALGORITHM: 'ECDSA', PKCS8_KEY: 'true' } });
    const { certificate: c8 } = await new CaClient(w8.options.ca).issue();
    expect(c8.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  test('the token file is re-read for every request', async () => {
    const w = workload({ server });
    const client = new CaClient(w.options.ca);
    await client.issue();
    const other = workloadFixture({ server, writeToken: false }); // registers a second token for the same identity
    fixtures.push(other);
    fs.writeFileSync(path.join(w.cwd, 'var/run/secrets/tokens/istio-token'), `${other.token}\n`);
    const before = server.requests.length;
    await client.issue();
    expect(server.requests[before]?.authorization).toBe(`Bearer ${other.token}`);
  });

  test('the plaintext transport (what CA_ADDR …:15010 selects): the bearer token still goes with the request', async () => {
    const plain = await CaServer.start({ ca, tokens: {}, tls: false });
    servers.push(plain);
    const w = workload({ server: plain });
    // The server cannot own port 15010 in a test, so take the options the :15010 rule produces (test/ca/options.test.ts).
    const client = new CaClient({ ...w.options.ca, tls: false });
    const before = plain.requests.length;
    const { certificate } = await client.issue();
    expect(certificate.identities).toEqual([w.identity]);
    expect(plain.requests[before]?.authorization).toBe(`Bearer ${w.token}`);
  });
});

describe('faults, each named', () => {
  test('token file missing: names the file and JWT_POLICY; nothing reaches the CA', async () => {
    const w = workload({ server, writeToken: false });
    const before = server.requests.length;
    const err = await rejection(new CaClient(w.options.ca).issue());
    expect(err.code).toBe('CA_TOKEN_UNREADABLE');
    expect(err.message).toBe(`cannot read the service account token ${path.join(w.cwd, 'var/run/secrets/tokens/istio-token')} (JWT_POLICY=third-party-jwt): no such file`);
    expect(server.requests.length).toBe(before);
  });

  test("CA TLS SAN mismatch: names the expected SAN and the certificate's", async () => {
    const wrong = await CaServer.start({ ca, tokens: {}, tls: { dnsNames: ['ca.example.com'] } });
    servers.push(wrong);
    const w = workload({ server: wrong });
    const err = await rejection(new CaClient(w.options.ca).issue());
    expect(err.code).toBe('CA_TLS_FAILED');
    expect(err.message).toContain(`TLS handshake with CA localhost:${wrong.port} failed`);
    expect(err.message).toContain('expected SAN istiod.istio-system.svc; the certificate has DNS:ca.example.com');
    expect(wrong.requests).toHaveLength(0);
  });

  test('CA certificate from an untrusted root: a TLS error naming the root file', async () => {
    const other = await TestCa.create({ organization: 'other.example' });
    const w = workload({ server, rootCertPem: other.rootCertPem });
    const err = await rejection(new CaClient(w.options.ca).issue());
    expect(err.code).toBe('CA_TLS_FAILED');
    expect(err.message).toBe(
      `TLS handshake with CA localhost:${server.port} failed: its certificate is not trusted by the root ${path.join(w.cwd, 'var/run/secrets/istio/root-cert.pem')} (the default CA root): unable to verify the first certificate`,
    );
  });

  test('CA root file missing: names the file and the setting that chose it', async () => {
    const w = workload({ server, env: { CA_ROOT_CA: 'certs/ca.pem' } });
    const err = await rejection(new CaClient(w.options.ca).issue());
    expect(err.code).toBe('CA_TLS_FAILED');
    expect(err.message).toBe(`cannot read the root certificate for the CA connection ${path.join(w.cwd, 'certs/ca.pem')} (CA_ROOT_CA): no such file`);
  });

  test('the CA returns an error: its status and message are in the error', async () => {
    const w = workload({ server });
    server.setFault({ code: grpc.status.INTERNAL, message: 'failed to sign: CA not ready', times: 1 });
    const err = await rejection(new CaClient(w.options.ca).issue());
    expect(err.code).toBe('CA_REJECTED');
    expect(err.message).toBe(`CA localhost:${server.port} returned an error: INTERNAL: failed to sign: CA not ready`);
  });

  test('CSR rejected (the pod says one service account, its token another): names the identity and the reason', async () => {
    const w = workload({ server, serviceAccount: 'default' });
    server.options.tokens[w.token] = 'spiffe://cluster.local/ns/jiuxi-ns/sa/other';
    const err = await rejection(new CaClient(w.options.ca).issue());
    expect(err.code).toBe('CA_REJECTED');
    expect(err.message).toMatch(/^CA localhost:\d+ rejected the CSR for spiffe:\/\/cluster\.local\/ns\/jiuxi-ns\/sa\/default: CSR signing error \(the CSR asks for .* but the caller is spiffe:\/\/cluster\.local\/ns\/jiuxi-ns\/sa\/other\)$/);
  });

  test('a token the CA does not accept: unauthenticated, naming the token file', async () => {
    const w = workload({ server, registerToken: false });
    const err = await rejection(new CaClient(w.options.ca).issue());
    expect(err.code).toBe('CA_REJECTED');
    expect(err.message).toContain('rejected the request as unauthenticated (request authenticate failure); token ');
    expect(err.message).toContain('JWT_POLICY=third-party-jwt');
  });

  test('CA down: unreachable, naming the address; counted as a failed CSR', async () => {
    const s = await CaServer.start({ ca, tokens: {} });
    servers.push(s);
    const w = workload({ server: s });
    await s.down();
    const registry = new Registry();
    const client = new CaClient(w.options.ca, { metrics: registerCaMetrics(registry) });
    const err = await rejection(client.issue());
    expect(err.code).toBe('CA_UNAVAILABLE');
    expect(err.message).toMatch(new RegExp(`^CA localhost:${s.port} is unreachable: connect ECONNREFUSED (127\\.0\\.0\\.1|::1):${s.port}$`));
    const text = await registry.metrics();
    expect(text).toContain('istio_agent_num_outgoing_requests{request_type="csr"} 1\n');
    expect(text).toContain('istio_agent_num_failed_outgoing_requests{request_type="csr"} 1\n');
  });
});

test('metrics: requests, failures and latency of CSRs', async () => {
  const registry = new Registry();
  const w = workload({ server });
  const client = new CaClient(w.options.ca, { metrics: registerCaMetrics(registry) });
  await client.issue();
  server.setFault({ code: grpc.status.INTERNAL, message: 'boom', times: 1 });
  await rejection(client.issue());
  const text = await registry.metrics();
  expect(text).toContain('istio_agent_num_outgoing_requests{request_type="csr"} 2\n');
  expect(text).toContain('istio_agent_num_failed_outgoing_requests{request_type="csr"} 1\n');
  const latency = Number(/istio_agent_outgoing_latency\{request_type="csr"\} ([\d.e+-]+)/.exec(text)?.[1]);
  expect(latency).toBeGreaterThan(0);
});
