/**
 * File secrets end to end (issue 14): the real CLI with the Envoy double as Envoy, the test control
 * plane as istiod and the test CA as istiod's CA. The control plane pushes a cluster whose TLS
 * context references `file-cert:<cert>~<key>` and `file-root:<path>` (a kubelet-style mounted
 * Secret) and one referencing `file-root:system`, as istiod does for a DestinationRule with
 * `tls.mode: SIMPLE|MUTUAL` and no credentialName. The double must fetch all three over the
 * agent's SDS socket and goes LIVE; rewriting the files (plain rename; `..data` swap) pushes the
 * new content on the open streams within 1 s; deleting one file fails only that name.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentProcess } from '../support/agent-process.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { ControlPlane, testCluster, testListener, tlsCluster } from '../support/control-plane.js';
import { request } from '../support/envoy-double-harness.js';
import { kubeletWrite } from '../support/kubelet-volume.js';
import { E2E_IDENTITY, E2E_TOKEN, doubleState, pemBlocks, replaceFile, startE2eAgent } from '../support/sds-e2e.js';

const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem', '/etc/pki/tls/cacert.pem', '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', '/etc/ssl/cert.pem'];

let ca: TestCa;
let otherCa: TestCa;
let caServer: CaServer;
beforeAll(async () => {
  ca = await TestCa.create();
  otherCa = await TestCa.create({ organization: 'egress.example' });
  caServer = await CaServer.start({ ca, tokens: { [E2E_TOKEN]: E2E_IDENTITY } });
});
afterAll(async () => {
  await caServer.close();
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function metric(a: AgentProcess, name: string): Promise<number | undefined> {
  const r = await request({ port: a.ports.status, path: '/stats/prometheus' });
  const m = r.body.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

describe('file SDS secrets: agent + Envoy double + control plane', () => {
  test('file-cert, file-root (mounted Secret) and file-root:system arrive, LIVE; rename and ..data swap push within 1 s; a deleted file fails only its name', async () => {
    const system = SYSTEM_BUNDLES.find((p) => fs.existsSync(p));
    expect(system).toBeDefined(); // the test image has an OS trust bundle

    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-test-'));
    const tlsDir = path.join(cwd, 'etc/egress-tls');
    const secretDir = path.join(cwd, 'etc/egress-ca'); // a mounted Secret, as the kubelet writes it
    fs.mkdirSync(tlsDir, { recursive: true });
    const certPath = path.join(tlsDir, 'cert.pem');
    const keyPath = path.join(tlsDir, 'key.pem');
    const caPath = path.join(secretDir, 'ca.crt');
    const pair1 = await otherCa.issue({ dnsNames: ['client.egress.example'] });
    fs.writeFileSync(certPath, pair1.certPem);
    fs.writeFileSync(keyPath, pair1.keyPem, { mode: 0o600 });
    kubeletWrite(secretDir, { 'ca.crt': otherCa.rootCertPem });

    const FILE_CERT = `file-cert:${certPath}~${keyPath}`;
    const FILE_ROOT = `file-root:${caPath}`;
    const SYSTEM = 'file-root:system';
    const cp = await ControlPlane.start({
      clusters: [
        tlsCluster('outbound|443||egress.example.com', { certificate: FILE_CERT, validation: FILE_ROOT, sni: 'egress.example.com' }),
        tlsCluster('outbound|443||public.example.com', { validation: SYSTEM, sni: 'public.example.com' }),
        testCluster('BlackHoleCluster'),
      ],
      listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')],
      token: E2E_TOKEN,
    });
    cleanups.push(() => cp.close());
    const a = await startE2eAgent({ cp, caServer, rootCertPem: ca.rootCertPem, cwd, args: ['--proxyLogLevel=info'] });
    cleanups.push(() => a.dispose());

    // Warming until its secrets arrive; LIVE only with all three.
    const seen: Array<{ state: string; got: string[] }> = [];
    const live = await a.waitFor(
      'the double LIVE',
      () => {
        const s = doubleState(a);
        if (s) seen.push({ state: s.state, got: Object.values(s.sds ?? {}).filter((r) => r.updates > 0).map((r) => r.name) });
        return s?.state === 'LIVE' ? s : undefined;
      },
      20_000,
    );
    for (const o of seen.filter((x) => x.state === 'LIVE')) expect(o.got.sort()).toEqual([FILE_CERT, FILE_ROOT, SYSTEM].sort());
    expect(live.clusters?.warming).toEqual({});
    const fc = live.sds?.[FILE_CERT];
    expect(fc).toMatchObject({ kind: 'tls_certificate', cluster: 'sds-grpc', connects: 1, updates: 1, rejected: 0 });
    expect(fc?.certChain).toBe(pair1.certPem);
    expect(fc?.privateKey).toBe(pair1.keyPem);
    expect(live.sds?.[FILE_ROOT]).toMatchObject({ kind: 'validation_context', connects: 1, updates: 1 });
    expect(live.sds?.[FILE_ROOT]?.trustedCa).toBe(otherCa.rootCertPem);
    const sys = live.sds?.[SYSTEM];
    expect(sys).toMatchObject({ kind: 'validation_context', updates: 1, rejected: 0 });
    const want = pemBlocks(fs.readFileSync(system as string, 'utf8'));
    const got = pemBlocks(sys?.trustedCa ?? '');
    expect(got.length).toBeGreaterThan(0);
    expect(got[0]).toBe(want[0]);
    await a.waitForLog(new RegExp(`watching ${secretDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} for`));
    await a.waitForLog(new RegExp(`watching ${tlsDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} for`));

    // Plain rename of a new pair over both files: pushed on the open stream (no reconnect).
    const pair2 = await otherCa.issue({ dnsNames: ['client.egress.example'] });
    const t1 = Date.now();
    replaceFile(keyPath, pair2.keyPem, 0o600);
    replaceFile(certPath, pair2.certPem);
    const pushed = await a.waitFor('the new pair on the double', () => {
      const r = doubleState(a)?.sds?.[FILE_CERT];
      return r && r.certChain === pair2.certPem ? r : undefined;
    });
    expect(pushed).toMatchObject({ connects: 1, privateKey: pair2.keyPem, serial: new X509Certificate(pair2.certPem).serialNumber });
    const renameLatency = Date.parse(pushed.receivedAt ?? '') - t1;
    expect(renameLatency).toBeLessThan(1000);

    // The kubelet's ..data swap of the mounted Secret: the new CA is pushed.
    const newCa = await TestCa.create({ organization: 'egress.example.rotated' });
    const t2 = Date.now();
    kubeletWrite(secretDir, { 'ca.crt': newCa.rootCertPem });
    const swapped = await a.waitFor('the swapped CA on the double', () => {
      const r = doubleState(a)?.sds?.[FILE_ROOT];
      return r && r.trustedCa === newCa.rootCertPem ? r : undefined;
    });
    expect(swapped).toMatchObject({ connects: 1, rejected: 0 });
    const swapLatency = Date.parse(swapped.receivedAt ?? '') - t2;
    expect(swapLatency).toBeLessThan(1000);
    process.stdout.write(`file secret push latency: rename ${renameLatency} ms, ..data swap ${swapLatency} ms\n`);

    // Deleting the certificate fails only that name: logged with the path, counted; the others are still served.
    const failuresBefore = (await metric(a, 'istio_agent_num_file_secret_failures_total')) ?? 0;
    fs.rmSync(certPath);
    await a.waitForLog(new RegExp(`SDS secret "file-cert:[^"]+" cannot be served from ${certPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[^\\n]*no such file`));
    expect(await metric(a, 'istio_agent_num_file_secret_failures_total')).toBeGreaterThan(failuresBefore);
    const newerCa = await TestCa.create({ organization: 'egress.example.again' });
    kubeletWrite(secretDir, { 'ca.crt': newerCa.rootCertPem });
    await a.waitFor('the CA still pushed', () => doubleState(a)?.sds?.[FILE_ROOT]?.trustedCa === newerCa.rootCertPem);
    const after = doubleState(a);
    expect(after?.state).toBe('LIVE');
    // Envoy keeps the last good pair: nothing was pushed (or rejected) for the deleted file.
    expect(after?.sds?.[FILE_CERT]).toMatchObject({ certChain: pair2.certPem, rejected: 0, connects: 1 });
    // Restored: served again.
    const pair3 = await otherCa.issue({ dnsNames: ['client.egress.example'] });
    replaceFile(keyPath, pair3.keyPem, 0o600);
    replaceFile(certPath, pair3.certPem);
    await a.waitFor('the restored pair', () => doubleState(a)?.sds?.[FILE_CERT]?.certChain === pair3.certPem);

    a.signal('SIGTERM');
    expect(await a.waitExit()).toEqual({ code: 0, signal: null });
  });
  test('a secret that cannot be served keeps its cluster warming and is named in the readiness reason; once the file appears it is pushed and Envoy goes LIVE', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-test-'));
    const caDir = path.join(cwd, 'etc/late-ca');
    fs.mkdirSync(caDir, { recursive: true });
    const caPath = path.join(caDir, 'ca.pem');
    const NAME = `file-root:${caPath}`;
    const CLUSTER = 'outbound|443||late.example.com';
    const cp = await ControlPlane.start({
      clusters: [tlsCluster(CLUSTER, { validation: NAME }), testCluster('BlackHoleCluster')],
      listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')],
      token: E2E_TOKEN,
    });
    cleanups.push(() => cp.close());
    const a = await startE2eAgent({ cp, caServer, rootCertPem: ca.rootCertPem, cwd });
    cleanups.push(() => a.dispose());

    const probe = (): Promise<{ status: number; body: string }> => request({ port: a.ports.status, path: '/healthz/ready' }).catch(() => ({ status: 0, body: '' }));
    const deadline = Date.now() + 15_000;
    let r = await probe(); // the status server may not listen yet
    while (!r.body.includes('SDS cannot serve') && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      r = await probe();
    }
    expect(r.status).toBe(503);
    expect(r.body).toContain(`SDS cannot serve ${JSON.stringify(NAME)} (root certificate file ${caPath}: no such file)`);
    const waiting = doubleState(a);
    expect(waiting?.state).toBe('INITIALIZING');
    expect(waiting?.clusters?.warming).toEqual({ [CLUSTER]: [NAME] });

    await a.waitForLog(/watching [^\n]*etc\/late-ca for/);
    replaceFile(caPath, otherCa.rootCertPem);
    const s = await a.waitFor('the double LIVE', () => (doubleState(a)?.state === 'LIVE' ? doubleState(a) : undefined), 10_000);
    expect(s?.sds?.[NAME]).toMatchObject({ trustedCa: otherCa.rootCertPem, connects: 1, updates: 1 });
    expect(s?.clusters?.warming).toEqual({});
    await a.waitForLog(/readiness: not ready -> ready/);

    // After LIVE, a new cluster with a secret that cannot be served warms (Envoy stays LIVE); removed, it is gone.
    const LATER = `file-root:${path.join(caDir, 'never.pem')}`;
    cp.setResources({ clusters: [tlsCluster(CLUSTER, { validation: NAME }), tlsCluster('outbound|443||never.example.com', { validation: LATER }), testCluster('BlackHoleCluster')] });
    const warming = await a.waitFor('the new cluster warming', () => {
      const st = doubleState(a);
      return st?.clusters?.warming['outbound|443||never.example.com'] ? st : undefined;
    });
    expect(warming.state).toBe('LIVE');
    expect(warming.clusters?.warming).toEqual({ 'outbound|443||never.example.com': [LATER] });
    cp.setResources({ clusters: [tlsCluster(CLUSTER, { validation: NAME }), testCluster('BlackHoleCluster')] });
    await a.waitFor('the removed cluster no longer warming', () => {
      const w = doubleState(a)?.clusters?.warming;
      return w !== undefined && Object.keys(w).length === 0;
    });
    a.signal('SIGTERM');
    expect(await a.waitExit()).toEqual({ code: 0, signal: null });
  });
});
