/**
 * File SDS secrets over the real SdsServer socket, read with Envoy's protos (issue 14, "bad input"):
 * every kind of unservable name on one stream is left out with a clear error naming the input,
 * logged, counted and shown in `snapshot()`, while the stream serves the good name and, once a
 * broken one is repaired on disk, pushes it. Also the name grammar and the certificate-mode choice.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { registerCaMetrics } from '../../src/ca/metrics.js';
import { SecretCatalog } from '../../src/sds/catalog.js';
import { FileSecretStore } from '../../src/sds/file-secrets.js';
import { registerFileSecretMetrics } from '../../src/sds/metrics.js';
import { chooseCertificateMode } from '../../src/sds/mode.js';
import { parseSecretName } from '../../src/sds/names.js';
import { SdsServer } from '../../src/sds/server.js';
import { Registry } from 'prom-client';
import { TestCa } from '../support/ca-server.js';
import { seedConfig } from '../support/config.js';
import { RawSdsStream, captureLogger, pemOf, socketDir } from './helpers.js';
import { waitUntil } from '../support/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sds-files-'));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

describe('SDS resource names (Istio grammar)', () => {
  test.each([
    ['default', { kind: 'workload' }],
    ['ROOTCA', { kind: 'root' }],
    ['file-root:system', { kind: 'system-root' }],
    ['file-root:/etc/ca.pem', { kind: 'file-root', path: '/etc/ca.pem' }],
    ['file-root:./rel/ca.pem', { kind: 'file-root', path: './rel/ca.pem' }],
    ['file-cert:/a/cert.pem~/a/key.pem', { kind: 'file-cert', certPath: '/a/cert.pem', keyPath: '/a/key.pem' }],
  ])('%s', (name, want) => {
    expect(parseSecretName(name)).toEqual(want);
  });

  test.each([
    ['file-cert:onlyone', /"file-cert:onlyone": a file-cert: name needs exactly two paths separated by ~/],
    ['file-cert:a~b~c', /exactly two paths/],
    ['file-cert:~key.pem', /empty certificate path/],
    ['file-root:a~b', /one path, without ~/],
    ['file-root:', /empty path/],
    ['kubernetes://my-secret', /"kubernetes:\/\/my-secret" is not served: expected default, ROOTCA, file-root:system, file-root:<path> or file-cert:<cert path>~<key path>/],
  ])('%s is invalid', (name, re) => {
    const p = parseSecretName(name);
    expect(p.kind).toBe('invalid');
    expect(p.kind === 'invalid' ? p.error : '').toMatch(re);
  });
});

describe('file secrets on the SDS socket', () => {
  test('bad names, a directory, a missing or unparsable file and a mismatched key fail only their names; repairing one pushes it', async () => {
    const ca = await TestCa.create();
    const other = await TestCa.create();
    const d = tmp();
    const good = path.join(d, 'ca.pem');
    fs.writeFileSync(good, ca.rootCertPem);
    const garbage = path.join(d, 'garbage.pem');
    fs.writeFileSync(garbage, 'not a certificate\n');
    const pair = await ca.issue({ dnsNames: ['a.example'] });
    const wrong = await other.issue({ dnsNames: ['b.example'] });
    const cert = path.join(d, 'cert.pem');
    const key = path.join(d, 'key.pem');
    fs.writeFileSync(cert, pair.certPem);
    fs.writeFileSync(key, wrong.keyPem); // does not match cert.pem

    const logs = captureLogger();
    const registry = new Registry();
    const caMetrics = registerCaMetrics(registry);
    const files = new FileSecretStore({
      cwd: d,
      log: logs.log,
      metrics: registerFileSecretMetrics(registry),
      debounceMs: 50,
      retryMs: 200,
      onEntry: (e) => caMetrics.certExpiry(e.name, () => e.loaded?.notAfter),
    });
    const catalog = new SecretCatalog({ workload: { kind: 'external', socketPath: '/run/spire/socket' }, files });
    const socketPath = path.join(socketDir(), 's.sock');
    const server = await SdsServer.start({ socketPath, catalog, log: logs.log });
    cleanups.push(async () => {
      await server.close();
      catalog.close();
      await files.close();
    });

    const names = {
      good: `file-root:${good}`,
      onlyone: 'file-cert:onlyone',
      unknown: 'bogus:thing',
      dir: `file-root:${d}`,
      missing: `file-root:${path.join(d, 'nope.pem')}`,
      garbage: `file-root:${garbage}`,
      mismatch: `file-cert:${cert}~${key}`,
      later: `file-root:${path.join(d, 'later', 'ca.pem')}`, // its directory does not exist yet
      workload: 'default',
    };
    const s = await RawSdsStream.open(socketPath);
    cleanups.push(() => s.close());
    s.send({ names: Object.values(names), node: 'sidecar~1' });
    const res = await s.next();
    expect(res.secrets.map((x) => x.name)).toEqual([names.good]);
    expect(pemOf(res.secrets[0], 'ca')).toBe(ca.rootCertPem);
    s.ack(res, Object.values(names));

    const text = logs.text();
    expect(text).toContain(`cannot serve "file-cert:onlyone": SDS resource name "file-cert:onlyone": a file-cert: name needs exactly two paths separated by ~`);
    expect(text).toContain(`cannot serve "bogus:thing": SDS resource name "bogus:thing" is not served: expected default, ROOTCA`);
    expect(text).toContain(`root certificate file ${d}: is a directory, expected a PEM file`);
    expect(text).toContain(`root certificate file ${path.join(d, 'nope.pem')}: no such file`);
    expect(text).toContain(`root certificate file ${garbage}: no PEM CERTIFICATE block found`);
    expect(text).toContain(`private key file ${key} does not match the certificate in ${cert}`);
    expect(text).toContain('cannot serve "default": default is served by the external SDS server on /run/spire/socket');

    // Repair below; first the metrics: failures counted, expiry exported for the served file-cert once it is served.
    const metrics = await registry.metrics();
    const failures = Number(/^istio_agent_num_file_secret_failures_total (\S+)$/m.exec(metrics)?.[1]);
    expect(failures).toBeGreaterThanOrEqual(4);

    const snap = server.snapshot();
    const byName = Object.fromEntries(snap.names.map((n) => [n.name, n]));
    expect(byName[names.good]).toMatchObject({ state: 'served', source: 'file', pushes: 1, streams: 1 });
    for (const n of [names.onlyone, names.unknown, names.dir, names.missing, names.garbage, names.mismatch, names.later, names.workload]) expect(byName[n]?.state).toBe('error');
    expect(byName[names.mismatch]).toMatchObject({ source: 'file', paths: [cert, key] });
    expect(JSON.stringify(snap)).not.toContain('BEGIN'); // facts only: no key, no certificate body

    // Repair the key (a plain rename over it): the stream, still open, gets that name pushed.
    await files.whenWatching();
    fs.writeFileSync(`${key}.new`, pair.keyPem);
    fs.renameSync(`${key}.new`, key);
    const pushed = await s.next(5000);
    expect(pushed.secrets.map((x) => x.name)).toEqual([names.mismatch]);
    expect(pemOf(pushed.secrets[0], 'key')).toBe(pair.keyPem);
    expect(pemOf(pushed.secrets[0], 'chain')).toBe(pair.certPem);
    await waitUntil('the snapshot to show it served', () => server.snapshot().names.find((n) => n.name === names.mismatch)?.state === 'served');

    // A file in a directory created after the request (a watch on a missing directory may not fire; names in error are also retried): pushed.
    fs.mkdirSync(path.join(d, 'later'));
    fs.writeFileSync(path.join(d, 'later', 'ca.pem'), other.rootCertPem);
    const late = await s.next(5000);
    expect(late.secrets.map((x) => x.name)).toEqual([names.later]);
    expect(pemOf(late.secrets[0], 'ca')).toBe(other.rootCertPem);
    const expiry = new RegExp(`^istio_agent_cert_expiry_seconds\\{resource_name="${names.mismatch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\} (\\S+)$`, 'm').exec(await registry.metrics());
    expect(Number(expiry?.[1])).toBeGreaterThan(3000); // the test leaf lives an hour
    expect(Number(expiry?.[1])).toBeLessThanOrEqual(3600);
  });
});

describe('certificate mode (where default and ROOTCA come from)', () => {
  const write = (root: string, files: Record<string, string>): void => {
    for (const [rel, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), content);
    }
  };

  test('nothing mounted: the CA', () => {
    expect(chooseCertificateMode(seedConfig({ cwd: tmp() }), undefined)).toEqual({ kind: 'ca' });
  });

  test('a healthy external SDS server wins', () => {
    expect(chooseCertificateMode(seedConfig({ cwd: tmp() }), { socketPath: '/x/socket' })).toEqual({ kind: 'external', socketPath: '/x/socket' });
  });

  test('./etc/certs (Istio 1.6), unless OUTPUT_CERTS writes there', () => {
    const cwd = tmp();
    write(cwd, { 'etc/certs/cert-chain.pem': 'c', 'etc/certs/key.pem': 'k', 'etc/certs/root-cert.pem': 'r' });
    expect(chooseCertificateMode(seedConfig({ cwd }), undefined)).toMatchObject({ kind: 'mounted', certPath: path.join(cwd, 'etc/certs/cert-chain.pem'), reason: 'certificate files in ./etc/certs' });
    expect(chooseCertificateMode(seedConfig({ cwd, extraEnv: { OUTPUT_CERTS: './etc/certs' } }), undefined)).toEqual({ kind: 'ca' });
  });

  test('workload-spiffe-credentials, GKE names with CA_PROVIDER=GkeWorkloadCertificate, FILE_MOUNTED_CERTS', () => {
    const cwd = tmp();
    const dir = 'var/run/secrets/workload-spiffe-credentials';
    expect(chooseCertificateMode(seedConfig({ cwd, extraEnv: { FILE_MOUNTED_CERTS: 'true' } }), undefined)).toMatchObject({ kind: 'mounted', keyPath: path.join(cwd, 'etc/certs/key.pem'), reason: 'FILE_MOUNTED_CERTS=true' });
    expect(() => chooseCertificateMode(seedConfig({ cwd, extraEnv: { CA_PROVIDER: 'GkeWorkloadCertificate' } }), undefined)).toThrow(/CA_PROVIDER=GkeWorkloadCertificate: the GKE workload certificate files are not present: .*certificates\.pem/);
    write(cwd, { [`${dir}/certificates.pem`]: 'c', [`${dir}/private_key.pem`]: 'k', [`${dir}/ca_certificates.pem`]: 'r' });
    expect(chooseCertificateMode(seedConfig({ cwd, extraEnv: { CA_PROVIDER: 'GkeWorkloadCertificate' } }), undefined)).toMatchObject({ kind: 'mounted', rootPath: path.join(cwd, dir, 'ca_certificates.pem') });
    write(cwd, { [`${dir}/cert-chain.pem`]: 'c', [`${dir}/key.pem`]: 'k', [`${dir}/root-cert.pem`]: 'r' });
    expect(chooseCertificateMode(seedConfig({ cwd }), undefined)).toMatchObject({ kind: 'mounted', certPath: path.join(cwd, dir, 'cert-chain.pem') });
    expect(chooseCertificateMode(seedConfig({ cwd, extraEnv: { OUTPUT_CERTS: dir } }), undefined)).toEqual({ kind: 'ca' }); // its own output is never read back
  });
});
