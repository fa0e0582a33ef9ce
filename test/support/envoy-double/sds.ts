/**
 * The double's SDS client (SPEC §11, §7.3): what Envoy does with an `SdsSecretConfig` whose
 * `sds_config` names a gRPC cluster (Istio's `sds-grpc`).
 *
 * - `requireSecretsIn(resource)` finds the SDS secret references in any JSON config (a
 *   bootstrap's `static_resources`, or a decoded CDS/LDS resource: `tls_certificate_sds_secret_configs`,
 *   `validation_context_sds_secret_config`, proto or JSON field names) and calls
 *   `requireSecrets(names, cluster)`.
 * - `requireSecrets` registers one init target per secret not yet received (`sds:<name>`: the
 *   server stays INITIALIZING until it arrives — Istio sets `initial_fetch_timeout: 0s`, so no
 *   timeout), and opens one `StreamSecrets` stream per secret over that cluster's endpoint (a
 *   pipe, or a TCP address), like Envoy's per-secret SdsApi subscriptions. Call it before
 *   `configUpdate()` for the resource that references the secrets, so LIVE waits for them.
 * - Each response is checked with Envoy's real protos (`@grpc/grpc-js-xds/deps`) and Envoy's
 *   rules: exactly one `Secret` of the requested name; a `tls_certificate` whose chain parses
 *   and whose private key matches the leaf; a `validation_context` whose `trusted_ca` parses.
 *   Accepted → ACK (version, nonce), init target done, `sds.<name>.update_success`; rejected →
 *   NACK with `error_detail` (code 13, Envoy's message), `update_rejected`, the previous secret
 *   kept. A stream that ends is reopened (100 ms doubling to 2 s) on the same channel;
 *   `connects` counts stream openings, so a test can tell a push from a reconnect.
 * - `trackCluster(name, secrets)` (CDS clusters, from ads.ts): the cluster is warming until all its
 *   secrets arrived (`cluster_manager.warming_clusters`, state file `clusters.warming`), as Envoy's.
 * - `snapshot()` is written to the state file under `sds` (PEMs included: test code).
 *
 * gRPC and the protos are loaded on first use, so doubles that never see SDS start as fast as before.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import type { Address, ClusterSpec } from './bootstrap.js';
import type { EnvoyLog } from './log.js';
import type { EnvoyDouble } from './server.js';
import type { StatsStore } from './stats.js';

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const STREAM_SECRETS = '/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets';

/** What the double's server gives the SDS client. */
export interface SdsHost {
  log: EnvoyLog;
  stats: StatsStore;
  clusters: Map<string, ClusterSpec>;
  node: Record<string, unknown>;
  addInitTarget(name: string): void;
  completeInitTarget(name: string): void;
  /** The state changed (rewrite the state file). */
  changed(): void;
}

export interface SdsSecretRef {
  name: string;
  /** The gRPC cluster of its `sds_config` (undefined: not a gRPC SDS config, e.g. ADS). */
  cluster: string | undefined;
}

export interface SecretRecord {
  name: string;
  cluster: string;
  /** Stream openings (1 = never reconnected). */
  connects: number;
  /** Accepted responses. */
  updates: number;
  rejected: number;
  lastRejection?: string;
  version?: string;
  receivedAt?: string;
  kind?: 'tls_certificate' | 'validation_context';
  certChain?: string;
  privateKey?: string;
  trustedCa?: string;
  /** Leaf serial number, URI SANs and expiry (tls_certificate). */
  serial?: string;
  uris?: string[];
  notAfter?: string;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const pick = (o: Json, snake: string, camel: string): unknown => o[snake] ?? o[camel];

function grpcCluster(sdsConfig: unknown): string | undefined {
  if (!isObj(sdsConfig)) return undefined;
  const api = pick(sdsConfig, 'api_config_source', 'apiConfigSource');
  if (!isObj(api)) return undefined;
  const services = pick(api, 'grpc_services', 'grpcServices');
  for (const s of Array.isArray(services) ? services : []) {
    const eg = isObj(s) ? pick(s, 'envoy_grpc', 'envoyGrpc') : undefined;
    const name = isObj(eg) ? pick(eg, 'cluster_name', 'clusterName') : undefined;
    if (typeof name === 'string' && name !== '') return name;
  }
  return undefined;
}

/** PURE: every SDS secret reference (name + gRPC cluster) in a config value, de-duplicated, in order. */
export function sdsSecretRefs(value: unknown): SdsSecretRef[] {
  const out: SdsSecretRef[] = [];
  const seen = new Set<string>();
  const add = (cfg: unknown): void => {
    if (!isObj(cfg) || typeof cfg.name !== 'string' || cfg.name === '') return;
    const sdsConfig = pick(cfg, 'sds_config', 'sdsConfig');
    if (sdsConfig === undefined) return; // a static secret, not SDS
    const ref = { name: cfg.name, cluster: grpcCluster(sdsConfig) };
    const key = `${ref.name}\u0000${ref.cluster ?? ''}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(ref);
    }
  };
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!isObj(v)) return;
    const certs = pick(v, 'tls_certificate_sds_secret_configs', 'tlsCertificateSdsSecretConfigs');
    if (Array.isArray(certs)) certs.forEach(add);
    add(pick(v, 'validation_context_sds_secret_config', 'validationContextSdsSecretConfig'));
    for (const child of Object.values(v)) walk(child);
  };
  walk(value);
  return out;
}

export interface Codec {
  grpc: typeof Grpc;
  request: protobuf.Type;
  response: protobuf.Type;
  secret: protobuf.Type;
}

let codecPromise: Promise<Codec> | undefined;

/** Envoy's real protos for SDS (and grpc-js), loaded once on first use. */
export function sdsCodec(): Promise<Codec> {
  codecPromise ??= (async () => {
    const grpc = await import('@grpc/grpc-js');
    const { default: pb } = await import('protobufjs');
    const require = createRequire(import.meta.url);
    let dir = path.dirname(require.resolve('@grpc/grpc-js-xds'));
    while (!fs.existsSync(path.join(dir, 'deps', 'envoy-api'))) {
      const up = path.dirname(dir);
      if (up === dir) throw new Error('cannot find @grpc/grpc-js-xds/deps/envoy-api');
      dir = up;
    }
    const deps = path.join(dir, 'deps');
    const protobufDir = path.dirname(require.resolve('protobufjs/package.json'));
    const roots = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((r) => path.join(deps, r));
    const root = new pb.Root();
    root.resolvePath = (_origin, target) => {
      for (const r of [...roots, protobufDir]) {
        const p = path.join(r, target);
        if (fs.existsSync(p)) return p;
      }
      return target;
    };
    root.loadSync(['envoy/service/secret/v3/sds.proto', 'envoy/extensions/transport_sockets/tls/v3/secret.proto'], { keepCase: true });
    root.resolveAll();
    return {
      grpc,
      request: root.lookupType('envoy.service.discovery.v3.DiscoveryRequest'),
      response: root.lookupType('envoy.service.discovery.v3.DiscoveryResponse'),
      secret: root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret'),
    };
  })();
  return codecPromise;
}

interface DataSource {
  filename?: string;
  inline_bytes?: Uint8Array;
  inline_string?: string;
}

function dataSourceText(ds: DataSource | undefined | null, what: string): string {
  if (!ds) throw new Error(`${what}: no data source`);
  if (ds.inline_bytes && ds.inline_bytes.length > 0) return Buffer.from(ds.inline_bytes).toString('utf8');
  if (typeof ds.inline_string === 'string' && ds.inline_string !== '') return ds.inline_string;
  if (typeof ds.filename === 'string' && ds.filename !== '') return fs.readFileSync(ds.filename, 'utf8');
  throw new Error(`${what}: empty data source`);
}

/** One secret's subscription: a StreamSecrets stream reopened when it ends. */
class SecretSubscription {
  readonly record: SecretRecord;
  private call: Grpc.ClientDuplexStream<Json, Json> | undefined;
  private first = true;
  private retryMs = 100;
  private closed = false;

  constructor(
    private readonly sds: DoubleSds,
    name: string,
    cluster: string,
    private readonly client: Grpc.Client,
    private readonly c: Codec,
  ) {
    this.record = { name, cluster, connects: 0, updates: 0, rejected: 0 };
  }

  open(): void {
    if (this.closed) return;
    const { grpc, request, response } = this.c;
    // Wait for the socket (the agent may not serve yet) instead of failing fast, as Envoy does.
    const metadata = new grpc.Metadata();
    metadata.setOptions({ waitForReady: true });
    const call = this.client.makeBidiStreamRequest<Json, Json>(
      STREAM_SECRETS,
      (m) => Buffer.from(request.encode(request.fromObject(m)).finish()),
      (b) => response.toObject(response.decode(b), { arrays: true, defaults: true, bytes: Buffer }) as Json,
      metadata,
      {},
    );
    this.call = call;
    this.first = true;
    this.record.connects++;
    this.sds.host.changed();
    call.on('data', (res: Json) => this.onResponse(res));
    call.on('error', () => undefined); // the 'status' handler decides
    call.on('status', (s: Grpc.StatusObject) => {
      if (this.call !== call || this.closed) return;
      this.call = undefined;
      this.sds.host.log.debug('config', `sds: stream for '${this.record.name}' ended (${grpc.status[s.code] ?? s.code}: ${s.details}); reconnecting in ${this.retryMs}ms`);
      setTimeout(() => this.open(), this.retryMs).unref();
      this.retryMs = Math.min(2000, this.retryMs * 2);
    });
    this.send({ version_info: this.record.version ?? '', response_nonce: '' });
  }

  private send(o: { version_info: string; response_nonce: string; error_detail?: { code: number; message: string } }): void {
    const node = this.sds.host.node;
    this.call?.write({
      ...(this.first ? { node: { id: String(node.id ?? ''), cluster: String(node.cluster ?? '') } } : {}),
      resource_names: [this.record.name],
      type_url: SECRET_TYPE_URL,
      ...o,
    });
    this.first = false;
  }

  private onResponse(res: Json): void {
    this.retryMs = 100;
    const h = this.sds.host;
    const r = this.record;
    const version = String(res.version_info ?? '');
    const nonce = String(res.nonce ?? '');
    h.stats.counter(`sds.${r.name}.update_attempt`).inc();
    let accepted: Partial<SecretRecord>;
    try {
      accepted = this.check(res);
    } catch (err) {
      const message = (err as Error).message;
      r.rejected++;
      r.lastRejection = message;
      h.stats.counter(`sds.${r.name}.update_rejected`).inc();
      h.log.warn('config', `gRPC config for ${SECRET_TYPE_URL} rejected: ${message}`, 'source/extensions/config_subscription/grpc/grpc_subscription_impl.cc:138');
      this.send({ version_info: r.version ?? '', response_nonce: nonce, error_detail: { code: 13, message } });
      h.changed();
      return;
    }
    Object.assign(r, accepted, { version, receivedAt: new Date().toISOString() });
    r.updates++;
    h.stats.counter(`sds.${r.name}.update_success`).inc();
    h.log.info('secret', `sds: secret '${r.name}' updated to version ${version}${r.serial ? ` (serial ${r.serial})` : ''}`);
    this.send({ version_info: version, response_nonce: nonce });
    h.changed();
    if (r.updates === 1) this.sds.received(r.name);
  }

  /** Envoy's SdsApi checks; throws its rejection message. */
  private check(res: Json): Partial<SecretRecord> {
    const name = this.record.name;
    if (res.type_url !== SECRET_TYPE_URL) throw new Error(`unexpected type_url ${String(res.type_url)}`);
    const resources = Array.isArray(res.resources) ? (res.resources as Json[]) : [];
    if (resources.length === 0) throw new Error(`Missing SDS resources for ${name} in onConfigUpdate()`);
    if (resources.length !== 1) throw new Error(`Unexpected SDS secrets length: ${resources.length}`);
    const any = resources[0] as Json;
    if (any.type_url !== SECRET_TYPE_URL) throw new Error(`unexpected resource type ${String(any.type_url)}`);
    const s = this.c.secret.toObject(this.c.secret.decode(any.value as Uint8Array), { bytes: Buffer, oneofs: true }) as Json;
    if (s.name !== name) throw new Error(`Unexpected SDS secret (expecting ${name}): ${String(s.name)}`);
    if (isObj(s.tls_certificate)) {
      const tc = s.tls_certificate;
      const chain = dataSourceText(tc.certificate_chain as DataSource, 'certificate_chain');
      const key = dataSourceText(tc.private_key as DataSource, 'private_key');
      let leaf: X509Certificate;
      try {
        leaf = new X509Certificate(chain);
      } catch (err) {
        throw new Error(`Failed to load certificate chain from <inline>: ${(err as Error).message}`);
      }
      let keyObject;
      try {
        keyObject = createPrivateKey(key);
      } catch (err) {
        throw new Error(`Failed to load private key from <inline>: ${(err as Error).message}`);
      }
      if (!leaf.checkPrivateKey(keyObject)) throw new Error('Failed to load certificate chain from <inline>, private key does not match');
      const uris = (leaf.subjectAltName ?? '').split(/,\s*/).filter((x) => x.startsWith('URI:')).map((x) => x.slice(4));
      return { kind: 'tls_certificate', certChain: chain, privateKey: key, serial: leaf.serialNumber, uris, notAfter: new Date(leaf.validTo).toISOString() };
    }
    if (isObj(s.validation_context)) {
      const ca = dataSourceText(s.validation_context.trusted_ca as DataSource, 'trusted_ca');
      try {
        new X509Certificate(ca);
      } catch (err) {
        throw new Error(`Failed to load trusted CA certificates from <inline>: ${(err as Error).message}`);
      }
      return { kind: 'validation_context', trustedCa: ca };
    }
    throw new Error(`secret ${name} has neither tls_certificate nor validation_context`);
  }

  close(): void {
    this.closed = true;
    this.call?.cancel();
    this.call = undefined;
  }
}

export class DoubleSds {
  private readonly subs = new Map<string, SecretSubscription>();
  private readonly clients = new Map<string, Grpc.Client>();
  private readonly waiting = new Set<string>();
  private readonly warming = new Map<string, Set<string>>();
  private closed = false;

  constructor(readonly host: SdsHost) {}

  /** Finds SDS references in `resource` and subscribes to those on a gRPC cluster; returns their names. */
  requireSecretsIn(resource: unknown): string[] {
    const refs = sdsSecretRefs(resource).filter((r): r is { name: string; cluster: string } => r.cluster !== undefined);
    const byCluster = new Map<string, string[]>();
    for (const r of refs) byCluster.set(r.cluster, [...(byCluster.get(r.cluster) ?? []), r.name]);
    for (const [cluster, names] of byCluster) this.requireSecrets(names, cluster);
    return refs.map((r) => r.name);
  }

  /** Subscribes to these secrets (idempotent per name); each holds initialization until received. */
  requireSecrets(names: string[], cluster = 'sds-grpc'): void {
    if (this.closed) return;
    const fresh = names.filter((n) => !this.subs.has(n) && !this.waiting.has(n));
    if (fresh.length === 0) return;
    for (const n of fresh) {
      this.waiting.add(n);
      this.host.addInitTarget(`sds:${n}`);
    }
    const spec = this.host.clusters.get(cluster);
    const ep = spec?.endpoints[0];
    if (!ep) {
      this.host.log.warn('config', `sds: cluster '${cluster}' of secrets ${fresh.join(',')} is unknown or has no endpoint: they will never arrive`);
      return;
    }
    void sdsCodec().then(
      (c) => {
        if (this.closed) return;
        for (const n of fresh) {
          const sub = new SecretSubscription(this, n, cluster, this.client(cluster, ep, c), c);
          this.subs.set(n, sub);
          sub.open();
        }
      },
      (err: unknown) => this.host.log.error('config', `sds: cannot load the SDS protos: ${(err as Error).message}`),
    );
  }

  /** First accepted response for `name`. */
  received(name: string): void {
    // Clusters first: a cluster is active before the init manager may declare LIVE.
    for (const [cluster, missing] of this.warming) {
      if (!missing.delete(name) || missing.size > 0) continue;
      this.warming.delete(cluster);
      this.host.stats.gauge('cluster_manager.warming_clusters').set(this.warming.size);
      this.host.log.info('upstream', `warming cluster ${cluster} complete`);
    }
    this.host.changed();
    if (this.waiting.delete(name)) this.host.completeInitTarget(`sds:${name}`);
  }

  /**
   * Envoy's cluster warming: a CDS cluster whose TLS context references SDS secrets not yet
   * received stays warming (`cluster_manager.warming_clusters`, the state file's
   * `clusters.warming`) until every one of them has arrived; then it is active.
   */
  trackCluster(cluster: string, secrets: string[]): void {
    const missing = new Set(secrets.filter((n) => !((this.subs.get(n)?.record.updates ?? 0) > 0)));
    if (missing.size === 0) {
      this.warming.delete(cluster);
    } else {
      this.warming.set(cluster, missing);
      this.host.log.debug('upstream', `cluster ${cluster} warming: waiting for secrets ${[...missing].join(',')}`);
    }
    this.host.stats.gauge('cluster_manager.warming_clusters').set(this.warming.size);
    this.host.changed();
  }

  /** A SotW CDS update names every cluster: those not in it are gone (and no longer warming). */
  retainClusters(names: string[]): void {
    const keep = new Set(names);
    let changed = false;
    for (const c of [...this.warming.keys()]) if (!keep.has(c)) changed = this.warming.delete(c) || changed;
    if (!changed) return;
    this.host.stats.gauge('cluster_manager.warming_clusters').set(this.warming.size);
    this.host.changed();
  }

  /** The state file's `clusters` value: warming cluster → secrets it waits for. */
  clusterSnapshot(): { warming: Record<string, string[]> } {
    const warming: Record<string, string[]> = {};
    for (const [c, m] of this.warming) warming[c] = [...m].sort();
    return { warming };
  }

  private client(cluster: string, ep: Address, c: Codec): Grpc.Client {
    let client = this.clients.get(cluster);
    if (!client) {
      const target = ep.kind === 'pipe' ? `unix:${ep.path}` : ep.family === 6 ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
      client = new c.grpc.Client(target, c.grpc.credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.min_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      });
      this.clients.set(cluster, client);
    }
    return client;
  }

  /** The state file's `sds` value: name → record. */
  snapshot(): Record<string, SecretRecord> {
    const out: Record<string, SecretRecord> = {};
    for (const [n, s] of this.subs) out[n] = { ...s.record };
    return out;
  }

  close(): void {
    this.closed = true;
    for (const s of this.subs.values()) s.close();
    for (const c of this.clients.values()) c.close();
  }
}

/**
 * Creates the double's SDS client (`server.sds`), shows it in the state file under `sds`, stops it
 * on shutdown, and subscribes to the secrets the bootstrap's static resources reference (before
 * `server.start()`, so LIVE waits for them).
 */
export function attachSds(server: EnvoyDouble): DoubleSds {
  const sds = new DoubleSds({
    log: server.log,
    stats: server.stats,
    clusters: server.bootstrap.clusters,
    node: server.bootstrap.node,
    addInitTarget: (n) => server.addInitTarget(n),
    completeInitTarget: (n) => server.completeInitTarget(n),
    changed: () => server.writeState(),
  });
  server.sds = sds;
  server.stateSections.set('sds', () => sds.snapshot());
  server.stateSections.set('clusters', () => sds.clusterSnapshot());
  server.shutdownHooks.push(() => sds.close());
  sds.requireSecretsIn(server.bootstrap.raw.static_resources);
  return sds;
}
