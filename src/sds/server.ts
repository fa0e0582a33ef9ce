/**
 * SdsServer: Envoy's `SecretDiscoveryService/StreamSecrets` (state of the world) on a unix
 * socket (SPEC §4 chooses the path, §7.3 and issue 14 the behaviour), serving every name a
 * SecretCatalog resolves: `default` and `ROOTCA` (CA-issued or mounted), and the file secrets
 * `file-root:system`, `file-root:<path>`, `file-cert:<cert>~<key>`.
 *
 * Contract:
 * - `start()` prepares the socket path (socket.ts) and listens; failures are AgentError
 *   `SDS_LISTEN_FAILED` naming the path and the cause.
 * - Any number of concurrent streams (Envoy opens one per secret). Per stream, requests are
 *   handled as `SotwWatch` classifies them (ACK, NACK logged and not re-sent, stale nonces
 *   ignored, new names answered). A name still pending (no workload certificate yet) is
 *   answered as soon as it exists; it never fails the stream.
 * - A name that cannot be served (a bad name, a missing/invalid file, a key that does not match
 *   its certificate, `default` when an external SDS server owns it) is left out of the
 *   response, logged once per stream and distinct error, and shown in `snapshot()`; the stream
 *   stays open and keeps serving its other names; the name is answered once it can be (its
 *   files are watched). Istio instead fails the whole stream with a gRPC error (Envoy retries
 *   it with backoff); with one name per stream, as Envoy uses it, Envoy sees the same thing: the
 *   secret does not arrive and the cluster stays warming, while a stream carrying several names
 *   is not broken for all of them by one.
 * - A served secret whose content changes is pushed (alone) on every open stream watching it,
 *   without closing the stream; a secret that becomes unservable is not pushed (Envoy keeps
 *   the last good one).
 * - `snapshot()`: facts only (no key, no certificate body).
 * - `close()` (idempotent) ends every stream with status OK (Envoy reconnects to the next
 *   agent), stops listening and removes the socket file.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { SecretCatalog, type SecretSourceKind, type WorkloadCertificateSource } from './catalog.js';
import { FileSecretStore } from './file-secrets.js';
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
import { listenError, prepareSocket, removeSocket } from './socket.js';
import { SotwWatch } from './sotw.js';

/** What the server needs from the SecretManager (kept for callers that give only a manager). */
export type SecretSource = WorkloadCertificateSource;

export interface SdsServerOptions {
  /** Absolute path of the unix socket (the bootstrap's `sds-grpc` or `sds-files-grpc` pipe). */
  socketPath: string;
  /** Resolves every name; when absent, one is built from `manager` (CA mode, file secrets relative to the cwd). */
  catalog?: SecretCatalog;
  manager?: SecretSource;
  log: Logger;
}

/** One served or requested name, as `snapshot()` shows it. */
export interface SdsNameSnapshot {
  name: string;
  state: 'served' | 'waiting' | 'error';
  source?: SecretSourceKind;
  /** ISO times. */
  notAfter?: string;
  lastPushAt?: string;
  pushes: number;
  /** Open streams watching it. */
  streams: number;
  serialNumber?: string;
  error?: string;
  paths?: string[];
}

export interface SdsServerSnapshot {
  socketPath: string;
  streams: number;
  names: SdsNameSnapshot[];
}

type Call = grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

interface PushRecord {
  pushes: number;
  lastPushAt?: number;
}

class SdsStream {
  readonly watch = new SotwWatch();
  private readonly reported = new Map<string, string>();
  /** Names requested but pending (answered, not pushed, when they become available). */
  private readonly waiting = new Set<string>();
  private node = '';

  constructor(
    readonly id: number,
    private readonly call: Call,
    private readonly server: SdsServer,
    private readonly log: Logger,
  ) {}

  private get who(): string {
    return `SDS stream ${this.id}${this.node ? ` (${this.node})` : ''}`;
  }

  onRequest(req: DiscoveryRequest): void {
    if (req.node?.id) this.node = req.node.id;
    const v = this.watch.onRequest(req);
    switch (v.kind) {
      case 'respond':
        this.log.debug(`${this.who}: request for ${v.names.join(',')} (${v.reason})`);
        this.respond(v.names);
        return;
      case 'ack':
        this.log.debug(`${this.who}: ACK ${this.watch.names?.join(',')} version ${req.version_info}`);
        return;
      case 'nack':
        this.log.warn(`${this.who}: Envoy rejected ${this.watch.names?.join(',')} (nonce ${req.response_nonce}, code ${v.code}): ${v.message}`);
        return;
      case 'stale':
        this.log.debug(`${this.who}: ignoring a request with the stale nonce ${v.nonce}`);
        return;
      case 'unsubscribe':
        this.log.debug(`${this.who}: unsubscribed`);
        return;
      case 'wrong-type':
        this.log.warn(`${this.who}: ignoring a request for type ${v.typeUrl}: this stream serves ${SECRET_TYPE_URL}`);
        return;
    }
  }

  /** Served content changed for these names: push those this stream watches. */
  onChange(names: string[]): void {
    const mine = names.filter((n) => this.watch.watches(n));
    if (mine.length > 0) this.respond(mine, 'push');
  }

  private respond(names: string[], why = 'answer'): void {
    if (this.call.cancelled || this.call.destroyed) return;
    const ready = [];
    const waiting = new Map<string, string[]>();
    for (const n of names) {
      const s = this.server.catalog.resolve(n);
      if (s.kind === 'ready') {
        ready.push({ name: n, state: s });
        this.reported.delete(n);
      } else if (s.kind === 'pending') {
        waiting.set(s.why, [...(waiting.get(s.why) ?? []), n]);
      } else if (this.reported.get(n) !== s.error) {
        this.reported.set(n, s.error);
        this.log.warn(`${this.who}: cannot serve ${JSON.stringify(n)}: ${s.error}; the stream keeps serving its other names`);
      }
    }
    for (const [reason, ns] of waiting) {
      for (const n of ns) this.waiting.add(n);
      this.log.info(`${this.who}: ${ns.join(',')} requested; ${reason}`);
    }
    if (ready.length === 0) return;
    // A name that was waiting is answered, not pushed.
    const answered = ready.some((r) => this.waiting.delete(r.name));
    const nonce = randomUUID();
    const version = this.server.nextVersion();
    this.call.write({
      version_info: version,
      type_url: SECRET_TYPE_URL,
      nonce,
      resources: ready.map((r) => ({ type_url: SECRET_TYPE_URL, value: encodeSecret(r.state.resource) })),
    });
    this.watch.sent(nonce);
    this.server.pushed(ready.map((r) => r.name));
    const serials = [...new Set(ready.map((r) => r.state.serialNumber).filter((x): x is string => x !== undefined))];
    this.log.info(
      `SDS: ${answered ? 'answer' : why} ${ready.map((r) => r.name).join(',')} on stream ${this.id}${this.node ? ` (${this.node})` : ''}: version ${version}` +
        (serials.length > 0 ? `, certificate serial ${serials.join(',')}` : ''),
    );
  }

  end(): void {
    this.call.end();
  }
}

export class SdsServer {
  private readonly streams = new Set<SdsStream>();
  private readonly pushes = new Map<string, PushRecord>();
  private nextId = 0;
  private versions = 0;
  private closing: Promise<void> | undefined;
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly server: grpc.Server,
    readonly socketPath: string,
    readonly catalog: SecretCatalog,
    private readonly owned: { files?: FileSecretStore },
    private readonly o: SdsServerOptions,
  ) {
    this.unsubscribe = catalog.onChange((names) => {
      for (const s of this.streams) s.onChange(names);
    });
  }

  static async start(o: SdsServerOptions): Promise<SdsServer> {
    const socketPath = path.resolve(o.socketPath);
    await prepareSocket(socketPath, o.log);
    let catalog = o.catalog;
    const owned: { files?: FileSecretStore } = {};
    if (!catalog) {
      if (!o.manager) throw new Error('SdsServer.start: give a catalog or a manager');
      owned.files = new FileSecretStore({ cwd: process.cwd(), log: o.log });
      catalog = new SecretCatalog({ workload: { kind: 'ca', manager: o.manager }, files: owned.files });
    }
    const server = new grpc.Server();
    const self = new SdsServer(server, socketPath, catalog, owned, o);
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
      await owned.files?.close();
      throw listenError(socketPath, describeError(err), err);
    }
    o.log.info(`SDS server listening on ${socketPath}`);
    return self;
  }

  /** Open Envoy streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Istio's version_info: the time and a counter. */
  nextVersion(): string {
    return `${new Date().toISOString()}/${++this.versions}`;
  }

  pushed(names: string[]): void {
    const now = Date.now();
    for (const n of names) {
      const r = this.pushes.get(n) ?? { pushes: 0 };
      r.pushes++;
      r.lastPushAt = now;
      this.pushes.set(n, r);
    }
  }

  /** Every name requested on an open stream or served at least once: its state now. */
  snapshot(): SdsServerSnapshot {
    const watching = new Map<string, number>();
    for (const s of this.streams) for (const n of s.watch.names ?? []) watching.set(n, (watching.get(n) ?? 0) + 1);
    const names = [...new Set([...watching.keys(), ...this.pushes.keys()])].sort();
    return {
      socketPath: this.socketPath,
      streams: this.streams.size,
      names: names.map((name) => {
        const s = this.catalog.resolve(name);
        const p = this.pushes.get(name);
        const base: SdsNameSnapshot = {
          name,
          state: s.kind === 'ready' ? 'served' : s.kind === 'pending' ? 'waiting' : 'error',
          pushes: p?.pushes ?? 0,
          streams: watching.get(name) ?? 0,
          ...(s.source ? { source: s.source } : {}),
          ...(p?.lastPushAt !== undefined ? { lastPushAt: new Date(p.lastPushAt).toISOString() } : {}),
        };
        if (s.kind === 'ready') return { ...base, notAfter: new Date(s.notAfter).toISOString(), ...(s.serialNumber ? { serialNumber: s.serialNumber } : {}) };
        if (s.kind === 'error') return { ...base, error: s.error, ...(s.paths ? { paths: s.paths } : {}) };
        return base;
      }),
    };
  }

  private accept(call: Call): void {
    if (this.closing) {
      call.end();
      return;
    }
    const stream = new SdsStream(++this.nextId, call, this, this.o.log);
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
      if (this.owned.files) {
        this.catalog.close();
        await this.owned.files.close();
      }
      this.o.log.info(`SDS server on ${this.socketPath} closed`);
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
