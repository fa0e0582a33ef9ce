/**
 * SdsServer on a real unix socket, with certificates from a real gRPC CA, spoken to by a client
 * that decodes with Envoy's own protos: `default` and `ROOTCA` are answered in Envoy's shapes;
 * ACK, NACK and stale nonces produce no re-send; new names are answered; a request that comes
 * before the first certificate is answered when it exists; a rotation is pushed on every open
 * stream without closing any; the socket path is prepared (stale socket removed) or refused
 * with an error naming the cause; close() ends the streams and removes the socket.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentError } from '../../src/errors.js';
import { SdsServer } from '../../src/sds/server.js';
import { SECRET_TYPE_URL } from '../../src/sds/proto.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { RawSdsStream, captureLogger, pemOf, socketDir, workloadStack, type WorkloadStack } from './helpers.js';
import { waitUntil } from '../support/wait.js';

const ECDSA = { ECC_SIGNATURE_ALGORITHM: 'ECDSA' };
let ca: TestCa;
let caServer: CaServer;
const stacks: WorkloadStack[] = [];
const streams: RawSdsStream[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  ca = await TestCa.create();
  caServer = await CaServer.start({ ca, tokens: {} });
});
afterAll(async () => {
  await caServer.close();
});
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  for (const s of stacks.splice(0)) await s.dispose();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  await caServer.up();
});

async function stack(o: Parameters<typeof workloadStack>[0]): Promise<WorkloadStack> {
  const s = await workloadStack(o);
  stacks.push(s);
  return s;
}
async function open(socketPath: string): Promise<RawSdsStream> {
  const s = await RawSdsStream.open(socketPath);
  streams.push(s);
  return s;
}
function tmp(): string {
  const d = socketDir();
  dirs.push(d);
  return d;
}

describe('serving secrets', () => {
  test('default is the chain and key, ROOTCA the trust bundle, each on its own stream as Envoy asks', async () => {
    const w = await stack({ ca: caServer });
    const certStream = await open(w.socketPath);
    const rootStream = await open(w.socketPath);
    certStream.send({ names: ['default'], node: 'sidecar~10.244.1.7~jiuxi.jiuxi-ns~jiuxi-ns.svc.cluster.local' });
    rootStream.send({ names: ['ROOTCA'] });

    const res = await certStream.next();
    expect(res.type_url).toBe(SECRET_TYPE_URL);
    expect(res.resourceTypes).toEqual([SECRET_TYPE_URL]);
    expect(res.nonce).not.toBe('');
    expect(res.version_info).not.toBe('');
    expect(res.secrets).toHaveLength(1);
    const secret = res.secrets[0];
    expect(secret?.name).toBe('default');
    const chain = pemOf(secret, 'chain');
    const leaf = new X509Certificate(chain);
    expect(leaf.subjectAltName).toBe(`URI:${w.fixture.identity}`);
    expect(leaf.checkPrivateKey(createPrivateKey(pemOf(secret, 'key')))).toBe(true);
    expect(leaf.verify(new X509Certificate(ca.rootCertPem).publicKey)).toBe(true);
    expect(chain.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(secret?.validation_context).toBeUndefined();

    const root = await rootStream.next();
    expect(root.secrets.map((s) => s.name)).toEqual(['ROOTCA']);
    expect(pemOf(root.secrets[0], 'ca')).toBe(ca.rootCertPem);
    expect(root.secrets[0]?.tls_certificate).toBeUndefined();
    expect(w.server.streamCount).toBe(2);
    expect(w.logs.text()).toMatch(/SDS: answer default on stream \d+ \(sidecar~10\.244\.1\.7~jiuxi\.jiuxi-ns~jiuxi-ns\.svc\.cluster\.local\)/);
  });

  test('ACK, NACK and a stale nonce get no response; adding a name does (the next message proves nothing came before it)', async () => {
    const w = await stack({ ca: caServer, env: ECDSA });
    const s = await open(w.socketPath);
    s.send({ names: ['default'] });
    const first = await s.next();
    s.ack(first, ['default']);
    s.send({ names: ['default'], nonce: first.nonce, version: first.version_info, error: { code: 13, message: 'Failed to load private key from <inline>' } });
    s.send({ names: ['default'], nonce: 'an-old-nonce', version: 'v0' });
    s.send({ names: ['default', 'ROOTCA'], nonce: first.nonce, version: first.version_info });
    const second = await s.next();
    expect(second.secrets.map((x) => x.name)).toEqual(['default', 'ROOTCA']);
    expect(second.nonce).not.toBe(first.nonce);
    expect(s.pending).toBe(0);
    const text = w.logs.text();
    expect(text).toMatch(/warn SDS stream \d+: Envoy rejected default \(nonce [\w-]+, code 13\): Failed to load private key from <inline>/);
    expect(text).toMatch(/debug SDS stream \d+: ignoring a request with the stale nonce an-old-nonce/);
    expect(text).toMatch(/debug SDS stream \d+: ACK default version /);
  });

  test('names that cannot be served are logged with the reason and left out; the stream serves the others', async () => {
    const w = await stack({ ca: caServer, env: ECDSA });
    const s = await open(w.socketPath);
    s.send({ names: ['file-cert:/nonexistent/cert.pem~/nonexistent/key.pem', 'kubernetes://sec'] });
    s.send({ names: ['default'] });
    const res = await s.next();
    expect(res.secrets.map((x) => x.name)).toEqual(['default']);
    expect(w.logs.text()).toContain('cannot serve "file-cert:/nonexistent/cert.pem~/nonexistent/key.pem": certificate file /nonexistent/cert.pem: no such file');
    expect(w.logs.text()).toContain('cannot serve "kubernetes://sec": SDS resource name "kubernetes://sec" is not served: expected default, ROOTCA, file-root:system');
  });

  test('a request before the first certificate waits for it (the stream is not failed)', async () => {
    await caServer.down();
    const w = await stack({ ca: caServer, env: ECDSA });
    const s = await open(w.socketPath);
    s.send({ names: ['default'] });
    await waitUntil('a failed CSR attempt', () => /getting the workload certificate failed \(attempt 1\): CA localhost:\d+ is unreachable/.test(w.logs.text()));
    expect(w.logs.text()).toMatch(/SDS stream \d+: default requested; waiting for the workload certificate/);
    await caServer.up();
    const res = await s.next();
    expect(res.secrets[0]?.name).toBe('default');
    expect(w.logs.text()).toMatch(/Envoy has no certificate yet; retrying in \d+/);
  });

  test('a rotation is pushed on every open stream, which stay open', async () => {
    const w = await stack({ ca: caServer, env: { ...ECDSA, SECRET_TTL: '2s', SECRET_GRACE_PERIOD_RATIO_JITTER: '0' } });
    const opened = await Promise.all([open(w.socketPath), open(w.socketPath), open(w.socketPath)]);
    const firsts = await Promise.all(
      opened.map(async (s) => {
        s.send({ names: ['default'] });
        const r = await s.next();
        s.ack(r, ['default']);
        return r;
      }),
    );
    const serial = new X509Certificate(pemOf(firsts[0]?.secrets[0], 'chain')).serialNumber;
    const pushes = await Promise.all(opened.map((s) => s.next(5000)));
    for (const p of pushes) {
      expect(p.secrets.map((x) => x.name)).toEqual(['default']);
      expect(new X509Certificate(pemOf(p.secrets[0], 'chain')).serialNumber).not.toBe(serial);
    }
    expect(w.server.streamCount).toBe(3);
    expect(w.logs.text()).toMatch(/SDS: push default on stream/);
  });

  test('close() ends the streams with status OK and removes the socket', async () => {
    const w = await stack({ ca: caServer, env: ECDSA });
    const s = await open(w.socketPath);
    s.send({ names: ['ROOTCA'] });
    await s.next();
    await w.server.close();
    expect((await s.ended).code).toBe(0);
    expect(fs.existsSync(w.socketPath)).toBe(false);
    await w.server.close(); // idempotent
  });
});

describe('the socket path', () => {
  const manager = { certificate: undefined, onUpdate: () => () => undefined };

  test('a stale socket left by a dead process is removed and served on', async () => {
    const dir = tmp();
    const socketPath = path.join(dir, 'socket');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    const logs = captureLogger();
    const server = await SdsServer.start({ socketPath, manager, log: logs.log });
    expect(logs.text()).toContain(`removed the stale SDS socket ${socketPath}`);
    await server.close();
  });

  async function startError(socketPath: string): Promise<AgentError> {
    const err = await SdsServer.start({ socketPath, manager, log: captureLogger().log }).then(
      (s) => s.close().then(() => undefined),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('SDS_LISTEN_FAILED');
    return err as AgentError;
  }

  test('another server already answering on the socket is not taken over', async () => {
    const dir = tmp();
    const socketPath = path.join(dir, 'socket');
    const first = await SdsServer.start({ socketPath, manager, log: captureLogger().log });
    try {
      expect((await startError(socketPath)).message).toBe(`cannot serve SDS on ${socketPath}: another process is already serving on this socket`);
    } finally {
      await first.close();
    }
  });

  test('a path that is not a socket, a parent that is a file, a path too long: each named', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    expect((await startError(path.join(dir, 'file'))).message).toBe(`cannot serve SDS on ${path.join(dir, 'file')}: the path exists and is not a socket`);
    expect((await startError(path.join(dir, 'file', 'socket'))).message).toBe(
      `cannot serve SDS on ${path.join(dir, 'file', 'socket')}: cannot create the directory ${path.join(dir, 'file')} (${path.join(dir, 'file')} is not a directory)`,
    );
    const long = path.join(dir, 'x'.repeat(120));
    expect((await startError(long)).message).toMatch(/^cannot serve SDS on \S+: the path is \d+ bytes long; a unix socket path can have at most 107$/);
  });

  test('a directory that is not writable (run as an unprivileged user when root)', async () => {
    const dir = tmp();
    const ro = path.join(dir, 'ro');
    fs.mkdirSync(ro, { mode: 0o555 });
    fs.chmodSync(dir, 0o755);
    const socketPath = path.join(ro, 'socket');
    if (process.getuid?.() !== 0) {
      expect((await startError(socketPath)).message).toBe(`cannot serve SDS on ${socketPath}: the directory ${ro} is not writable (EACCES)`);
      return;
    }
    // Root may write anywhere: try as `nobody` in a child process running the compiled server.
    const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
    const script = `
      let SdsServer, createLogger;
      try {
        ({ SdsServer } = await import(${JSON.stringify(path.join(repo, 'dist/src/sds/server.js'))}));
        ({ createLogger } = await import(${JSON.stringify(path.join(repo, 'dist/src/log.js'))}));
      } catch (err) { console.log('SKIP ' + (err.code ?? err.message)); process.exit(0); }
      try {
        const s = await SdsServer.start({ socketPath: ${JSON.stringify(socketPath)}, manager: { certificate: undefined, onUpdate: () => () => {} }, log: createLogger({ outputLevel: 'error' }) });
        await s.close();
        console.log('started');
      } catch (err) { console.log(err.code + ' ' + err.message); }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    let errText = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (errText += d));
    await new Promise((r) => child.once('close', r));
    if (out.startsWith('SKIP ')) {
      console.log(`skipped: user nobody cannot load the compiled server from ${repo} (${out.slice(5).trim()})`);
      return;
    }
    expect(errText).toBe('');
    expect(out.trim()).toBe(`SDS_LISTEN_FAILED cannot serve SDS on ${socketPath}: the directory ${ro} is not writable (EACCES)`);
  });
});
