/**
 * The Envoy double (a real process) against the agent's SDS server, CA client and secret
 * manager, over the real unix socket, with a real gRPC CA: a sidecar-like bootstrap whose
 * listener and cluster reference `default` and `ROOTCA` on `sds-grpc` keeps the double
 * INITIALIZING until both arrive, then LIVE; with a 6 s TTL the double receives the renewed
 * certificate before expiry on the stream it already had; a CA outage across that renewal
 * keeps the old certificate served (also to a new stream) until the CA is back.
 */
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import path from 'node:path';
import { assertValidBootstrap } from '../support/bootstrap-validator.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { parseStats, startDouble, type DoubleProcess, type DoubleState } from '../support/envoy-double-harness.js';
import { RawSdsStream, doubleSecrets, pemOf, sdsBootstrap, socketDir, workloadStack, type WorkloadStack } from './helpers.js';
import { waitUntil } from '../support/wait.js';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';

let ca: TestCa;
let caServer: CaServer;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  ca = await TestCa.create();
  caServer = await CaServer.start({ ca, tokens: {} });
});
afterAll(async () => {
  await caServer.close();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await caServer.up();
});

function double(socketPath: string): DoubleProcess {
  const bootstrap = sdsBootstrap(socketPath);
  const d = startDouble({ bootstrap, args: ['-l', 'info'] });
  cleanups.push(() => d.dispose());
  return d;
}

async function stack(socketPath: string, env: Record<string, string>): Promise<WorkloadStack> {
  const s = await workloadStack({ ca: caServer, socketPath, env });
  cleanups.push(() => s.dispose());
  return s;
}

function socket(): string {
  const dir = socketDir();
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'socket');
}

test("the sidecar-like bootstrap is a valid Envoy config (Envoy's protos, strict)", () => {
  expect(() => assertValidBootstrap(sdsBootstrap('/etc/istio/proxy/SDS'))).not.toThrow();
});

test('INITIALIZING until default and ROOTCA arrive over SDS, then LIVE', async () => {
  const socketPath = socket();
  const d = double(socketPath); // before the agent serves SDS, as when Envoy starts first
  await d.waitForState('INITIALIZING', (s) => s.state === 'INITIALIZING');
  expect((await d.admin('GET', '/ready')).body).toBe('INITIALIZING\n');

  const w = await stack(socketPath, {});
  const state = await d.live(15_000);
  const secrets = doubleSecrets(state);
  expect(secrets.default).toMatchObject({ kind: 'tls_certificate', cluster: 'sds-grpc', connects: 1, updates: 1, rejected: 0, uris: [w.fixture.identity] });
  expect(secrets.ROOTCA).toMatchObject({ kind: 'validation_context', connects: 1, updates: 1, trustedCa: ca.rootCertPem });
  expect(secrets.default?.serial).toBe(w.manager.certificate?.serialNumber);
  expect(await d.admin('GET', '/ready')).toMatchObject({ status: 200, body: 'LIVE\n' });
  const stats = parseStats((await d.admin('GET', '/stats?filter=^sds\\.')).body);
  expect(stats.get('sds.default.update_success')).toBe(1);
  expect(stats.get('sds.ROOTCA.update_success')).toBe(1);
  expect(w.server.streamCount).toBe(2); // one stream per secret, as Envoy
});

test('6 s TTL: the renewed certificate reaches the double before expiry, on the same stream', async () => {
  const socketPath = socket();
  const w = await stack(socketPath, { SECRET_TTL: '6s' });
  const d = double(socketPath);
  const first = doubleSecrets(await d.live(15_000)).default;
  expect(first?.updates).toBe(1);
  const notAfter = Date.parse(first?.notAfter as string);

  const renewed = doubleSecrets(
    await d.waitForState('a renewed default', (s) => (doubleSecrets(s).default?.updates ?? 0) >= 2, 10_000),
  );
  expect(renewed.default?.serial).not.toBe(first?.serial);
  expect(Date.parse(renewed.default?.receivedAt as string)).toBeLessThan(notAfter);
  expect(renewed.default?.connects).toBe(1); // pushed, not reconnected
  expect(renewed.ROOTCA).toMatchObject({ updates: 1, connects: 1 }); // same root: not re-sent
  const leaf = new X509Certificate(renewed.default?.certChain as string);
  expect(leaf.verify(new X509Certificate(ca.rootCertPem).publicKey)).toBe(true);
  expect(w.logs.text()).toMatch(/rotating the workload certificate \(serial \w+\): it expires in [23]\.\d+s/);
});

test('a CA outage across one renewal: the old certificate stays served, then the renewal lands', async () => {
  const socketPath = socket();
  const w = await stack(socketPath, { SECRET_TTL: '6s' });
  const d = double(socketPath);
  const first = doubleSecrets(await d.live(15_000)).default;
  const notAfter = Date.parse(first?.notAfter as string);
  await caServer.down();

  await waitUntil('a failed renewal', () => /renewing the workload certificate failed \(attempt 1\): CA localhost:\d+ is unreachable/.test(w.logs.text()), 8000);
  expect(w.logs.text()).toMatch(/still serving the current one, which expires in [\d.]+m?s; retrying in/);
  // Envoy (the double) still has it, still LIVE; and a new stream (an Envoy restart) is served the same one.
  const during = d.readState() as DoubleState;
  expect(during.state).toBe('LIVE');
  expect(doubleSecrets(during).default?.serial).toBe(first?.serial);
  const fresh = await RawSdsStream.open(socketPath);
  cleanups.push(() => fresh.close());
  fresh.send({ names: ['default'] });
  expect(new X509Certificate(pemOf((await fresh.next()).secrets[0], 'chain')).serialNumber).toBe(first?.serial);

  await caServer.up();
  const after = doubleSecrets(await d.waitForState('the renewal after the outage', (s) => (doubleSecrets(s).default?.updates ?? 0) >= 2, 8000));
  expect(after.default?.serial).not.toBe(first?.serial);
  expect(Date.parse(after.default?.receivedAt as string)).toBeLessThan(notAfter);
  expect(after.default?.connects).toBe(1);
});
