/**
 * `GET /status` against its schema (issue 17): src/status/status.schema.json documents every
 * field (each schema node has a description; objects are closed, so an undocumented field
 * fails validation). Documents are taken from the real CLI with the Envoy double: standalone
 * (ready, then crashed and in backoff), and with the test control plane and the test CA (a
 * workload certificate, a NACK with its error detail). Nothing secret: no PEM block (private
 * key or certificate body) and not the token, anywhere in the document.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, disposeTrackedAgents, startTrackedAgent, meshAgentOptions } from '../support/agent-process.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { ControlPlane, testCluster, testListener } from '../support/control-plane.js';
import { undocumented, validate, type Schema } from '../support/json-schema.js';
import { freePorts } from '../support/ports.js';
import { CRASH_TEST_ENV, controlFile, crashOnce, getStatus, httpGet, statusUntil } from '../support/status-page.js';

const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'src', 'status', 'status.schema.json'), 'utf8')) as Schema;
const TOKEN = 'status-schema-test-token-6f1d2c';
const IDENTITY = 'spiffe://cluster.local/ns/jiuxi-ns/sa/default';

function expectNothingSecret(body: string): void {
  expect(body).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  expect(body).not.toMatch(/-----BEGIN CERTIFICATE-----/);
  expect(body).not.toContain(TOKEN);
}

afterEach(disposeTrackedAgents);

describe('status.schema.json', () => {
  test('documents every node and uses only keywords the checker enforces', () => {
    expect(undocumented(schema)).toEqual([]);
    expect(validate(schema, { schemaVersion: 1, generatedAt: '2026-01-01T00:00:00.000Z', sections: {} })).toEqual(
      ['agent', 'envoy', 'readiness', 'controlPlane', 'certificates', 'pod', 'metrics'].map((s) => `$.sections: missing ${s}`),
    );
  });
});

describe('GET /status from the real agent', () => {
  test('standalone: ready with a scrape (a failing app source), a podinfo reload, then crashed and in backoff; every field documented, an extra field is not', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-test-'));
    // The app's metrics port has nothing listening: that source fails, and the scrape record says why.
    const [appPort] = (await freePorts(1)) as [number];
    const a = await startTrackedAgent({
      cwd: dir,
      env: { ...CRASH_TEST_ENV, ENVOY_DOUBLE_CONTROL: controlFile(dir), ISTIO_PROMETHEUS_ANNOTATIONS: JSON.stringify({ scrape: 'true', port: String(appPort) }) },
      files: { 'etc/istio/pod/labels': 'app="before"' },
    });
    await a.waitForLog(/readiness: not ready -> ready/, 15_000);
    expect((await httpGet(a.ports.status, '/stats/prometheus')).status).toBe(200);
    const ready = await getStatus(a.ports.status);
    expect(validate(schema, ready)).toEqual([]);
    expect(ready.sections.envoy.envoy.live).toBe(true);
    expect(ready.sections.readiness.ready).toBe(true);
    expect(ready.sections.metrics.recent[0].sources).toEqual({ agent: 'ok', envoy: 'ok', application: 'failed' });
    expect(ready.sections.metrics.recent[0].errors.application).toContain('ECONNREFUSED');
    expect(ready.sections.pod).toMatchObject({ labels: { app: 'before' }, reloads: 0, lastReloadAt: null });

    // A podinfo change (as the kubelet writes it) shows as a reload with the new labels.
    fs.writeFileSync(path.join(dir, 'etc/istio/pod/labels'), 'app="after"\nversion="v2"');
    const reloaded = await statusUntil(a.ports.status, 'a podinfo reload', (d) => d.sections.pod.reloads === 1);
    expect(reloaded.sections.pod.labels).toEqual({ app: 'after', version: 'v2' });
    expect(validate(schema, reloaded)).toEqual([]);
    expect(ready.sections.controlPlane).toEqual({ enabled: false, reason: 'standalone mode: no control plane' });

    const extra = structuredClone(ready);
    extra.sections.envoy.budget.surprise = 1;
    expect(validate(schema, extra)).toEqual(['$.sections.envoy: matches 0 of oneOf (want 1): $.sections.envoy.budget.surprise: not in the schema (undocumented field) | $.sections.envoy: missing error']);

    await crashOnce(a, ['status-schema: crash line'], 4);
    const doc = await statusUntil(a.ports.status, 'the supervisor in backoff', (d) => d.sections.envoy.state === 'backoff');
    expect(validate(schema, doc)).toEqual([]);
    expect(doc.sections.envoy).toMatchObject({ state: 'backoff', envoy: null, restarts: 1, lastExit: { description: 'exited with code 4', code: 4, signal: null, stderrTail: ['status-schema: crash line'] } });
    expect(doc.sections.envoy.backoff.delayMs).toBeGreaterThan(0);
    expect(doc.sections.readiness.reason).toBe('Envoy is not running: exited with code 4');
  }, 60_000);

  describe('with the test control plane and CA', () => {
    let ca: TestCa;
    let caServer: CaServer;
    let cp: ControlPlane;
    beforeAll(async () => {
      ca = await TestCa.create();
      caServer = await CaServer.start({ ca, tokens: { [TOKEN]: IDENTITY } });
      cp = await ControlPlane.start({ clusters: [testCluster('BlackHoleCluster')], listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')], token: TOKEN });
    });
    afterAll(async () => {
      await cp?.close();
      await caServer?.close();
    });

    test('certificate facts, upstream, ACK per type and a NACK with its error detail; no key, no certificate body, no token', async () => {
      const a = await startTrackedAgent(
        meshAgentOptions({ discoveryAddress: cp.address, caPort: caServer.port, rootCertPem: ca.rootCertPem, token: TOKEN, env: { ENVOY_DOUBLE_ADS_BACKOFF_MS: '100', ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS: '500' } }),
      );
      await a.waitForLog(/readiness: not ready -> ready/, 20_000);
      // A cluster the double cannot decode: Envoy NACKs the push with its reason.
      cp.setResources({ clusters: [testCluster('BlackHoleCluster'), { name: 'broken', rawValue: Buffer.from([0xff, 0xff, 0xff]) }] });
      await cp.waitFor('a NACK', () => cp.nacks().length > 0, 10_000);
      const doc = await statusUntil(a.ports.status, 'a NACK', (d) => d.sections.controlPlane.nacks.length > 0);
      const body = JSON.stringify(doc);
      expect(validate(schema, doc)).toEqual([]);
      expectNothingSecret(body);
      const page = await httpGet(a.ports.status, '/');
      expectNothingSecret(page.body);

      const certs = doc.sections.certificates;
      expect(certs.state).toBe('valid');
      expect(certs.workload.spiffeIds).toEqual([IDENTITY]);
      expect(certs.workload.issuer).toEqual(expect.any(String));
      expect(Date.parse(certs.workload.nextRotation.earliest)).toBeLessThan(Date.parse(certs.workload.notAfter));
      const cpDoc = doc.sections.controlPlane;
      expect(cpDoc).toMatchObject({ enabled: true, upstreamAddress: cp.address, connected: true });
      expect(cpDoc.upstreamConnects).toBeGreaterThanOrEqual(1);
      const types = Object.fromEntries(cpDoc.types.map((t: { typeUrl: string; acks: number }) => [t.typeUrl, t.acks]));
      expect(types['type.googleapis.com/envoy.config.cluster.v3.Cluster']).toBeGreaterThanOrEqual(1);
      expect(types['type.googleapis.com/envoy.config.listener.v3.Listener']).toBeGreaterThanOrEqual(1);
      const nack = cpDoc.nacks[0];
      expect(nack.typeUrl).toBe('type.googleapis.com/envoy.config.cluster.v3.Cluster');
      expect(nack.code).toBe(13);
      expect(nack.message).toBe(cp.nacks()[0]?.errorDetail?.message);
      expect(doc.sections.pod.labels.app).toBe('jiuxi');
    }, 60_000);
  });
});
