/**
 * `startWorkloadCertificates`, the agent's one call for SPEC §7.3, from a real config: serves
 * `default` on the chosen socket with a certificate from the CA the env names, registers the
 * metrics on the agent's registry, and fails fast with a named error for impossible settings
 * and unusable sockets (while CA problems are only retried and logged).
 */
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { AgentError, ConfigError } from '../../src/errors.js';
import { startWorkloadCertificates } from '../../src/sds/workload.js';
import { CaServer, TestCa, workloadFixture, type WorkloadFixture } from '../support/ca-server.js';
import { seedConfig } from '../support/config.js';
import { RawSdsStream, captureLogger, pemOf, socketDir } from './helpers.js';

let caServer: CaServer;
const cleanups: Array<() => Promise<void> | void> = [];
beforeAll(async () => {
  caServer = await CaServer.start({ ca: await TestCa.create(), tokens: {} });
});
afterAll(async () => {
  await caServer.close();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function fixture(env: Record<string, string> = {}): { w: WorkloadFixture; socketPath: string } {
  const w = workloadFixture({ server: caServer, env });
  cleanups.push(() => w.dispose());
  const dir = socketDir();
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { w, socketPath: path.join(dir, 'etc/istio/proxy/SDS') };
}

test('serves default from the configured CA; metrics on the agent registry; close() removes the socket', async () => {
  const { w, socketPath } = fixture();
  const logs = captureLogger('info');
  const registry = new Registry();
  const certs = await startWorkloadCertificates({ config: seedConfig({ cwd: w.cwd, extraEnv: w.env }), socketPath, log: logs.log, registry });
  cleanups.push(() => certs.close());
  const s = await RawSdsStream.open(socketPath);
  cleanups.push(() => s.close());
  s.send({ names: ['default'] });
  const leaf = new X509Certificate(pemOf((await s.next()).secrets[0], 'chain'));
  expect(leaf.subjectAltName).toBe(`URI:${w.identity}`);
  expect(logs.text()).toContain(
    `workload identity ${w.identity}; CA localhost:${caServer.port} (TLS, SAN istiod.istio-system.svc), token ${path.join(w.cwd, 'var/run/secrets/tokens/istio-token')} (JWT_POLICY=third-party-jwt), TTL 86400s, RSA 2048 keys`,
  );
  const text = await registry.metrics();
  expect(text).toContain('istio_agent_num_outgoing_requests{request_type="csr"} 1');
  expect(text).toMatch(/istio_agent_cert_expiry_seconds\{resource_name="default"\} 8\d{4}/);
  await certs.close();
  expect(fs.existsSync(socketPath)).toBe(false);
});

test('impossible settings and unusable sockets fail at start, naming the cause', async () => {
  const { w, socketPath } = fixture();
  const log = captureLogger().log;
  await expect(startWorkloadCertificates({ config: seedConfig({ cwd: w.cwd, extraEnv: { ...w.env, WORKLOAD_RSA_KEY_SIZE: '1024' } }), socketPath, log })).rejects.toThrow(ConfigError);
  fs.mkdirSync(path.dirname(path.dirname(socketPath)), { recursive: true });
  fs.writeFileSync(path.dirname(socketPath), 'a file where the directory should be');
  const err = await startWorkloadCertificates({ config: seedConfig({ cwd: w.cwd, extraEnv: w.env }), socketPath, log }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AgentError);
  expect((err as AgentError).message).toBe(`cannot serve SDS on ${socketPath}: cannot create the directory ${path.dirname(socketPath)} (${path.dirname(socketPath)} is not a directory)`);
});
