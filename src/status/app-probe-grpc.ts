/**
 * grpc app probe (SPEC §6.3): `grpc.health.v1.Health/Check` with @grpc/grpc-js, plaintext,
 * like the kubelet: the call waits for the connection up to the timeout, and only a
 * `SERVING` answer passes. Resolves with undefined on success, else the reason; the channel
 * is always closed.
 *
 * Limitation: grpc-js offers no way to bind the client's source address, so unlike httpGet
 * and tcpSocket probes this one does not connect from 127.0.0.6 / ::6.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import net from 'node:net';
import type { GrpcProber } from './app-probe.js';
import type { ProbeNetwork } from './app-probe-net.js';

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
export const HEALTH_CHECK_METHOD = '/grpc.health.v1.Health/Check';
export const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

export interface HealthCheckRequestMessage {
  service: string;
}
export interface HealthCheckResponseMessage {
  status: number;
}

export const healthCodec = {
  encodeRequest: (m: HealthCheckRequestMessage): Buffer => Buffer.from(HealthCheckRequest.encode(HealthCheckRequest.create(m)).finish()),
  decodeRequest: (b: Buffer): HealthCheckRequestMessage => {
    const o = HealthCheckRequest.toObject(HealthCheckRequest.decode(b), { defaults: true }) as { service: string };
    return { service: o.service };
  },
  encodeResponse: (m: HealthCheckResponseMessage): Buffer => Buffer.from(HealthCheckResponse.encode(HealthCheckResponse.create(m)).finish()),
  decodeResponse: (b: Buffer): HealthCheckResponseMessage => {
    const o = HealthCheckResponse.toObject(HealthCheckResponse.decode(b), { defaults: true }) as { status: number };
    return { status: o.status };
  },
};

export interface GrpcProbeOptions {
  destination: string;
  prober: GrpcProber;
  /** The kubelet's User-Agent, forwarded as the channel's user agent. */
  userAgent?: string;
  net: ProbeNetwork;
}

export async function probeGrpc(options: GrpcProbeOptions): Promise<string | undefined> {
  const { prober } = options;
  const deadline = Date.now() + prober.timeoutMs;
  const endpoint = await options.net.endpoint(options.destination).catch(() => undefined);
  if (!endpoint) return `cannot resolve ${options.destination}`;
  const target = net.isIP(endpoint.address) === 6 ? `ipv6:[${endpoint.address}]:${prober.port}` : `ipv4:${endpoint.address}:${prober.port}`;
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
        { service: prober.service },
        new grpc.Metadata({ waitForReady: true }),
        { deadline },
        (err, value) => (err || !value ? reject(err ?? new Error('empty response')) : resolve(value)),
      );
    });
    if (response.status === 1) return undefined;
    return `health check status ${SERVING_STATUS[response.status] ?? response.status}`;
  } catch (err) {
    const e = err as grpc.ServiceError;
    switch (e.code) {
      case grpc.status.UNIMPLEMENTED:
        return `server does not implement the grpc health protocol (grpc.health.v1.Health): ${e.details}`;
      case grpc.status.DEADLINE_EXCEEDED:
        return `grpc request not finished within timeout: ${e.details}`;
      default:
        return `grpc probe failed: ${e.message ?? String(err)}`;
    }
  } finally {
    client.close();
  }
}
