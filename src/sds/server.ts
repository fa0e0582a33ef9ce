/**
 * SdsServer: Envoy's `SecretDiscoveryService/StreamSecrets` (state of the world) on the SDS
 * unix socket (SPEC §4 chooses the path, §7.3 the behaviour), serving `default` (the workload
 * chain and key as a `TlsCertificate`) and `ROOTCA` (the trust bundle as a
 * `CertificateValidationContext`) from a SecretManager.
 *
 * Contract:
 * - `start()` prepares the socket path (creates the directory, removes a stale socket, refuses
 *   a path that is not a socket or where another server answers) and listens; every failure
 *   is an AgentError `SDS_LISTEN_FAILED` naming the path and the cause.
 * - Any number of concurrent streams (Envoy opens one per secret). Per stream, requests are
 *   handled as `SotwWatch` classifies them (ACK, NACK logged and not re-sent, stale nonces
 *   ignored, new names answered). A request that arrives before the first certificate is
 *   answered as soon as it exists; it never fails the stream. Unknown secret names are logged
 *   and left unanswered (Envoy keeps waiting for them, visibly).
 * - Each new certificate is pushed on every open stream that watches `default`, and `ROOTCA`
 *   when the root changed, without closing the stream.
 * - `close()` (idempotent) ends every stream with status OK (Envoy reconnects to the next
 *   agent), stops listening and removes the socket file.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { IssuedCertificate } from '../ca/chain.js';
import { AgentError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  SECRET_TYPE_URL,
  STREAM_SECRETS_PATH,
  decodeDiscoveryRequest,
  decodeDiscoveryResponse,
  encodeDiscoveryRequest,
  encodeDiscoveryResponse,
  encodeSecret,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from './proto.js';
import { ROOT_SECRET, SERVED_SECRETS, SotwWatch, WORKLOAD_SECRET, secretResource } from './sotw.js';

/** What the server needs from the SecretManager. */
export interface SecretSource {
  readonly certificate: IssuedCertificate | undefined;
  onUpdate(listener: (cert: IssuedCertificate, change: { rootChanged: boolean; first: boolean }) => void): () => void;
}

export interface SdsServerOptions {
  /** Absolute path of the unix socket (the bootstrap's `sds-grpc` pipe). */
  socketPath: string;
  manager: SecretSource;
  log: Logger;
}

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

type Call = grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

class SdsStream {
  readonly watch = new SotwWatch();
  private pending: string[] | undefined;
  private readonly warnedUnknown = new Set<string>();
  private node = '';

  constructor(
    readonly id: number,
    private readonly call: Call,
    private readonly manager: SecretSource,
    private readonly log: Logger,
    private readonly nextVersion: () => string,
  ) {}

  onRequest(req: DiscoveryRequest): void {
    if (req.node?.id) this.node = req.node.id;
    const v = this.watch.onRequest(req);
    const who = `SDS stream ${this.id}${this.node ? ` (${this.node})` : ''}`;
    switch (v.kind) {
      case 'respond':
        this.log.debug(`${who}: request for ${v.names.join(',')} (${v.reason})`);
        this.respond(v.names);
        return;
      case 'ack':
        this.log.debug(`${who}: ACK ${this.watch.names?.join(',')} version ${req.version_info}`);
        return;
      case 'nack':
        this.log.warn(`${who}: Envoy rejected ${this.watch.names?.join(',')} (nonce ${req.response_nonce}, code ${v.code}): ${v.message}`);
        return;
      case 'stale':
        this.log.debug(`${who}: ignoring a request with the stale nonce ${v.nonce}`);
        return;
      case 'unsubscribe':
        this.pending = undefined;
        this.log.debug(`${who}: unsubscribed`);
        return;
      case 'wrong-type':
        this.log.warn(`${who}: ignoring a request for type ${v.typeUrl}: this stream serves ${SECRET_TYPE_URL}`);
        return;
    }
  }

  /** A new certificate: answer a waiting request, or push what this stream watches. */
  onCertificate(change: { rootChanged: boolean; first: boolean }): void {
    if (this.pending) {
      const names = this.pending;
      this.pending = undefined;
      this.respond(names);
      return;
    }
    const names = (this.watch.names ?? []).filter((n) => n === WORKLOAD_SECRET || (n === ROOT_SECRET && (change.rootChanged || change.first)));
    if (names.length > 0) this.respond(names, 'push');
  }

  private respond(names: string[], why = 'answer'): void {
    const known = names.filter((n) => SERVED_SECRETS.includes(n));
    for (const n of names) {
      if (!known.includes(n) && !this.warnedUnknown.has(n)) {
        this.warnedUnknown.add(n);
        this.log.warn(`SDS stream ${this.id}: unknown secret ${JSON.stringify(n)} requested: only ${SERVED_SECRETS.join(' and ')} are served`);
      }
    }
    if (known.length === 0) return;
    if (this.call.cancelled || this.call.destroyed) return;
    const cert = this.manager.certificate;
    if (!cert) {
      this.pending = names;
      this.log.info(`SDS stream ${this.id}: ${known.join(',')} requested; waiting for the workload certificate`);
      return;
    }
    const nonce = randomUUID();
    const version = this.nextVersion();
    this.call.write({
      version_info: version,
      type_url: SECRET_TYPE_URL,
      nonce,
      resources: known.map((n) => ({ type_url: SECRET_TYPE_URL, value: encodeSecret(secretResource(n, cert)) })),
    });
    this.watch.sent(nonce);
    this.log.info(`SDS: ${why} ${known.join(',')} on stream ${this.id}${this.node ? ` (${this.node})` : ''}: version ${version}, certificate serial ${cert.serialNumber}`);
  }

  end(): void {
    this.call.end();
  }
}

export class SdsServer {
  private readonly streams = new Set<SdsStream>();
  private nextId = 0;
  private versions = 0;
  private closing: Promise<void> | undefined;
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly server: grpc.Server,
    readonly socketPath: string,
    private readonly o: SdsServerOptions,
  ) {
    this.unsubscribe = o.manager.onUpdate((_cert, change) => {
      for (const s of this.streams) s.onCertificate(change);
    });
  }

  static async start(o: SdsServerOptions): Promise<SdsServer> {
    const socketPath = path.resolve(o.socketPath);
    await prepareSocket(socketPath, o.log);
    const server = new grpc.Server();
    const self = new SdsServer(server, socketPath, o);
    server.addService(
      {
        StreamSecrets: {
          path: STREAM_SECRETS_PATH,
          requestStream: true,
          responseStream: true,
          requestSerialize: encodeDiscoveryRequest,
          requestDeserialize: decodeDiscoveryRequest,
          responseSerialize: encodeDiscoveryResponse,
          responseDeserialize: decodeDiscoveryResponse,
        },
      } as grpc.ServiceDefinition,
      { StreamSecrets: (call: Call) => self.accept(call) },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      self.unsubscribe();
      server.forceShutdown();
      throw listenError(socketPath, describeError(err), err);
    }
    o.log.info(`SDS server listening on ${socketPath}`);
    return self;
  }

  /** Open Envoy streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  private accept(call: Call): void {
    if (this.closing) {
      call.end();
      return;
    }
    // Istio's version_info: the time and a counter.
    const stream = new SdsStream(++this.nextId, call, this.o.manager, this.o.log, () => `${new Date().toISOString()}/${++this.versions}`);
    this.streams.add(stream);
    this.o.log.debug(`SDS stream ${stream.id} opened (${this.streams.size} open)`);
    call.on('data', (req: DiscoveryRequest) => stream.onRequest(req));
    const done = (why: string): void => {
      if (!this.streams.delete(stream)) return;
      this.o.log.debug(`SDS stream ${stream.id} closed: ${why} (${this.streams.size} open)`);
    };
    call.on('end', () => {
      done('Envoy ended it');
      call.end();
    });
    call.on('cancelled', () => done('cancelled'));
    call.on('error', (err: Error) => done(describeError(err)));
    call.on('close', () => done('closed'));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe();
      for (const s of this.streams) s.end();
      this.streams.clear();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.server.forceShutdown();
          resolve();
        }, 1000);
        this.server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      removeSocket(this.socketPath);
      this.o.log.info(`SDS server on ${this.socketPath} closed`);
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function listenError(socketPath: string, why: string, cause?: unknown): AgentError {
  return new AgentError('SDS_LISTEN_FAILED', `cannot serve SDS on ${socketPath}: ${why}`, cause === undefined ? {} : { cause });
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? describeError(err);
}

/** Directory present and writable, no live server on the path, stale socket removed. */
async function prepareSocket(socketPath: string, log: Logger): Promise<void> {
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) throw listenError(socketPath, `the path is ${bytes} bytes long; a unix socket path can have at most ${MAX_SOCKET_PATH_BYTES}`);
  const dir = path.dirname(socketPath);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = errno(err);
    const blocker = code === 'EEXIST' || code === 'ENOTDIR' ? nonDirectoryAncestor(dir) : undefined;
    throw listenError(socketPath, `cannot create the directory ${dir} (${blocker ? `${blocker} is not a directory` : code})`, err);
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw listenError(socketPath, `the directory ${dir} is not writable (${errno(err)})`, err);
  }
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw listenError(socketPath, `cannot inspect the path (${errno(err)})`, err);
  }
  if (!st) return;
  if (!st.isSocket()) throw listenError(socketPath, 'the path exists and is not a socket');
  if (await answers(socketPath)) throw listenError(socketPath, 'another process is already serving on this socket');
  try {
    fs.unlinkSync(socketPath);
  } catch (err) {
    throw listenError(socketPath, `cannot remove the stale socket (${errno(err)})`, err);
  }
  log.info(`removed the stale SDS socket ${socketPath}`);
}

/** The closest existing ancestor of `dir` (or itself), when it is not a directory. */
function nonDirectoryAncestor(dir: string): string | undefined {
  for (let p = dir; ; p = path.dirname(p)) {
    try {
      return fs.statSync(p).isDirectory() ? undefined : p;
    } catch {
      if (path.dirname(p) === p) return undefined;
    }
  }
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function removeSocket(socketPath: string): void {
  try {
    if (fs.lstatSync(socketPath).isSocket()) fs.unlinkSync(socketPath);
  } catch {
    // already gone
  }
}
