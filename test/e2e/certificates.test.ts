/**
 * Certificates end to end (SPEC §7.3, issue 7): the real CLI (`pilot-agent proxy sidecar`, seed
 * args and env, not standalone) with the Envoy double as Envoy, the test control plane as istiod's
 * xDS and the test CA (TLS) as istiod's CA. The control plane's CDS carries a cluster whose
 * UpstreamTlsContext names the secrets `default` and `ROOTCA` on `sds-grpc` (as istiod does), so
 * the double must fetch both over the agent's SDS socket (the pipe in the bootstrap the agent
 * wrote) before it may go LIVE. Nothing is faked in between: the agent's CA client sends a real
 * CSR over TLS to the CA, whose signed chain the agent serves over SDS to the double.
 *
 * Proves: INITIALIZING until both secrets arrived, then LIVE and readiness 200 through Envoy's
 * 15021 listener; the `default` chain served verifies against the CA root and carries the pod's
 * SPIFFE URI SAN; with the CA down the agent keeps running, readiness stays 503 (Envoy
 * INITIALIZING with its config received), and it becomes ready once the CA comes up.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { startAgent, meshAgentOptions, type AgentProcess } from '../support/agent-process.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { ControlPlane, testCluster, testListener } from '../support/control-plane.js';
import type { SecretRecord } from '../support/envoy-double/sds.js';
import { request } from '../support/envoy-double-harness.js';

const TOKEN = 'e2e-cert-token';
/** The seed pod's identity: trust domain cluster.local, namespace jiuxi-ns, service account default. */
const IDENTITY = 'spiffe://cluster.local/ns/jiuxi-ns/sa/default';
const MTLS_CLUSTER = 'outbound|80||backend.jiuxi-ns.svc.cluster.local';

/** Istio's `sds_config` for the workload secrets, as istiod sends it in CDS/LDS (proto JSON). */
const SDS_CONFIG = {
  api_config_source: {
    api_type: 'GRPC',
    set_node_on_first_message_only: true,
    transport_api_version: 'V3',
    grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }],
  },
  initial_fetch_timeout: { seconds: 0 },
  resource_api_version: 'V3',
};

/** An outbound cluster originating Istio mTLS: `default` for the certificate, `ROOTCA` for validation. */
function mtlsCluster(): Record<string, unknown> {
  return {
    ...testCluster(MTLS_CLUSTER, 9),
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        common_tls_context: {
          alpn_protocols: ['istio-peer-exchange', 'istio'],
          tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: SDS_CONFIG }],
          combined_validation_context: {
            default_validation_context: { match_subject_alt_names: [{ prefix: 'spiffe://cluster.local/' }] },
            validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: SDS_CONFIG },
          },
        },
        sni: 'outbound_.80_._.backend.jiuxi-ns.svc.cluster.local',
      },
    },
  };
}

let ca: TestCa;
let caServer: CaServer;
beforeAll(async () => {
  ca = await TestCa.create();
  caServer = await CaServer.start({ ca, tokens: { [TOKEN]: IDENTITY } });
});
afterAll(async () => {
  await caServer.close();
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await caServer.up();
});

async function controlPlane(): Promise<ControlPlane> {
  const cp = await ControlPlane.start({
    // Packed with Envoy's protos: the nested TLS context is a real `Any` (protobufjs `@type` form).
    clusters: [mtlsCluster(), testCluster('BlackHoleCluster')],
    listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')],
    token: TOKEN,
  });
  cleanups.push(() => cp.close());
  return cp;
}

async function agent(cp: ControlPlane, args: string[] = []): Promise<AgentProcess> {
  const a = await startAgent(
    meshAgentOptions({ discoveryAddress: cp.address, caPort: caServer.port, rootCertPem: ca.rootCertPem, token: TOKEN, args, env: { ENVOY_DOUBLE_ADS_BACKOFF_MS: '100', ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS: '500' } }),
  );
  cleanups.push(() => a.dispose());
  return a;
}

interface DoubleStateFile {
  state: string;
  ads?: { cds: { accepted: number; names: string[] }; lds: { accepted: number } };
  sds?: Record<string, SecretRecord>;
}

function doubleState(a: AgentProcess): DoubleStateFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(a.stateFile, 'utf8')) as DoubleStateFile;
  } catch {
    return undefined; // not written yet, or mid-rename
  }
}

/** `/healthz/ready` on the agent's status port, polled until `pred` holds (readiness is refreshed off the probe path). */
async function readinessUntil(a: AgentProcess, what: string, pred: (r: { status: number; body: string }) => boolean, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await request({ port: a.ports.status, path: '/healthz/ready' });
    if (pred(r)) return r;
    if (Date.now() > deadline) throw new Error(`readiness never showed ${what}; last: ${r.status} ${r.body}\n${a.stderr.slice(-3000)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** PEM bundle → certificates, in order. */
function pemChain(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}

async function stopAgent(a: AgentProcess): Promise<void> {
  a.signal('SIGTERM');
  expect(await a.waitExit()).toEqual({ code: 0, signal: null });
}

describe('workload certificates: agent + Envoy double + control plane + CA', () => {
  test('INITIALIZING until default and ROOTCA arrive over the agent SDS socket, then LIVE; readiness 200 through 15021; the chain verifies with the pod SPIFFE SAN', async () => {
    const cp = await controlPlane();
    // Envoy's info log, so the double's SDS and init lines reach the agent's stderr in order.
    const a = await agent(cp, ['--proxyLogLevel=info']);
    // Sample every state the double writes: LIVE must never be seen without both secrets.
    const seen: Array<{ state: string; secrets: string[] }> = [];
    const live = await a.waitFor(
      'the double LIVE',
      () => {
        const s = doubleState(a);
        if (s) seen.push({ state: s.state, secrets: Object.values(s.sds ?? {}).filter((r) => r.updates > 0).map((r) => r.name).sort() });
        return s?.state === 'LIVE' ? s : undefined;
      },
      20_000,
    );
    for (const o of seen.filter((x) => x.state === 'LIVE')) expect(o.secrets).toEqual(['ROOTCA', 'default']);
    expect(live.ads?.cds.names).toEqual(['BlackHoleCluster', MTLS_CLUSTER]);

    // Envoy's own order (its stderr, forwarded line by line by the agent): both secrets, then init done.
    // The double writes LIVE to its state file before its log line has come through the agent.
    await a.waitForLog(/all dependencies initialized\. starting workers/);
    const err = a.stderr;
    const initDone = err.indexOf('all dependencies initialized. starting workers');
    const gotDefault = err.search(/sds: secret 'default' updated to version/);
    const gotRoot = err.search(/sds: secret 'ROOTCA' updated to version/);
    expect(initDone).toBeGreaterThan(-1);
    expect(gotDefault).toBeGreaterThan(-1);
    expect(gotRoot).toBeGreaterThan(-1);
    expect(gotDefault).toBeLessThan(initDone);
    expect(gotRoot).toBeLessThan(initDone);

    // The secrets came over the SDS cluster of the agent's bootstrap, once each (no NACK, no reconnect).
    const def = live.sds?.default;
    const root = live.sds?.ROOTCA;
    expect(def).toMatchObject({ kind: 'tls_certificate', cluster: 'sds-grpc', connects: 1, updates: 1, rejected: 0, uris: [IDENTITY] });
    expect(root).toMatchObject({ kind: 'validation_context', cluster: 'sds-grpc', updates: 1, rejected: 0 });
    expect(root?.trustedCa?.trim()).toBe(ca.rootCertPem.trim());

    // The served chain: leaf first, each certificate signed by the next, the last by the CA root.
    const chain = pemChain(def?.certChain ?? '');
    expect(chain.length).toBeGreaterThanOrEqual(1);
    const caRoot = new X509Certificate(ca.rootCertPem);
    const leaf = chain[0] as X509Certificate;
    for (let i = 0; i + 1 < chain.length; i++) expect((chain[i] as X509Certificate).verify((chain[i + 1] as X509Certificate).publicKey)).toBe(true);
    const top = chain[chain.length - 1] as X509Certificate;
    expect(top.fingerprint256 === caRoot.fingerprint256 || top.verify(caRoot.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe(`URI:${IDENTITY}`);
    expect(leaf.serialNumber).toBe(def?.serial);
    expect(Date.parse(leaf.validTo)).toBeGreaterThan(Date.now());
    // The CA issued exactly that leaf, for the pod's token and identity.
    const issued = caServer.requests.filter((r) => r.outcome === 'OK');
    expect(issued.map((r) => r.serial)).toContain(leaf.serialNumber);
    expect(issued.find((r) => r.serial === leaf.serialNumber)).toMatchObject({ authorization: `Bearer ${TOKEN}`, csrSans: [IDENTITY] });

    // Readiness: the agent's tracker turns ready, and the probe through Envoy's 15021 listener passes.
    await a.waitForLog(/readiness: not ready -> ready/);
    const ready = await request({ port: a.ports.envoyStatus, path: '/healthz/ready' });
    expect(ready.status).toBe(200);
    expect(ready.headers.server).toBe('envoy');
    await stopAgent(a);
  });

  test('CA down: the agent keeps running, readiness 503 with Envoy INITIALIZING; once the CA is up, it becomes ready', async () => {
    await caServer.down();
    const requestsBefore = caServer.requests.length; // the CA server (and its record) is shared by the tests
    const cp = await controlPlane();
    const a = await agent(cp);
    // The config arrived (CDS and LDS accepted), the SDS streams are open, but no secret can be issued.
    const waiting = await a.waitFor(
      'the double configured, waiting for its secrets',
      () => {
        const s = doubleState(a);
        return s?.ads && s.ads.cds.accepted >= 1 && s.ads.lds.accepted >= 1 && s.sds?.default && s.sds.ROOTCA ? s : undefined;
      },
      20_000,
    );
    expect(waiting.state).toBe('INITIALIZING');
    await a.waitForLog(/getting the workload certificate failed \(attempt 2\): CA localhost:\d+ is unreachable[^\n]*Envoy has no certificate yet/, 20_000);
    const notReady = await readinessUntil(a, 'Envoy INITIALIZING', (r) => /server is not live, current state is: INITIALIZING/.test(r.body));
    expect(notReady.status).toBe(503);
    const during = doubleState(a);
    expect(during?.state).toBe('INITIALIZING');
    expect(during?.sds?.default).toMatchObject({ updates: 0 });
    expect(during?.sds?.ROOTCA).toMatchObject({ updates: 0 });
    expect(a.child.exitCode).toBeNull();
    expect(a.child.signalCode).toBeNull();
    expect(a.starts()).toHaveLength(1); // Envoy was neither restarted nor stopped
    expect(caServer.requests).toHaveLength(requestsBefore); // nothing reached the CA

    await caServer.up();
    await a.waitForLog(/got the workload certificate for spiffe:\/\/cluster\.local\/ns\/jiuxi-ns\/sa\/default/, 30_000);
    const live = await a.waitFor('the double LIVE', () => (doubleState(a)?.state === 'LIVE' ? doubleState(a) : undefined), 10_000);
    expect(live?.sds?.default).toMatchObject({ updates: 1, uris: [IDENTITY] });
    expect(live?.sds?.ROOTCA).toMatchObject({ updates: 1 });
    const ready = await readinessUntil(a, '200', (r) => r.status === 200);
    expect(ready.body).toBe('');
    expect((await request({ port: a.ports.envoyStatus, path: '/healthz/ready' })).status).toBe(200);
    expect(a.starts()).toHaveLength(1);
    await stopAgent(a);
  });
});
