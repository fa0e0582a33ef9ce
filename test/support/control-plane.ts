/**
 * A test control plane: a real gRPC ADS server (`envoy.service.discovery.v3.AggregatedDiscoveryService`,
 * SotW and Delta), plaintext or TLS, on 127.0.0.1 (port 0 or a fixed port) or a UDS.
 *
 * What it does, so tests observe what istiod would:
 * - records every stream (kind, gRPC metadata, every request decoded with Envoy's protos, the node
 *   of the first request) and every health report (`istio.v1.HealthInformation` requests);
 * - serves the configured CDS/LDS resources (real `Cluster` / `Listener` protos, given as proto
 *   JSON) on subscription, and pushes a new version to every open stream on `setResources`;
 *   a resource given as `{ name, rawValue }` is sent as undecodable bytes (to make a client NACK);
 * - `token`: streams without `authorization: Bearer <token>` end with UNAUTHENTICATED;
 * - `dropStreams()` ends open streams with a status; `stop()` takes the server down (the port
 *   stays reserved for `restart()`); `silent` stops answering subscriptions.
 * - extension point: `services` are added to the same server (e.g. a CA service later).
 * - NDS: `nameTable` / `setNameTable()` serve an `istio.networking.nds.v1.NameTable` (bytes, e.g.
 *   from test/support/nds-encode.ts) to streams that subscribe to that type, as istiod does for
 *   an agent with DNS capture; without one, such a subscription gets no answer.
 *
 * Lifecycle: `ControlPlane.start()` → (`stop()` ↔ `restart()`)* → `close()` (idempotent).
 */
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { freePort } from './ports.js';
import { TYPES, TYPE_URL, decodeMessage, encodeMessage, nodeFromDecoded, packAny, type DecodedNode } from './control-plane-protos.js';

export type StreamKind = 'sotw' | 'delta';

export const ADS_PATHS: Record<StreamKind, string> = {
  sotw: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
  delta: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
};

export interface RecordedRequest {
  at: number;
  typeUrl: string;
  nonce: string;
  /** SotW `version_info`. */
  version: string;
  /** SotW `resource_names`, Delta `resource_names_subscribe`. */
  resourceNames: string[];
  /** Delta only. */
  initialResourceVersions: Record<string, string>;
  errorDetail?: { code: number; message: string };
  node?: DecodedNode;
  bytes: number;
}

export interface RecordedStream {
  id: number;
  kind: StreamKind;
  /** gRPC metadata as received (keys lower-case). */
  metadata: Record<string, string>;
  openedAt: number;
  closedAt?: number;
  /** How it ended, from the server's point of view. */
  end?: string;
  /** Set when the token check refused it. */
  rejected?: string;
  node?: DecodedNode;
  requests: RecordedRequest[];
  /** Responses sent: type URL, version, nonce, resource count. */
  responses: Array<{ typeUrl: string; version: string; nonce: string; resources: number; bytes: number }>;
}

export interface HealthEvent {
  stream: number;
  kind: StreamKind;
  at: number;
  healthy: boolean;
  message?: string;
  code?: number;
}

/** A resource as proto JSON (snake_case), or raw bytes that will not decode. */
export type ResourceInput = Record<string, unknown> | { name: string; rawValue: Buffer };

export interface ControlPlaneOptions {
  /** Listen address (default 127.0.0.1 and a free port). */
  host?: string;
  port?: number;
  /** Listen on this UDS instead of TCP. */
  unixPath?: string;
  /** Serve TLS with this certificate chain and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Expected bearer token; streams without it are refused. */
  token?: string;
  clusters?: ResourceInput[];
  listeners?: ResourceInput[];
  /** Do not answer subscriptions (the stream stays open). */
  silent?: boolean;
  /** Extra services on the same server. */
  services?: Array<{ definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }>;
  /** Do not start listening (a control plane that is down at first); call `restart()` later. */
  startDown?: boolean;
  /** An encoded NDS NameTable served on NDS subscriptions. */
  nameTable?: Buffer;
}

export const NAME_TABLE_TYPE_URL = 'type.googleapis.com/istio.networking.nds.v1.NameTable';

const passThrough = (b: Buffer): Buffer => b;

const ADS_DEFINITION: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: ADS_PATHS.sotw,
    requestStream: true,
    responseStream: true,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  },
  DeltaAggregatedResources: {
    path: ADS_PATHS.delta,
    requestStream: true,
    responseStream: true,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  },
};

interface EncodedResource {
  name: string;
  any: { type_url: string; value: Buffer };
}

interface LiveStream {
  rec: RecordedStream;
  call: grpc.ServerDuplexStream<Buffer, Buffer>;
  /** Types this stream subscribed to. */
  subscribed: Set<string>;
  /** Delta: resource names the client was last sent, per type (to compute removals). */
  sent: Map<string, Set<string>>;
}

export class ControlPlane {
  readonly streams: RecordedStream[] = [];
  readonly health: HealthEvent[] = [];
  /** Version of the resource set; bumped by `setResources`. */
  version = 1;
  silent: boolean;
  token: string | undefined;
  private server: grpc.Server | undefined;
  private readonly live = new Map<number, LiveStream>();
  private readonly resources = new Map<string, EncodedResource[]>();
  private nextStream = 1;
  private nextNonce = 1;
  private closed = false;
  /** `host:port` (TCP) or `unix:<path>`. */
  address = '';
  port = 0;

  private constructor(private readonly options: ControlPlaneOptions) {
    this.silent = options.silent ?? false;
    this.token = options.token;
    this.resources.set(TYPE_URL.cluster, encodeAll(TYPE_URL.cluster, options.clusters ?? []));
    this.resources.set(TYPE_URL.listener, encodeAll(TYPE_URL.listener, options.listeners ?? []));
    if (options.nameTable) this.resources.set(NAME_TABLE_TYPE_URL, [{ name: '', any: { type_url: NAME_TABLE_TYPE_URL, value: options.nameTable } }]);
  }

  /** Serves a new NameTable (bytes; an empty list of resources with `[]`) and pushes it to subscribed streams. */
  setNameTable(table: Buffer | []): void {
    this.version++;
    this.resources.set(NAME_TABLE_TYPE_URL, Array.isArray(table) ? [] : [{ name: '', any: { type_url: NAME_TABLE_TYPE_URL, value: table } }]);
    for (const l of this.live.values()) {
      if (!l.rec.requests.some((r) => r.typeUrl === NAME_TABLE_TYPE_URL)) continue;
      l.subscribed.add(NAME_TABLE_TYPE_URL);
      this.respond(l, NAME_TABLE_TYPE_URL);
    }
  }

  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const cp = new ControlPlane(options);
    if (options.unixPath) cp.address = `unix:${options.unixPath}`;
    else {
      cp.port = options.port ?? (options.startDown ? await freePort(options.host ?? '127.0.0.1') : 0);
      cp.address = `${options.host ?? '127.0.0.1'}:${cp.port}`;
    }
    if (!options.startDown) await cp.listen();
    return cp;
  }

  get up(): boolean {
    return this.server !== undefined;
  }

  private async listen(): Promise<void> {
    const o = this.options;
    const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
    server.addService(ADS_DEFINITION, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.onStream('sotw', call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.onStream('delta', call),
    });
    for (const s of o.services ?? []) server.addService(s.definition, s.implementation);
    const creds = o.tls ? grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(o.tls.key), cert_chain: Buffer.from(o.tls.cert) }], false) : grpc.ServerCredentials.createInsecure();
    let target: string;
    if (o.unixPath) {
      try {
        fs.unlinkSync(o.unixPath);
      } catch {
        // not there
      }
      target = `unix:${o.unixPath}`;
    } else {
      target = `${o.host ?? '127.0.0.1'}:${this.port}`;
    }
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(target, creds, (err, p) => (err ? reject(err) : resolve(p))));
    if (!o.unixPath) {
      this.port = port;
      this.address = `${o.host ?? '127.0.0.1'}:${port}`;
    }
    this.server = server;
  }

  /** Takes the server down: open streams are cut (the clients see UNAVAILABLE), new connections refused. */
  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    for (const l of this.live.values()) this.markClosed(l, 'server stopped');
    s.forceShutdown();
  }

  /** Brings the server back on the same address. */
  async restart(): Promise<void> {
    if (this.server || this.closed) return;
    await this.listen();
  }

  /** Ends every open stream with `code` (default UNAVAILABLE). */
  dropStreams(code: grpc.status = grpc.status.UNAVAILABLE, details = 'dropped by the test control plane'): number {
    let n = 0;
    for (const l of [...this.live.values()]) {
      this.markClosed(l, `dropped: ${grpc.status[code]}`);
      l.call.emit('error', { code, details, message: details });
      n++;
    }
    return n;
  }

  /** Replaces the CDS and/or LDS resources and pushes them (new version) to every subscribed stream. */
  setResources(r: { clusters?: ResourceInput[]; listeners?: ResourceInput[] }): void {
    this.version++;
    const changed: string[] = [];
    if (r.clusters) {
      this.resources.set(TYPE_URL.cluster, encodeAll(TYPE_URL.cluster, r.clusters));
      changed.push(TYPE_URL.cluster);
    }
    if (r.listeners) {
      this.resources.set(TYPE_URL.listener, encodeAll(TYPE_URL.listener, r.listeners));
      changed.push(TYPE_URL.listener);
    }
    for (const l of this.live.values()) for (const t of changed) if (l.subscribed.has(t)) this.respond(l, t);
  }

  /** Writes an already encoded (Delta)DiscoveryResponse to every open stream of that kind. */
  sendRaw(kind: StreamKind, bytes: Buffer): number {
    let n = 0;
    for (const l of this.live.values()) {
      if (l.rec.kind !== kind) continue;
      l.call.write(bytes);
      n++;
    }
    return n;
  }

  openStreams(): RecordedStream[] {
    return [...this.live.values()].map((l) => l.rec);
  }

  /** Nodes of the streams' first requests, in stream order. */
  nodes(): DecodedNode[] {
    return this.streams.map((s) => s.node).filter((n): n is DecodedNode => n !== undefined);
  }

  lastNode(): DecodedNode | undefined {
    const n = this.nodes();
    return n[n.length - 1];
  }

  /** Requests of every stream, in order, with their stream id. */
  allRequests(): Array<RecordedRequest & { stream: number; kind: StreamKind }> {
    return this.streams.flatMap((s) => s.requests.map((r) => ({ ...r, stream: s.id, kind: s.kind })));
  }

  /** NACKs received (requests with error_detail on a resource type). */
  nacks(): Array<RecordedRequest & { stream: number; kind: StreamKind }> {
    return this.allRequests().filter((r) => r.errorDetail !== undefined && r.typeUrl !== TYPE_URL.health);
  }

  /** Polls `fn` every 10 ms until it returns a truthy value, or rejects at the deadline. */
  async waitFor<T>(what: string, fn: () => T | undefined | false | null, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > deadline) {
        throw new Error(`control plane: timed out after ${timeoutMs}ms waiting for ${what}; streams: ${JSON.stringify(this.streams.map((s) => ({ id: s.id, kind: s.kind, end: s.end, rejected: s.rejected, requests: s.requests.length })))}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- streams -------------------------------------------------------------------------------

  private onStream(kind: StreamKind, call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
    const rec: RecordedStream = { id: this.nextStream++, kind, metadata, openedAt: Date.now(), requests: [], responses: [] };
    this.streams.push(rec);
    const l: LiveStream = { rec, call, subscribed: new Set(), sent: new Map() };
    call.on('error', () => this.markClosed(l, 'error'));
    call.on('cancelled', () => this.markClosed(l, 'cancelled by the client'));
    if (this.token !== undefined && metadata.authorization !== `Bearer ${this.token}`) {
      rec.rejected = metadata.authorization === undefined ? 'no authorization header' : `bad token: ${metadata.authorization}`;
      rec.end = 'UNAUTHENTICATED';
      rec.closedAt = Date.now();
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `authentication failure: ${rec.rejected}`, message: 'authentication failure' });
      return;
    }
    this.live.set(rec.id, l);
    call.on('data', (buf: Buffer) => this.onRequest(l, buf));
    call.on('end', () => {
      this.markClosed(l, 'client closed');
      call.end();
    });
  }

  private markClosed(l: LiveStream, why: string): void {
    if (!this.live.has(l.rec.id)) return;
    this.live.delete(l.rec.id);
    l.rec.closedAt = Date.now();
    l.rec.end ??= why;
  }

  private onRequest(l: LiveStream, buf: Buffer): void {
    const { rec } = l;
    const delta = rec.kind === 'delta';
    const m = decodeMessage<Record<string, unknown>>(delta ? TYPES.DeltaDiscoveryRequest : TYPES.DiscoveryRequest, buf);
    const ed = m.error_detail as { code?: number; message?: string } | undefined;
    const req: RecordedRequest = {
      at: Date.now(),
      typeUrl: String(m.type_url ?? ''),
      nonce: String(m.response_nonce ?? ''),
      version: String(m.version_info ?? ''),
      resourceNames: ((delta ? m.resource_names_subscribe : m.resource_names) as string[] | undefined) ?? [],
      initialResourceVersions: (m.initial_resource_versions as Record<string, string> | undefined) ?? {},
      bytes: buf.length,
      ...(ed ? { errorDetail: { code: ed.code ?? 0, message: ed.message ?? '' } } : {}),
    };
    const node = nodeFromDecoded(m.node as Record<string, unknown> | undefined);
    if (node) req.node = node;
    if (rec.requests.length === 0 && node) rec.node = node;
    rec.requests.push(req);

    if (req.typeUrl === TYPE_URL.health) {
      this.health.push({
        stream: rec.id,
        kind: rec.kind,
        at: req.at,
        healthy: ed === undefined,
        ...(ed ? { message: ed.message ?? '', code: ed.code ?? 0 } : {}),
      });
      return;
    }
    if (!this.resources.has(req.typeUrl)) return; // a type we do not serve: no answer, like an empty istiod generator
    const isAckOrNack = req.nonce !== '' && l.subscribed.has(req.typeUrl);
    if (isAckOrNack) return;
    l.subscribed.add(req.typeUrl);
    if (!this.silent) this.respond(l, req.typeUrl);
  }

  private respond(l: LiveStream, typeUrl: string): void {
    const list = this.resources.get(typeUrl) ?? [];
    const nonce = `nonce-${this.nextNonce++}`;
    const version = `v${this.version}`;
    let bytes: Buffer;
    if (l.rec.kind === 'sotw') {
      bytes = encodeMessage(TYPES.DiscoveryResponse, { version_info: version, resources: list.map((r) => r.any), type_url: typeUrl, nonce });
    } else {
      const names = new Set(list.map((r) => r.name));
      const removed = [...(l.sent.get(typeUrl) ?? [])].filter((n) => !names.has(n));
      l.sent.set(typeUrl, names);
      bytes = encodeMessage(TYPES.DeltaDiscoveryResponse, {
        system_version_info: version,
        resources: list.map((r) => ({ name: r.name, version, resource: r.any })),
        removed_resources: removed,
        type_url: typeUrl,
        nonce,
      });
    }
    l.rec.responses.push({ typeUrl, version, nonce, resources: list.length, bytes: bytes.length });
    l.call.write(bytes);
  }
}

function encodeAll(typeUrl: string, inputs: ResourceInput[]): EncodedResource[] {
  return inputs.map((r) => {
    if ('rawValue' in r && Buffer.isBuffer(r.rawValue)) return { name: String(r.name), any: { type_url: typeUrl, value: r.rawValue } };
    return { name: String((r as Record<string, unknown>).name ?? ''), any: packAny(typeUrl, r as Record<string, unknown>) };
  });
}

/** A small valid STATIC cluster. */
export function testCluster(name: string, port = 8080): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: { seconds: 1 },
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  };
}

/** A small valid listener with a TCP proxy to `cluster`. */
export function testListener(name: string, port: number, cluster: string): Record<string, unknown> {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            typed_config: packAny('type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: name, cluster }),
          },
        ],
      },
    ],
  };
}

/** Istio's `sds_config` for a secret served over the gRPC cluster `cluster` (`sds-grpc`, or `sds-files-grpc` beside an external SDS server). */
export function sdsConfig(cluster = 'sds-grpc'): Record<string, unknown> {
  return {
    api_config_source: {
      api_type: 'GRPC',
      set_node_on_first_message_only: true,
      transport_api_version: 'V3',
      grpc_services: [{ envoy_grpc: { cluster_name: cluster } }],
    },
    initial_fetch_timeout: { seconds: 0 },
    resource_api_version: 'V3',
  };
}

/**
 * A cluster originating TLS with SDS secrets, as istiod builds it: `certificate` (e.g. `default`,
 * `file-cert:<cert>~<key>`) as its TLS certificate, `validation` (e.g. `ROOTCA`, `file-root:<path>`,
 * `file-root:system`) as its validation context; each on the gRPC SDS cluster given (default
 * `sds-grpc`). Encoded with Envoy's protos (protobufjs `@type` form: the UpstreamTlsContext becomes a real `Any`).
 */
export function tlsCluster(
  name: string,
  secrets: { certificate?: string; validation?: string; certificateCluster?: string; validationCluster?: string; sni?: string },
  port = 9,
): Record<string, unknown> {
  const common: Record<string, unknown> = {};
  if (secrets.certificate) common.tls_certificate_sds_secret_configs = [{ name: secrets.certificate, sds_config: sdsConfig(secrets.certificateCluster) }];
  if (secrets.validation) {
    common.combined_validation_context = {
      default_validation_context: {},
      validation_context_sds_secret_config: { name: secrets.validation, sds_config: sdsConfig(secrets.validationCluster) },
    };
  }
  return {
    ...testCluster(name, port),
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        common_tls_context: common,
        ...(secrets.sni ? { sni: secrets.sni } : {}),
      },
    },
  };
}
