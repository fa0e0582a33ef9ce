/**
 * Helpers for the xDS proxy's component tests: a capturing logger, an in-process "Envoy" (the
 * Envoy double's real ADS client pointed at the proxy's socket), and a raw gRPC stream on the
 * proxy's socket for byte-level checks. Every wait polls a condition with a deadline.
 */
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { createLogger, type Logger } from '../../src/log.js';
import { createXdsProxyMetrics, type XdsProxyMetrics } from '../../src/xds/metrics.js';
import { AdsClient } from '../support/envoy-double/ads.js';
import { EnvoyLog } from '../support/envoy-double/log.js';
import type { XdsType } from '../support/envoy-double/server.js';
import { ADS_PATHS, type StreamKind } from '../support/control-plane.js';

export { waitUntil } from '../support/envoy-double-harness.js';

export { captureLogger, type CapturedLog } from '../support/log-capture.js';

export function proxyMetrics(): { registry: Registry; metrics: XdsProxyMetrics; value: (name: string, labels?: Record<string, string>) => Promise<number> } {
  const registry = new Registry();
  const metrics = createXdsProxyMetrics(registry);
  const value = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const m = registry.getSingleMetric(name);
    if (!m) throw new Error(`no metric ${name}`);
    const got = await m.get();
    const v = got.values.find((x) => Object.entries(labels).every(([k, lv]) => x.labels[k] === lv));
    return v?.value ?? 0;
  };
  return { registry, metrics, value };
}

export function tempDir(prefix = 'xds-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The bootstrap node an Envoy would send (before the agent replaces it). */
export const ENVOY_BOOTSTRAP_NODE = { id: 'sidecar~stale~bootstrap.ns~ns.svc.cluster.local', cluster: 'stale.ns', metadata: { LABELS: { app: 'stale' } } };

/** The Envoy double's ADS client, in process, with a recording sink. */
export class FakeEnvoy {
  readonly updates: Array<{ type: XdsType; accepted: boolean; detail?: string }> = [];
  readonly client: AdsClient;

  constructor(socketPath: string, kind: StreamKind, options: { backoffBaseMs?: number; lds?: boolean } = {}) {
    this.client = new AdsClient({
      target: `unix:${socketPath}`,
      apiType: kind === 'delta' ? 'DELTA_GRPC' : 'GRPC',
      node: ENVOY_BOOTSTRAP_NODE,
      subscribe: { cds: true, lds: options.lds ?? true },
      sink: { configUpdate: (type, accepted, detail) => void this.updates.push({ type, accepted, ...(detail ? { detail } : {}) }), changed: () => undefined },
      log: new EnvoyLog('off', new Map()),
      backoffBaseMs: options.backoffBaseMs ?? 50,
      backoffMaxMs: 200,
    });
    this.client.start();
  }

  snapshot() {
    return this.client.snapshot();
  }

  accepted(type: XdsType): number {
    return this.updates.filter((u) => u.type === type && u.accepted).length;
  }

  close(): void {
    this.client.close();
  }
}

const passThrough = (b: Buffer): Buffer => b;

/** One raw ADS stream on the proxy's socket: write encoded requests, collect raw responses and the status. */
export class RawStream {
  readonly responses: Buffer[] = [];
  status: grpc.StatusObject | undefined;
  private readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;

  constructor(socketPath: string, kind: StreamKind) {
    this.client = new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
    this.call = this.client.makeBidiStreamRequest(ADS_PATHS[kind], passThrough, passThrough, new grpc.Metadata());
    this.call.on('data', (b: Buffer) => this.responses.push(b));
    this.call.on('error', () => undefined);
    this.call.on('status', (s: grpc.StatusObject) => {
      this.status = s;
      this.client.close();
    });
  }

  write(b: Buffer): void {
    this.call.write(b);
  }

  close(): void {
    if (!this.status) this.call.cancel();
    this.client.close();
  }
}
