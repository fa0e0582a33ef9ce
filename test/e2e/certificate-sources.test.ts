/**
 * Where `default` and `ROOTCA` come from, end to end (issue 14): the real CLI with the Envoy
 * double, the test control plane (a cluster using `default`/`ROOTCA`, as istiod's mTLS clusters)
 * and the test CA.
 * - Mounted certificates (`./var/run/secrets/workload-spiffe-credentials`, kubelet-style; and
 *   `./etc/certs`, plain files): no CSR reaches the CA; the double's `default` is the mounted
 *   pair; rotating the files rotates the secret on the open stream (and OUTPUT_CERTS, as Istio).
 * - OUTPUT_CERTS: the three files match what the double received, after the first issue and
 *   after a rotation; the key file is 0600.
 * - An external SDS server already on `./var/run/secrets/workload-spiffe-uds/socket`: the agent
 *   starts, sends no CSR, the bootstrap points `sds-grpc` at that socket and `sds-files-grpc` at
 *   the agent's file-credential socket, and the double gets `default` from the external server
 *   and a `file-root:` secret from the agent.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../src/log.js';
import { SecretCatalog } from '../../src/sds/catalog.js';
import { FileSecretStore } from '../../src/sds/file-secrets.js';
import { SdsServer } from '../../src/sds/server.js';
import type { AgentProcess } from '../support/agent-process.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { ControlPlane, testCluster, testListener, tlsCluster } from '../support/control-plane.js';
import { request } from '../support/envoy-double-harness.js';
import { kubeletWrite } from '../support/kubelet-volume.js';
import { E2E_IDENTITY, E2E_TOKEN, doubleState, replaceFile, startE2eAgent } from '../support/sds-e2e.js';

const MTLS_CLUSTER = 'outbound|80||backend.jiuxi-ns.svc.cluster.local';

let ca: TestCa;
let caServer: CaServer;
beforeAll(async () => {
  ca = await TestCa.create();
  caServer = await CaServer.start({ ca, tokens: { [E2E_TOKEN]: E2E_IDENTITY } });
});
afterAll(async () => {
  await caServer.close();
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function controlPlane(extra: Array<Record<string, unknown>> = []): Promise<ControlPlane> {
  const cp = await ControlPlane.start({
    clusters: [tlsCluster(MTLS_CLUSTER, { certificate: 'default', validation: 'ROOTCA' }), ...extra, testCluster('BlackHoleCluster')],
    listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')],
    token: E2E_TOKEN,
  });
  cleanups.push(() => cp.close());
  return cp;
}

function tempCwd(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-test-'));
}

async function live(a: AgentProcess): Promise<NonNullable<ReturnType<typeof doubleState>>> {
  return a.waitFor('the double LIVE', () => {
    const s = doubleState(a);
    return s?.state === 'LIVE' ? s : undefined;
  }, 20_000);
}

async function stop(a: AgentProcess): Promise<void> {
  a.signal('SIGTERM');
  expect(await a.waitExit()).toEqual({ code: 0, signal: null });
}

describe('mounted workload certificates', () => {
  test('workload-spiffe-credentials (kubelet ..data swap): no CSR; default is the mounted pair; rotating the files rotates it', async () => {
    const requestsBefore = caServer.requests.length;
    const cwd = tempCwd();
    const dir = path.join(cwd, 'var/run/secrets/workload-spiffe-credentials');
    const pair1 = await ca.issue({ uris: [E2E_IDENTITY] });
    kubeletWrite(dir, { 'cert-chain.pem': pair1.certPem, 'key.pem': pair1.keyPem, 'root-cert.pem': ca.rootCertPem });
    const cp = await controlPlane();
    const a = await startE2eAgent({ cp, caServer, rootCertPem: ca.rootCertPem, cwd, env: { OUTPUT_CERTS: './out' } });
    cleanups.push(() => a.dispose());
    const s = await live(a);
    const out = (f: string): string => fs.readFileSync(path.join(cwd, 'out', f), 'utf8');
    expect([out('cert-chain.pem'), out('key.pem'), out('root-cert.pem')]).toEqual([pair1.certPem, pair1.keyPem, ca.rootCertPem]); // as Istio: the served default, whatever its source
    expect(s.sds?.default).toMatchObject({ kind: 'tls_certificate', certChain: pair1.certPem, privateKey: pair1.keyPem, uris: [E2E_IDENTITY], updates: 1 });
    expect(s.sds?.ROOTCA?.trustedCa).toBe(ca.rootCertPem);
    expect(a.stderr).toMatch(/workload certificates from files \(workload certificate files in \.\/var\/run\/secrets\/workload-spiffe-credentials\)[^\n]*no CA client, no CSR/);

    await a.waitForLog(/watching [^\n]*workload-spiffe-credentials for/);
    const pair2 = await ca.issue({ uris: [E2E_IDENTITY] });
    kubeletWrite(dir, { 'cert-chain.pem': pair2.certPem, 'key.pem': pair2.keyPem, 'root-cert.pem': ca.rootCertPem });
    const rotated = await a.waitFor('the rotated pair', () => {
      const r = doubleState(a)?.sds?.default;
      return r?.certChain === pair2.certPem ? r : undefined;
    });
    expect(rotated).toMatchObject({ privateKey: pair2.keyPem, connects: 1, updates: 2, serial: new X509Certificate(pair2.certPem).serialNumber });
    await a.waitFor('OUTPUT_CERTS rotated too', () => out('cert-chain.pem') === pair2.certPem && out('key.pem') === pair2.keyPem);
    expect(caServer.requests.length).toBe(requestsBefore); // no CSR, ever
    // Expiry of the mounted chain, with Istio's metric name.
    const metrics = (await request({ port: a.ports.status, path: '/stats/prometheus' })).body;
    const left = Number(/^istio_agent_cert_expiry_seconds\{resource_name="default"\} (\S+)$/m.exec(metrics)?.[1]);
    expect(left).toBeGreaterThan(3000); // the test CA's leaves live an hour
    expect(left).toBeLessThanOrEqual(3600);
    await stop(a);
  });

  test('./etc/certs (Istio 1.6, plain files): served without a CSR; a rename rotates it', async () => {
    const requestsBefore = caServer.requests.length;
    const pair1 = await ca.issue({ uris: [E2E_IDENTITY] });
    const cp = await controlPlane();
    const a = await startE2eAgent({
      cp,
      caServer,
      rootCertPem: ca.rootCertPem,
      files: { 'etc/certs/cert-chain.pem': pair1.certPem, 'etc/certs/key.pem': pair1.keyPem, 'etc/certs/root-cert.pem': ca.rootCertPem },
    });
    cleanups.push(() => a.dispose());
    const s = await live(a);
    expect(s.sds?.default).toMatchObject({ certChain: pair1.certPem, updates: 1 });
    await a.waitForLog(/watching [^\n]*etc\/certs for/);
    const pair2 = await ca.issue({ uris: [E2E_IDENTITY] });
    replaceFile(path.join(a.cwd, 'etc/certs/key.pem'), pair2.keyPem, 0o600);
    replaceFile(path.join(a.cwd, 'etc/certs/cert-chain.pem'), pair2.certPem);
    await a.waitFor('the rotated pair', () => doubleState(a)?.sds?.default?.certChain === pair2.certPem);
    expect(doubleState(a)?.sds?.default).toMatchObject({ privateKey: pair2.keyPem, connects: 1 });
    expect(caServer.requests.length).toBe(requestsBefore);
    await stop(a);
  });
});

describe('OUTPUT_CERTS', () => {
  test('the files match what the double received, after the first issue and after a rotation; key.pem is 0600', async () => {
    const cp = await controlPlane();
    const a = await startE2eAgent({ cp, caServer, rootCertPem: ca.rootCertPem, env: { OUTPUT_CERTS: './out/certs', SECRET_TTL: '4s' } });
    cleanups.push(() => a.dispose());
    const out = path.join(a.cwd, 'out/certs');
    const read = (f: string): string | undefined => {
      try {
        return fs.readFileSync(path.join(out, f), 'utf8');
      } catch {
        return undefined;
      }
    };
    const matches = (): { serial: string; updates: number } | undefined => {
      const s = doubleState(a)?.sds;
      const d = s?.default;
      if (!d?.certChain || read('cert-chain.pem') !== d.certChain || read('key.pem') !== d.privateKey || read('root-cert.pem') !== s?.ROOTCA?.trustedCa) return undefined;
      return { serial: d.serial ?? '', updates: d.updates };
    };
    const first = await a.waitFor('OUTPUT_CERTS matching the first certificate', matches, 20_000);
    expect(first.updates).toBe(1);
    expect(fs.statSync(path.join(out, 'key.pem')).mode & 0o777).toBe(0o600);
    const second = await a.waitFor('OUTPUT_CERTS matching a rotated certificate', () => {
      const m = matches();
      return m && m.serial !== first.serial ? m : undefined;
    }, 20_000);
    expect(second.updates).toBeGreaterThanOrEqual(2);
    expect(fs.statSync(path.join(out, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(out).sort()).toEqual(['cert-chain.pem', 'key.pem', 'root-cert.pem']); // no temporary file left
    await stop(a);
  });
});

describe('an external SDS provider', () => {
  test('a healthy SDS server on the workload socket: no CSR; the bootstrap references it for default/ROOTCA and the files socket for file secrets', async () => {
    const requestsBefore = caServer.requests.length;
    const cwd = tempCwd();
    // "SPIRE": a real SDS server serving a mounted pair on the workload socket.
    const spire = path.join(cwd, 'spire');
    const pair = await ca.issue({ uris: [E2E_IDENTITY] });
    fs.mkdirSync(spire);
    fs.writeFileSync(path.join(spire, 'cert.pem'), pair.certPem);
    fs.writeFileSync(path.join(spire, 'key.pem'), pair.keyPem);
    fs.writeFileSync(path.join(spire, 'root.pem'), ca.rootCertPem);
    fs.writeFileSync(path.join(cwd, 'egress-ca.pem'), ca.rootCertPem);
    const log = createLogger({ outputLevel: 'error', asJson: true, destination: { write: () => undefined } });
    const files = new FileSecretStore({ cwd, log });
    const catalog = new SecretCatalog({ workload: { kind: 'mounted', certPath: path.join(spire, 'cert.pem'), keyPath: path.join(spire, 'key.pem'), rootPath: path.join(spire, 'root.pem'), reason: 'test' }, files });
    const externalSocket = path.join(cwd, 'var/run/secrets/workload-spiffe-uds/socket');
    const external = await SdsServer.start({ socketPath: externalSocket, catalog, log });
    cleanups.push(async () => {
      await external.close();
      catalog.close();
      await files.close();
    });

    const FILE_ROOT = `file-root:${path.join(cwd, 'egress-ca.pem')}`;
    const cp = await controlPlane([tlsCluster('outbound|443||egress.example.com', { validation: FILE_ROOT, validationCluster: 'sds-files-grpc' })]);
    const a = await startE2eAgent({ cp, caServer, rootCertPem: ca.rootCertPem, cwd });
    cleanups.push(() => a.dispose());
    const s = await live(a);
    expect(s.sds?.default).toMatchObject({ cluster: 'sds-grpc', certChain: pair.certPem, updates: 1 });
    expect(s.sds?.ROOTCA).toMatchObject({ cluster: 'sds-grpc', trustedCa: ca.rootCertPem });
    expect(s.sds?.[FILE_ROOT]).toMatchObject({ cluster: 'sds-files-grpc', trustedCa: ca.rootCertPem, updates: 1 });
    expect(external.snapshot().names.map((n) => n.name)).toEqual(['ROOTCA', 'default']); // served by "SPIRE", not the agent

    const bootstrap = JSON.parse(fs.readFileSync(path.join(cwd, 'etc/istio/proxy/envoy-rev.json'), 'utf8')) as {
      static_resources: { clusters: Array<{ name: string; load_assignment: { endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: { pipe: { path: string } } } }> }> } }> };
    };
    const pipe = (name: string): string | undefined => bootstrap.static_resources.clusters.find((c) => c.name === name)?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.pipe.path;
    expect(pipe('sds-grpc')).toBe('./var/run/secrets/workload-spiffe-uds/socket');
    expect(pipe('sds-files-grpc')).toBe('./var/run/secrets/credential-uds/files-socket');
    // Istio's node metadata `file-credential`, so istiod points file secrets at sds-files-grpc.
    expect((bootstrap as unknown as { node: { metadata: Record<string, unknown> } }).node.metadata['file-credential']).toBe('true');
    expect(cp.streams.find((x) => x.node)?.node?.metadata['file-credential']).toBe('true');
    expect(a.stderr).toMatch(/existing workload SDS socket found at [^\n]*workload-spiffe-uds\/socket: the agent's SDS server will only serve files/);
    expect(caServer.requests.length).toBe(requestsBefore);

    await stop(a);
    expect(fs.lstatSync(externalSocket).isSocket()).toBe(true); // left alone
    expect(fs.existsSync(path.join(cwd, 'var/run/secrets/credential-uds/files-socket'))).toBe(false); // ours, removed
  });
});
