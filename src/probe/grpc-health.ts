/**
 * gRPC health probe: `grpc.health.v1.Health/Check` with @grpc/grpc-js, plaintext, like the
 * kubelet and Istio: the call waits for the connection up to the timeout (waitForReady), no
 * retries, and only `SERVING` passes. Resolves (never rejects) with the outcome; the channel is
 * always closed. This module is the one codec and the one ServingStatus table of the agent;
 * callers load it with `import()` on their first gRPC probe, so grpc-js and protobufjs cost
 * nothing to an agent without one.
 *
 * Limitation: grpc-js offers no way to bind a client's source address, so the source rule of
 * `ProbeNetwork` does not apply; a network, when given, only resolves the host.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import net from 'node:net';
import type { ProbeNetwork } from './network.js';

/** `grpc.health.v1` messages, defined inline (the proto is two tiny messages). */
const root = protobuf.Root.fromJSON({
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
                },
              },
            },
          },
        },
      },
    },
  },
});
const HealthCheckRequest = root.lookupType('grpc.health.v1.HealthCheckRequest');
const HealthCheckResponse = root.lookupType('grpc.health.v1.HealthCheckResponse');
const ServingStatus = root.lookupEnum('grpc.health.v1.HealthCheckResponse.ServingStatus');

export const HEALTH_CHECK_METHOD = '/grpc.health.v1.Health/Check';
export const SERVING = 1;

/** The ServingStatus name of a number (the number itself when unknown). */
export function servingStatusName(status: number): string {
  return ServingStatus.valuesById[status] ?? String(status);
}

export interface HealthCheckRequestMessage {
  service: string;
}
export interface HealthCheckResponseMessage {
  status: number;
}

/** proto3 wire form: a field at its default (`''`, 0) is omitted, as Go and C++ encoders do. */
export const healthCodec = {
  encodeRequest: (m: HealthCheckRequestMessage): Buffer => Buffer.from(HealthCheckRequest.encode(HealthCheckRequest.create(m.service ? m : {})).finish()),
  decodeRequest: (b: Buffer): HealthCheckRequestMessage => {
    const o = HealthCheckRequest.toObject(HealthCheckRequest.decode(b), { defaults: true }) as { service: string };
    return { service: o.service };
  },
  encodeResponse: (m: HealthCheckResponseMessage): Buffer => Buffer.from(HealthCheckResponse.encode(HealthCheckResponse.create(m.status ? m : {})).finish()),
  decodeResponse: (b: Buffer): HealthCheckResponseMessage => {
    const o = HealthCheckResponse.toObject(HealthCheckResponse.decode(b), { defaults: true }) as { status: number };
    return { status: o.status };
  },
};

export interface GrpcHealthOptions {
  host: string;
  port: number;
  service: string;
  timeoutMs: number;
  /** Sent as the channel's primary user agent (the kubelet's, for app probes). */
  userAgent?: string;
  /** Resolves the host first (family preference); absent = grpc-js resolves it. */
  network?: ProbeNetwork;
}

export type GrpcHealthOutcome =
  | { ok: true }
  /** The server answered with a status other than SERVING. */
  | { ok: false; kind: 'status'; status: number; statusName: string }
  /** The call failed: `code` is the gRPC status name (`UNIMPLEMENTED`, `DEADLINE_EXCEEDED`, …). */
  | { ok: false; kind: 'rpc'; code: string; details: string; message: string }
  | { ok: false; kind: 'resolve'; error: unknown };

export async function probeGrpcHealth(options: GrpcHealthOptions): Promise<GrpcHealthOutcome> {
  const deadline = Date.now() + options.timeoutMs;
  let target: string;
  if (options.network) {
    let address: string;
    try {
      address = (await options.network.endpoint(options.host)).address;
    } catch (error) {
      return { ok: false, kind: 'resolve', error };
    }
    target = net.isIP(address) === 6 ? `ipv6:[${address}]:${options.port}` : `ipv4:${address}:${options.port}`;
  } else {
    target = `${net.isIP(options.host) === 6 ? `[${options.host}]` : options.host}:${options.port}`;
  }
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), {
    ...(options.userAgent ? { 'grpc.primary_user_agent': options.userAgent } : {}),
    'grpc.enable_retries': 0,
    'grpc.service_config_disable_resolution': 1,
  });
  try {
    const response = await new Promise<HealthCheckResponseMessage>((resolve, reject) => {
      client.makeUnaryRequest(
        HEALTH_CHECK_METHOD,
        healthCodec.encodeRequest,
        healthCodec.decodeResponse,
        { service: options.service },
        new grpc.Metadata({ waitForReady: true }),
        { deadline },
        (err, value) => (err || !value ? reject(err ?? new Error('empty response')) : resolve(value)),
      );
    });
    if (response.status === SERVING) return { ok: true };
    return { ok: false, kind: 'status', status: response.status, statusName: servingStatusName(response.status) };
  } catch (err) {
    const e = err as Partial<grpc.ServiceError>;
    const code = typeof e.code === 'number' ? (grpc.status[e.code] ?? String(e.code)) : 'UNKNOWN';
    return { ok: false, kind: 'rpc', code, details: e.details ?? '', message: e.message ?? String(err) };
  } finally {
    client.close();
  }
}
