/**
 * The Envoy double's ADS client (SPEC §11): speaks ADS over the bootstrap's `xds-grpc` pipe the
 * way Envoy does, so readiness is real end to end.
 *
 * Behaviour (Envoy's, `source/extensions/config_subscription/grpc/`):
 * - `api_type` `DELTA_GRPC` → DeltaAggregatedResources, `GRPC` → StreamAggregatedResources.
 * - One connection per stream (the cluster has `max_requests_per_connection: 1`). The node is sent
 *   on the first request of each stream only (`set_node_on_first_message_only`), with Envoy's
 *   user agent fields and client features added to the bootstrap's node.
 * - Subscribes CDS (wildcard) first; LDS once the first CDS response has been handled, as
 *   Envoy's init manager does. On a new stream both are re-subscribed at once, with the last
 *   accepted `version_info` (SotW) or `initial_resource_versions` (Delta).
 * - Each response: every resource must be an `Any` of the subscribed type that decodes with
 *   Envoy's proto and has a unique, non-empty name. Accepted → ACK (SotW `version_info` + nonce;
 *   Delta `response_nonce`), `update_success`. Otherwise NACK with `error_detail {code 13}`
 *   (SotW keeps the previous `version_info`), `update_rejected`, and the last good config stays.
 * - A stream that ends (any status) is re-opened after a jittered exponential backoff
 *   (base `ENVOY_DOUBLE_ADS_BACKOFF_MS` [500], cap `ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS` [30000];
 *   the delay is uniform in [0, current), as Envoy's), reset when a response arrives.
 * - Received config persists across streams; nothing is forgotten on a reconnect.
 * - Accepted resources are handed to the SDS client (`server.sds.requireSecretsIn`) before the
 *   update is counted, so secrets they reference hold LIVE as in Envoy (SPEC §11, §7.3).
 *
 * `snapshot()` is what the state file shows under `ads`. `close()` stops for good (idempotent).
 */
import * as grpc from '@grpc/grpc-js';
import { TYPES, TYPE_URL, decodeMessage, encodeMessage, jsonToStruct, typeForUrl } from '../control-plane-protos.js';
import type { EnvoyLog } from './log.js';
import type { EnvoyDouble, XdsType } from './server.js';
import { addressString } from './bootstrap.js';

export interface AdsSink {
  configUpdate(type: XdsType, accepted: boolean, detail?: string): void;
  /** Accepted resources (decoded, proto field names), before `configUpdate`: SDS references hold LIVE (sds.ts). */
  resourcesAccepted?(type: XdsType, resources: Array<Record<string, unknown>>): void;
  /** Something in `snapshot()` changed. */
  changed(): void;
}

export interface AdsClientOptions {
  /** gRPC target of the ADS cluster: `unix:<absolute pipe path>` or `host:port`. */
  target: string;
  apiType: string;
  /** The bootstrap's `node` (proto JSON). */
  node: Record<string, unknown>;
  subscribe: { cds: boolean; lds: boolean };
  sink: AdsSink;
  log: EnvoyLog;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

const URL_OF: Record<XdsType, string> = { cds: TYPE_URL.cluster, lds: TYPE_URL.listener };
const TYPE_OF: Record<string, XdsType> = { [TYPE_URL.cluster]: 'cds', [TYPE_URL.listener]: 'lds' };
const passThrough = (b: Buffer): Buffer => b;
/** Envoy's client features (a subset), sent in the node so a proxy must keep them. */
export const ENVOY_CLIENT_FEATURES = ['envoy.lb.does_not_support_overprovisioning', 'envoy.lrs.supports_send_all_clusters'];

interface TypeState {
  /** Requested at least once (LDS waits for the first CDS response). */
  started: boolean;
  /** SotW: last accepted version_info. */
  version: string;
  /** Accepted resources: name → version (Delta) or the response's version (SotW). */
  resources: Map<string, string>;
  responses: number;
  accepted: number;
  rejected: number;
  lastNonce: string;
  lastError: string;
}

export interface AdsSnapshot {
  apiType: string;
  target: string;
  /** Streams opened (attempts). */
  streams: number;
  /** Streams that received at least one response. */
  streamsWithResponses: number;
  connected: boolean;
  /** The current retry ceiling: the next delay is uniform in [0, this). */
  retryCeilingMs: number;
  lastStreamEnd: { code: number; details: string } | null;
  acks: number;
  nacks: number;
  cds: { version: string; names: string[]; resources: Record<string, string>; responses: number; accepted: number; rejected: number; lastError: string };
  lds: { version: string; names: string[]; resources: Record<string, string>; responses: number; accepted: number; rejected: number; lastError: string };
}

export class AdsClient {
  private readonly delta: boolean;
  private readonly types: Record<XdsType, TypeState>;
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  private streamNo = 0;
  private streamsWithResponses = 0;
  private firstOnStream = true;
  private gotResponseOnStream = false;
  private lastStreamEnd: { code: number; details: string } | null = null;
  private acks = 0;
  private nacks = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private closed = false;
  private readonly node: Record<string, unknown>;

  constructor(private readonly o: AdsClientOptions) {
    this.delta = o.apiType === 'DELTA_GRPC' || o.apiType === 'AGGREGATED_DELTA_GRPC';
    const fresh = (): TypeState => ({ started: false, version: '', resources: new Map(), responses: 0, accepted: 0, rejected: 0, lastNonce: '', lastError: '' });
    this.types = { cds: fresh(), lds: fresh() };
    this.baseMs = o.backoffBaseMs ?? 500;
    this.maxMs = o.backoffMaxMs ?? 30_000;
    this.backoffMs = this.baseMs;
    const n = o.node;
    this.node = {
      ...(typeof n.id === 'string' ? { id: n.id } : {}),
      ...(typeof n.cluster === 'string' ? { cluster: n.cluster } : {}),
      ...(n.locality && typeof n.locality === 'object' ? { locality: n.locality } : {}),
      metadata: jsonToStruct((n.metadata as Record<string, unknown> | undefined) ?? {}),
      user_agent_name: 'envoy',
      user_agent_build_version: { version: { major_number: 1, minor_number: 36, patch: 2 } },
      client_features: ENVOY_CLIENT_FEATURES,
    };
  }

  start(): void {
    if (this.closed || this.call) return;
    this.o.log.info('upstream', `cm init: initializing cds`, 'source/common/upstream/cluster_manager_impl.cc:198');
    this.openStream();
  }

  /** Names of the accepted resources of `type` (what the double has now). */
  knownNames(type: XdsType): string[] {
    return [...this.types[type].resources.keys()];
  }

  snapshot(): AdsSnapshot {
    const t = (s: TypeState) => ({
      version: s.version,
      names: [...s.resources.keys()].sort(),
      resources: Object.fromEntries(s.resources),
      responses: s.responses,
      accepted: s.accepted,
      rejected: s.rejected,
      lastError: s.lastError,
    });
    return {
      apiType: this.delta ? 'DELTA_GRPC' : 'GRPC',
      target: this.o.target,
      streams: this.streamNo,
      streamsWithResponses: this.streamsWithResponses,
      connected: this.call !== undefined && this.gotResponseOnStream,
      retryCeilingMs: this.backoffMs,
      lastStreamEnd: this.lastStreamEnd,
      acks: this.acks,
      nacks: this.nacks,
      cds: t(this.types.cds),
      lds: t(this.types.lds),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.endStream();
  }

  private endStream(): void {
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.removeAllListeners('data');
      call.removeAllListeners('status');
      call.on('error', () => undefined);
      call.cancel();
    }
    this.client?.close();
    this.client = undefined;
  }

  private openStream(): void {
    this.streamNo++;
    this.firstOnStream = true;
    this.gotResponseOnStream = false;
    const client = new grpc.Client(this.o.target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      'grpc.enable_retries': 0,
      // Envoy's HTTP/2 windows (initial_stream/connection_window_size) default to 256 MiB.
      'grpc-node.flow_control_window': 256 * 1024 * 1024,
    });
    this.client = client;
    const method = this.delta ? '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources' : '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
    const call = client.makeBidiStreamRequest(method, passThrough, passThrough, new grpc.Metadata());
    this.call = call;
    call.on('data', (b: Buffer) => this.onResponse(b));
    call.on('error', () => undefined);
    call.on('status', (s: grpc.StatusObject) => this.onStreamEnd(s));
    const { cds, lds } = this.o.subscribe;
    if (cds) this.subscribe('cds');
    if (lds && (!cds || this.types.lds.started)) this.subscribe('lds');
    this.o.sink.changed();
  }

  private onStreamEnd(s: grpc.StatusObject): void {
    if (this.closed) return;
    this.lastStreamEnd = { code: s.code, details: s.details };
    this.o.log.warn(
      'config',
      `${this.delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources'} gRPC config stream to xds-grpc closed: ${s.code}, ${s.details}`,
      'source/extensions/config_subscription/grpc/grpc_stream.h:193',
    );
    this.endStream();
    const delay = Math.floor(Math.random() * this.backoffMs);
    this.backoffMs = Math.min(this.maxMs, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) this.openStream();
    }, delay);
    this.o.sink.changed();
  }

  private send(typeName: string, msg: Record<string, unknown>): void {
    if (this.firstOnStream) {
      msg.node = this.node;
      this.firstOnStream = false;
    }
    this.call?.write(encodeMessage(typeName, msg));
  }

  private subscribe(type: XdsType): void {
    const st = this.types[type];
    st.started = true;
    if (this.delta) {
      this.send(TYPES.DeltaDiscoveryRequest, { type_url: URL_OF[type], initial_resource_versions: Object.fromEntries(st.resources) });
    } else {
      this.send(TYPES.DiscoveryRequest, { version_info: st.version, type_url: URL_OF[type], resource_names: [] });
    }
  }

  private onResponse(bytes: Buffer): void {
    if (this.closed) return;
    if (!this.gotResponseOnStream) {
      this.gotResponseOnStream = true;
      this.streamsWithResponses++;
    }
    this.backoffMs = this.baseMs; // Envoy resets its retry backoff once the stream delivers a message
    let msg: Record<string, unknown>;
    try {
      msg = decodeMessage(this.delta ? TYPES.DeltaDiscoveryResponse : TYPES.DiscoveryResponse, bytes);
    } catch (err) {
      this.o.log.warn('config', `envoy double: undecodable xDS response: ${(err as Error).message}`);
      return;
    }
    const typeUrl = String(msg.type_url ?? '');
    const type = TYPE_OF[typeUrl];
    if (!type || !this.types[type].started) {
      this.o.log.warn('config', `Ignoring the message for type URL ${typeUrl} as it has no current subscribers.`, 'source/extensions/config_subscription/grpc/grpc_mux_impl.cc:262');
      return;
    }
    const st = this.types[type];
    st.responses++;
    const nonce = String(msg.nonce ?? '');
    st.lastNonce = nonce;
    const error = this.delta ? this.applyDelta(st, typeUrl, msg) : this.applySotw(st, typeUrl, msg);
    if (error === undefined) {
      st.accepted++;
      this.acks++;
      if (this.delta) this.send(TYPES.DeltaDiscoveryRequest, { type_url: typeUrl, response_nonce: nonce });
      else this.send(TYPES.DiscoveryRequest, { version_info: st.version, type_url: typeUrl, response_nonce: nonce, resource_names: [] });
      this.o.sink.configUpdate(type, true);
    } else {
      st.rejected++;
      st.lastError = error;
      this.nacks++;
      const error_detail = { code: 13, message: error };
      if (this.delta) this.send(TYPES.DeltaDiscoveryRequest, { type_url: typeUrl, response_nonce: nonce, error_detail });
      else this.send(TYPES.DiscoveryRequest, { version_info: st.version, type_url: typeUrl, response_nonce: nonce, resource_names: [], error_detail });
      this.o.sink.configUpdate(type, false, error);
    }
    // Envoy's init manager starts LDS once CDS has initialised (accepted or rejected).
    if (type === 'cds' && this.o.subscribe.lds && !this.types.lds.started) this.subscribe('lds');
    this.o.sink.changed();
  }

  /** Validates every resource; returns the rejection reason, or undefined (and commits) when all are good. */
  private validate(typeUrl: string, items: Array<{ name?: string; any: Record<string, unknown> | undefined }>): { names: string[]; decoded: Array<Record<string, unknown>>; error?: string } {
    const t = typeForUrl(typeUrl);
    const names: string[] = [];
    const all: Array<Record<string, unknown>> = [];
    const kind = typeUrl === TYPE_URL.cluster ? 'cluster' : 'listener';
    for (const item of items) {
      const any = item.any;
      if (!any) return { names, decoded: all, error: `Resource '${item.name ?? ''}' has no payload` };
      const anyType = String(any.type_url ?? '');
      if (anyType !== typeUrl) return { names, decoded: all, error: `Unexpected type URL ${anyType} in a ${typeUrl} response` };
      let decoded: Record<string, unknown>;
      try {
        // JSON form: nested Anys (e.g. a transport socket's TLS context) unpacked with their `@type`.
        decoded = t?.toObject(t.decode(any.value as Uint8Array), { json: true }) as Record<string, unknown>;
      } catch (err) {
        return { names, decoded: all, error: `Unable to unpack as ${typeUrl.slice(typeUrl.lastIndexOf('/') + 1)}: ${(err as Error).message}` };
      }
      const name = String(decoded?.name ?? '');
      if (name === '') return { names, decoded: all, error: `Proto constraint validation failed (${kind === 'cluster' ? 'ClusterValidationError' : 'ListenerValidationError'}.Name: value length must be at least 1 characters)` };
      if (item.name !== undefined && item.name !== '' && item.name !== name) return { names, decoded: all, error: `Resource name '${item.name}' does not match ${kind} name '${name}'` };
      if (names.includes(name)) return { names, decoded: all, error: `duplicate ${kind} ${name} found` };
      names.push(name);
      all.push(decoded);
    }
    return { names, decoded: all };
  }

  private applySotw(st: TypeState, typeUrl: string, msg: Record<string, unknown>): string | undefined {
    const resources = (msg.resources as Array<Record<string, unknown>> | undefined) ?? [];
    const { names, decoded, error } = this.validate(typeUrl, resources.map((any) => ({ any })));
    if (error !== undefined) return error;
    this.o.sink.resourcesAccepted?.(TYPE_OF[typeUrl] as XdsType, decoded);
    const version = String(msg.version_info ?? '');
    st.version = version;
    st.resources = new Map(names.map((n) => [n, version]));
    return undefined;
  }

  private applyDelta(st: TypeState, typeUrl: string, msg: Record<string, unknown>): string | undefined {
    const resources = (msg.resources as Array<Record<string, unknown>> | undefined) ?? [];
    const { decoded, error } = this.validate(
      typeUrl,
      resources.map((r) => ({ name: String(r.name ?? ''), any: r.resource as Record<string, unknown> | undefined })),
    );
    if (error !== undefined) return error;
    this.o.sink.resourcesAccepted?.(TYPE_OF[typeUrl] as XdsType, decoded);
    const next = new Map(st.resources);
    for (const r of resources) next.set(String(r.name ?? ''), String(r.version ?? ''));
    for (const name of (msg.removed_resources as string[] | undefined) ?? []) next.delete(name);
    st.resources = next;
    st.version = String(msg.system_version_info ?? '');
    return undefined;
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Starts the ADS client when the bootstrap has `dynamic_resources.ads_config` with an
 * `envoy_grpc` cluster whose endpoint is a pipe or an IP address, and CDS/LDS over ADS.
 * The client's record appears in the state file under `ads`; it stops when the double shuts down.
 */
export function maybeStartAds(server: EnvoyDouble, env: Readonly<Record<string, string | undefined>>): AdsClient | undefined {
  const b = server.bootstrap;
  const dr = isObj(b.raw.dynamic_resources) ? b.raw.dynamic_resources : undefined;
  const ads = dr && isObj(dr.ads_config) ? dr.ads_config : undefined;
  if (!dr || !ads) return undefined;
  const services = Array.isArray(ads.grpc_services) ? ads.grpc_services : [];
  const first = services[0];
  const clusterName = isObj(first) && isObj(first.envoy_grpc) ? String(first.envoy_grpc.cluster_name ?? '') : '';
  const cluster = b.clusters.get(clusterName);
  const ep = cluster?.endpoints[0];
  if (!ep) {
    server.log.warn('config', `envoy double: ADS cluster '${clusterName}' has no endpoint; not connecting`);
    return undefined;
  }
  const viaAds = (k: string): boolean => isObj(dr[k]) && isObj((dr[k] as Obj).ads);
  const num = (v: string | undefined, d: number): number => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : d);
  const client = new AdsClient({
    target: ep.kind === 'pipe' ? `unix:${ep.path}` : addressString(ep),
    apiType: typeof ads.api_type === 'string' ? ads.api_type : 'GRPC',
    node: b.node,
    subscribe: { cds: viaAds('cds_config'), lds: viaAds('lds_config') },
    sink: {
      configUpdate: (t, ok, detail) => {
        if (t === 'cds' && ok) server.sds?.retainClusters(client.knownNames('cds'));
        server.configUpdate(t, ok, detail);
      },
      resourcesAccepted: (t, resources) => {
        for (const r of resources) {
          const names = server.sds?.requireSecretsIn(r) ?? [];
          if (t === 'cds' && typeof r.name === 'string') server.sds?.trackCluster(r.name, names);
        }
      },
      changed: () => server.writeState(),
    },
    log: server.log,
    backoffBaseMs: num(env.ENVOY_DOUBLE_ADS_BACKOFF_MS, 500),
    backoffMaxMs: num(env.ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS, 30_000),
  });
  server.stateSections.set('ads', () => client.snapshot());
  server.shutdownHooks.push(() => client.close());
  client.start();
  return client;
}
