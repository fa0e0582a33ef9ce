/**
 * Helpers for the SDS tests: a logger that keeps its records, a raw StreamSecrets client that
 * speaks Envoy's real protos (so the server's wire format is checked by an independent codec),
 * the pieces of a workload (CA client + secret manager + SDS server) and a wait with a deadline.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as Grpc from '@grpc/grpc-js';
import { CaClient } from '../../src/ca/client.js';
import { createLogger, type Logger } from '../../src/log.js';
import { SdsServer } from '../../src/sds/server.js';
import { SecretManager, type SecretManagerOptions } from '../../src/sds/secret-manager.js';
import type { CaServer, WorkloadFixture } from '../support/ca-server.js';
import { workloadFixture } from '../support/ca-server.js';
import { SECRET_TYPE_URL, sdsCodec, type Codec, type SecretRecord } from '../support/envoy-double/sds.js';

import { captureLogger, type CapturedLog } from '../support/log-capture.js';

export { captureLogger, type CapturedLog };


export interface DecodedSecret {
  name: string;
  tls_certificate?: { certificate_chain?: { inline_bytes?: Buffer }; private_key?: { inline_bytes?: Buffer } };
  validation_context?: { trusted_ca?: { inline_bytes?: Buffer } };
}

export interface DecodedResponse {
  version_info: string;
  nonce: string;
  type_url: string;
  resourceTypes: string[];
  secrets: DecodedSecret[];
}

/** A StreamSecrets stream with Envoy's protos; responses queue up for `next()`. */
export class RawSdsStream {
  private readonly queue: DecodedResponse[] = [];
  private readonly waiters: Array<(r: DecodedResponse) => void> = [];
  readonly ended: Promise<Grpc.StatusObject>;

  private constructor(
    private readonly client: Grpc.Client,
    private readonly call: Grpc.ClientDuplexStream<Record<string, unknown>, Record<string, unknown>>,
    c: Codec,
  ) {
    call.on('data', (res: Record<string, unknown>) => {
      const resources = (res.resources as Array<{ type_url: string; value: Buffer }>) ?? [];
      const decoded: DecodedResponse = {
        version_info: String(res.version_info ?? ''),
        nonce: String(res.nonce ?? ''),
        type_url: String(res.type_url ?? ''),
        resourceTypes: resources.map((r) => r.type_url),
        secrets: resources.map((r) => c.secret.toObject(c.secret.decode(r.value), { bytes: Buffer }) as DecodedSecret),
      };
      const w = this.waiters.shift();
      if (w) w(decoded);
      else this.queue.push(decoded);
    });
    call.on('error', () => undefined);
    this.ended = new Promise((resolve) => call.on('status', resolve));
  }

  static async open(socketPath: string): Promise<RawSdsStream> {
    const c = await sdsCodec();
    const client = new c.grpc.Client(`unix:${socketPath}`, c.grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest<Record<string, unknown>, Record<string, unknown>>(
      '/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets',
      (m) => Buffer.from(c.request.encode(c.request.fromObject(m)).finish()),
      (b) => c.response.toObject(c.response.decode(b), { arrays: true, defaults: true, bytes: Buffer }) as Record<string, unknown>,
    );
    return new RawSdsStream(client, call, c);
  }

  send(o: { names: string[]; nonce?: string; version?: string; error?: { code: number; message: string }; node?: string }): void {
    this.call.write({
      resource_names: o.names,
      type_url: SECRET_TYPE_URL,
      response_nonce: o.nonce ?? '',
      version_info: o.version ?? '',
      ...(o.error ? { error_detail: o.error } : {}),
      ...(o.node ? { node: { id: o.node, cluster: 'test' } } : {}),
    });
  }

  /** ACKs a response (same names). */
  ack(res: DecodedResponse, names: string[]): void {
    this.send({ names, nonce: res.nonce, version: res.version_info });
  }

  next(timeoutMs = 10_000): Promise<DecodedResponse> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no SDS response within ${timeoutMs}ms`));
      }, timeoutMs);
      const w = (r: DecodedResponse): void => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.push(w);
    });
  }

  /** Responses received and not yet taken. */
  get pending(): number {
    return this.queue.length;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

export const pemOf = (s: DecodedSecret | undefined, field: 'chain' | 'key' | 'ca'): string => {
  const ds = field === 'chain' ? s?.tls_certificate?.certificate_chain : field === 'key' ? s?.tls_certificate?.private_key : s?.validation_context?.trusted_ca;
  return ds?.inline_bytes ? ds.inline_bytes.toString('utf8') : '';
};

/** A short temp dir for sockets (unix socket paths are limited to 107 bytes). */
export function socketDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sds-'));
}

export interface WorkloadStack {
  fixture: WorkloadFixture;
  manager: SecretManager;
  server: SdsServer;
  socketPath: string;
  logs: CapturedLog;
  dispose(): Promise<void>;
}

/** CA client → secret manager → SDS server for one workload, on a fresh socket. */
export async function workloadStack(o: {
  ca: CaServer;
  env?: Record<string, string>;
  serviceAccount?: string;
  manager?: Partial<SecretManagerOptions>;
  socketPath?: string;
}): Promise<WorkloadStack> {
  const fixture = workloadFixture({ server: o.ca, ...(o.env ? { env: o.env } : {}), ...(o.serviceAccount ? { serviceAccount: o.serviceAccount } : {}) });
  const logs = captureLogger();
  const manager = new SecretManager({
    source: new CaClient(fixture.options.ca),
    log: logs.log,
    rotation: fixture.options.rotation,
    retry: { initialMs: 100, maxMs: 400 },
    ...o.manager,
  });
  const ownDir = o.socketPath === undefined ? socketDir() : undefined;
  const socketPath = o.socketPath ?? path.join(ownDir as string, `${randomUUID().slice(0, 8)}.sock`);
  let server: SdsServer;
  try {
    server = await SdsServer.start({ socketPath, manager, log: logs.log });
  } catch (err) {
    await manager.close();
    fixture.dispose();
    if (ownDir) fs.rmSync(ownDir, { recursive: true, force: true });
    throw err;
  }
  manager.start();
  return {
    fixture,
    manager,
    server,
    socketPath,
    logs,
    dispose: async () => {
      await server.close();
      await manager.close();
      fixture.dispose();
      if (ownDir) fs.rmSync(ownDir, { recursive: true, force: true });
    },
  };
}

/** Istio's `sds_config` for the workload secrets (as istiod sends it in CDS/LDS). */
export const ISTIO_SDS_CONFIG = {
  api_config_source: {
    api_type: 'GRPC',
    set_node_on_first_message_only: true,
    transport_api_version: 'V3',
    grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }],
  },
  initial_fetch_timeout: '0s',
  resource_api_version: 'V3',
};

/** Istio's mTLS `common_tls_context`: `default` for the certificate, `ROOTCA` for validation. */
export const ISTIO_COMMON_TLS_CONTEXT = {
  alpn_protocols: ['istio-peer-exchange', 'istio'],
  tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ISTIO_SDS_CONFIG }],
  combined_validation_context: {
    default_validation_context: { match_subject_alt_names: [{ prefix: 'spiffe://cluster.local/' }] },
    validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ISTIO_SDS_CONFIG },
  },
};

/**
 * A bootstrap like a sidecar's after istiod's config: an inbound listener whose filter chain
 * terminates mTLS with the SDS secrets, an outbound cluster originating mTLS with them, and the
 * `sds-grpc` cluster (pipe = the SDS socket, HTTP/2, as Istio's bootstrap).
 */
export function sdsBootstrap(socketPath: string): Record<string, unknown> {
  return {
    node: { id: 'sidecar~127.0.0.1~jiuxi-7d9c8-abcde.jiuxi-ns~jiuxi-ns.svc.cluster.local', cluster: 'jiuxi.jiuxi-ns' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'virtualInbound',
          address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
          traffic_direction: 'INBOUND',
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.tcp_proxy',
                  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'inbound', cluster: 'outbound|80||backend.default.svc.cluster.local' },
                },
              ],
              transport_socket: {
                name: 'envoy.transport_sockets.tls',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
                  common_tls_context: ISTIO_COMMON_TLS_CONTEXT,
                  require_client_certificate: true,
                },
              },
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'outbound|80||backend.default.svc.cluster.local',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: { cluster_name: 'outbound|80||backend.default.svc.cluster.local', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } }] }] },
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
              common_tls_context: ISTIO_COMMON_TLS_CONTEXT,
              sni: 'outbound_.80_._.backend.default.svc.cluster.local',
            },
          },
        },
        {
          name: 'sds-grpc',
          type: 'STATIC',
          alt_stat_name: 'sds-grpc;',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: { cluster_name: 'sds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: socketPath } } } }] }] },
        },
      ],
    },
  };
}

/** The double's `sds` state section. */
export interface DoubleSecrets {
  default?: SecretRecord;
  ROOTCA?: SecretRecord;
}

export function doubleSecrets(state: unknown): DoubleSecrets {
  return ((state as { sds?: DoubleSecrets } | undefined)?.sds ?? {}) as DoubleSecrets;
}
