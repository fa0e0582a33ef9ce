/**
 * SecretManager with a real gRPC CA: the rotation time (pure), renewal at half the lifetime,
 * a CA outage across a renewal (the old certificate is still served, failures are logged with
 * the remaining lifetime, the renewal succeeds once the CA is back), expiry while the CA stays
 * down (logged; nothing served; recovery afterwards), a changed root, the metrics, and close().
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { Registry } from 'prom-client';
import type { IssuedCertificate } from '../../src/ca/chain.js';
import { CaClient } from '../../src/ca/client.js';
import { registerCaMetrics } from '../../src/ca/metrics.js';
import { SecretManager, rotationDelay } from '../../src/sds/secret-manager.js';
import { CaServer, TestCa, workloadFixture, type WorkloadFixture } from '../support/ca-server.js';
import { captureLogger, type CapturedLog } from './helpers.js';
import { waitUntil } from '../support/wait.js';

let ca: TestCa;
let server: CaServer;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  ca = await TestCa.create();
});
afterAll(async () => {
  await server?.close();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  w: WorkloadFixture;
  manager: SecretManager;
  logs: CapturedLog;
  updates: Array<{ cert: IssuedCertificate; rootChanged: boolean; at: number }>;
  registry: Registry;
}

async function setup(env: Record<string, string>, start = true): Promise<Setup> {
  server = await CaServer.start({ ca, tokens: {} });
  const s = server;
  cleanups.push(() => s.close());
  const w = workloadFixture({ server: s, env: { ECC_SIGNATURE_ALGORITHM: 'ECDSA', SECRET_GRACE_PERIOD_RATIO_JITTER: '0', ...env } });
  cleanups.push(() => w.dispose());
  const logs = captureLogger();
  const registry = new Registry();
  const metrics = registerCaMetrics(registry);
  const manager = new SecretManager({ source: new CaClient(w.options.ca, { metrics }), log: logs.log, rotation: w.options.rotation, retry: { initialMs: 100, maxMs: 400 }, metrics });
  cleanups.push(() => manager.close());
  const updates: Setup['updates'] = [];
  manager.onUpdate((cert, change) => updates.push({ cert, rootChanged: change.rootChanged, at: Date.now() }));
  if (start) manager.start();
  return { w, manager, logs, updates, registry };
}

test('rotation time: at the grace ratio of the lifetime from receipt, ± jitter, never negative', () => {
  const c = { createdAt: 1000, notAfter: 7000 } as IssuedCertificate;
  expect(rotationDelay(c, 1000, { graceRatio: 0.5, graceJitter: 0 })).toBe(3000);
  expect(rotationDelay(c, 3000, { graceRatio: 0.5, graceJitter: 0 })).toBe(1000);
  expect(rotationDelay(c, 9000, { graceRatio: 0.5, graceJitter: 0 })).toBe(0);
  expect(rotationDelay(c, 1000, { graceRatio: 0.25, graceJitter: 0 })).toBe(4500);
  // jitter 0.01: the ratio moves by at most ±0.01 (±60 ms of a 6 s lifetime).
  const delays = [0, 0.3, 0.99].flatMap((r) => [rotationDelay(c, 1000, { graceRatio: 0.5, graceJitter: 0.01 }, () => r)]);
  for (const d of delays) expect(Math.abs(d - 3000)).toBeLessThanOrEqual(60);
});

describe('renewal', () => {
  test('renews at about half the lifetime; listeners and metrics see it', async () => {
    const { manager, updates, logs, registry } = await setup({ SECRET_TTL: '3s' });
    const first = await manager.waitForCertificate();
    expect(manager.certificate).toBe(first);
    await waitUntil('a renewal', () => updates.length >= 2, 6000);
    const [a, b] = updates as [Setup['updates'][number], Setup['updates'][number]];
    expect(b.cert.serialNumber).not.toBe(a.cert.serialNumber);
    expect(b.rootChanged).toBe(false);
    // Half of the lifetime (from receipt to notAfter, which the CA truncates to the second), plus a CSR round trip.
    const half = (a.cert.notAfter - a.cert.createdAt) / 2;
    expect(b.at - a.at).toBeGreaterThanOrEqual(half - 20);
    expect(b.at).toBeLessThan(a.cert.notAfter); // before expiry
    expect(logs.text()).toMatch(/info rotating the workload certificate \(serial \w+\): it expires in [\d.]+m?s/);
    expect(logs.text()).toMatch(/info renewed the workload certificate for spiffe:\/\/cluster\.local\/ns\/jiuxi-ns\/sa\/default: serial \w+, valid until \S+ \([\d.]+m?s\); next rotation in about [\d.]+m?s/);
    const text = await registry.metrics();
    const expiry = Number(/istio_agent_cert_expiry_seconds\{resource_name="default"\} ([\d.]+)/.exec(text)?.[1]);
    expect(expiry).toBeGreaterThan(0);
    expect(expiry).toBeLessThanOrEqual(3);
    expect(text).toMatch(/istio_agent_cert_expiry_seconds\{resource_name="ROOTCA"\} \d+/);
    expect(text).toContain('istio_agent_num_outgoing_requests{request_type="csr"} 2\n');
  });

  test('a CA outage across a renewal: the old certificate is still served, failures name the time left, then it recovers', async () => {
    const { manager, updates, logs, registry } = await setup({ SECRET_TTL: '4s' });
    const first = await manager.waitForCertificate();
    await server.down();
    await waitUntil('two failed renewal attempts', () => (logs.text().match(/renewing the workload certificate failed/g) ?? []).length >= 2, 5000);
    expect(manager.certificate).toBe(first); // still served
    expect(manager.currentState).toBe('renewing');
    expect(logs.text()).toMatch(
      /warn renewing the workload certificate failed \(attempt 1\): CA localhost:\d+ is unreachable: connect ECONNREFUSED [\d.:]+; still serving the current one, which expires in [\d.]+m?s; retrying in \d+ms/,
    );
    await server.up();
    await waitUntil('the renewal after the outage', () => updates.length >= 2, 5000);
    const renewed = updates[1]?.cert as IssuedCertificate;
    expect(renewed.serialNumber).not.toBe(first.serialNumber);
    expect(updates[1]?.at).toBeLessThan(first.notAfter); // before the old one expired
    expect(manager.certificate).toBe(renewed);
    expect(await registry.metrics()).toMatch(/istio_agent_num_outgoing_retries\{request_type="csr"\} [1-9]/);
  });

  test('the CA stays down past expiry: logged as an error, nothing served, then recovery', async () => {
    const { manager, updates, logs } = await setup({ SECRET_TTL: '2s' });
    const first = await manager.waitForCertificate();
    await server.down();
    await waitUntil('expiry', () => manager.currentState === 'expired', 5000);
    expect(manager.certificate).toBeUndefined();
    expect(manager.latest).toBe(first);
    expect(logs.text()).toMatch(/error the workload certificate \(serial \w+\) expired at \S+ and could not be renewed; new SDS requests wait for a new one/);
    await waitUntil('a failure after expiry', () => /the current one expired \d+(\.\d+)?m?s ago/.test(logs.text()), 3000);
    const waiting = manager.waitForCertificate();
    await server.up();
    const next = await waiting;
    expect(next.serialNumber).not.toBe(first.serialNumber);
    expect(updates.length).toBe(2);
    expect(manager.currentState).toBe('valid');
  });

  test('a new root is flagged to listeners (so ROOTCA is pushed)', async () => {
    const { manager, updates } = await setup({ SECRET_TTL: '2s' });
    await manager.waitForCertificate();
    const other = await TestCa.create({ organization: 'rotated-root' });
    server.options.ca = other;
    await waitUntil('a renewal from the new root', () => updates.length >= 2, 5000);
    expect(updates[1]?.rootChanged).toBe(true);
    expect(updates[1]?.cert.rootCertPem).toBe(other.rootCertPem);
  });
});

test('close(): stops retrying at once, rejects waiters, idempotent', async () => {
  const { manager, logs } = await setup({}, false);
  await server.down();
  manager.start();
  const waiting = manager.waitForCertificate();
  await waitUntil('a failed attempt', () => /getting the workload certificate failed \(attempt 1\)/.test(logs.text()), 5000);
  await manager.close();
  await expect(waiting).rejects.toThrow('secret manager closed');
  expect(manager.currentState).toBe('closed');
  await manager.close();
});
