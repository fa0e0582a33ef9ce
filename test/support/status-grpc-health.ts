/**
 * A gRPC server implementing `grpc.health.v1.Health/Check` (@grpc/grpc-js) for app-probe
 * tests: each service name maps to a ServingStatus; unknown services get NOT_FOUND.
 */
import * as grpc from '@grpc/grpc-js';
import { HEALTH_CHECK_METHOD, healthCodec, type HealthCheckRequestMessage, type HealthCheckResponseMessage } from '../../src/probe/grpc-health.js';

export interface HealthServer {
  port: number;
  /** service → status (1 SERVING, 2 NOT_SERVING); mutable. */
  statuses: Map<string, number>;
  /** User agents seen. */
  userAgents: string[];
  /** Peer addresses seen (`call.getPeer()`, `address:port`). */
  peers: string[];
  close(): Promise<void>;
}

export async function startHealthServer(statuses: Record<string, number>, host = '127.0.0.1', port = 0): Promise<HealthServer> {
  const server = new grpc.Server();
  const map = new Map(Object.entries(statuses));
  const userAgents: string[] = [];
  const peers: string[] = [];
  server.addService(
    {
      Check: {
        path: HEALTH_CHECK_METHOD,
        requestStream: false,
        responseStream: false,
        requestSerialize: healthCodec.encodeRequest,
        requestDeserialize: healthCodec.decodeRequest,
        responseSerialize: healthCodec.encodeResponse,
        responseDeserialize: healthCodec.decodeResponse,
      },
    },
    {
      Check: (
        call: grpc.ServerUnaryCall<HealthCheckRequestMessage, HealthCheckResponseMessage>,
        cb: grpc.sendUnaryData<HealthCheckResponseMessage>,
      ) => {
        userAgents.push(String(call.metadata.get('user-agent')[0] ?? ''));
        peers.push(call.getPeer());
        const status = map.get(call.request.service);
        if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else cb(null, { status });
      },
    },
  );
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port: bound,
    statuses: map,
    userAgents,
    peers,
    // forceShutdown: a session a probe left behind must not outlive the test (tryShutdown would wait on it).
    close: () => {
      server.forceShutdown();
      return Promise.resolve();
    },
  };
}
