/**
 * `startWorkloadCertificates(...).snapshot()` and `unservable()` (the status page's and the
 * readiness reason's view of SDS): mode, sources, not-after, last push, errors — and never a key
 * or certificate body. Mounted mode, so no CA is involved.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chooseCertificateMode } from '../../src/sds/mode.js';
import { startWorkloadCertificates } from '../../src/sds/workload.js';
import { TestCa } from '../support/ca-server.js';
import { seedConfig } from '../support/config.js';
import { RawSdsStream, captureLogger, socketDir } from './helpers.js';
import { waitUntil } from '../support/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('workload certificates snapshot', () => {
  test('mounted default served, a bad name in error; facts only', async () => {
    const ca = await TestCa.create();
    const pair = await ca.issue({ uris: ['spiffe://cluster.local/ns/jiuxi-ns/sa/default'] });
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'sds-snap-'));
    cleanups.push(() => fs.rmSync(cwd, { recursive: true, force: true }));
    fs.mkdirSync(path.join(cwd, 'etc/certs'), { recursive: true });
    fs.writeFileSync(path.join(cwd, 'etc/certs/cert-chain.pem'), pair.certPem);
    fs.writeFileSync(path.join(cwd, 'etc/certs/key.pem'), pair.keyPem);
    fs.writeFileSync(path.join(cwd, 'etc/certs/root-cert.pem'), ca.rootCertPem);
    const config = seedConfig({ cwd });
    const socketPath = path.join(socketDir(), 'sds.sock');
    const certs = await startWorkloadCertificates({ config, socketPath, log: captureLogger().log, mode: chooseCertificateMode(config, undefined) });
    cleanups.push(() => certs.close());
    expect(certs.manager).toBeUndefined(); // no CA client

    const s = await RawSdsStream.open(socketPath);
    cleanups.push(() => s.close());
    s.send({ names: ['default'] });
    await s.next();
    expect(certs.unservable()).toBeUndefined();
    const bad = await RawSdsStream.open(socketPath);
    cleanups.push(() => bad.close());
    bad.send({ names: ['file-cert:onlyone'] });
    await waitUntil('the bad name in the snapshot', () => certs.snapshot().sds.names.some((n) => n.name === 'file-cert:onlyone'));

    const snap = certs.snapshot();
    expect(snap).toMatchObject({ mode: 'mounted', reason: 'certificate files in ./etc/certs', sds: { socketPath, streams: 2 } });
    const byName = Object.fromEntries(snap.sds.names.map((n) => [n.name, n]));
    expect(byName.default).toMatchObject({ state: 'served', source: 'mounted', pushes: 1, streams: 1 });
    expect(Date.parse(byName.default?.notAfter ?? '')).toBeGreaterThan(Date.now());
    expect(Date.parse(byName.default?.lastPushAt ?? '')).toBeLessThanOrEqual(Date.now());
    expect(byName['file-cert:onlyone']).toMatchObject({ state: 'error', pushes: 0, streams: 1 });
    expect(byName['file-cert:onlyone']?.error).toMatch(/needs exactly two paths/);
    expect(JSON.stringify(snap)).not.toMatch(/BEGIN|PRIVATE/);
    expect(certs.unservable()).toMatch(/^SDS cannot serve "file-cert:onlyone" \(SDS resource name "file-cert:onlyone": a file-cert: name needs exactly two paths/);
  });
});
