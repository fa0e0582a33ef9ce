/**
 * gRPC health probe: `grpc.health.v1.Health/Check`, plaintext, over `node:http2` on a socket
 * of its own, so the source rule of `ProbeNetwork` applies (127.0.0.6 / ::6, as Istio's app
 * probes do). Like the kubelet's client (grpc-go, WithBlock): a failed connection is retried
 * with backoff (1 s, ×1.6, ±20 %) until the deadline, the deadline travels as `grpc-timeout`,
 * there are no other retries, and only `SERVING` passes. Resolves (never rejects) with the
 * outcome; the socket, session and stream are destroyed before it resolves. This module is the
 * one codec and the one ServingStatus table of the agent; callers load it with `import()` on
 * their first gRPC probe, so `node:http2` costs nothing to an agent without one.
 */
import net from 'node:net';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import { GRPC_STATUS_NAMES, MessageReader, decodeGrpcMessage, frameMessage, statusName } from '../xds/grpc-wire.js';
import { WIRE_VARINT, encodeVarint, lenField, readVarint, scanFields, stringField } from '../xds/wire.js';
import { connectTarget, type ProbeNetwork } from './network.js';

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`, by number: the one status table. */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

export const HEALTH_CHECK_METHOD = '/grpc.health.v1.Health/Check';
export const SERVING = 1;

/** The ServingStatus name of a number (the number itself when unknown). */
export function servingStatusName(status: number): string {
  return SERVING_STATUS[status] ?? String(status);
}

export interface HealthCheckRequestMessage {
  service: string;
}
export interface HealthCheckResponseMessage {
  status: number;
}

/**
 * PURE, the two messages' proto3 wire form (`HealthCheckRequest { string service = 1; }`,
 * `HealthCheckResponse { ServingStatus status = 1; }`): a field at its default is omitted, the
 * last occurrence wins, unknown fields are skipped; malformed input throws `WireError`.
 */
export const healthCodec = {
  encodeRequest: (m: HealthCheckRequestMessage): Buffer => (m.service ? lenField(1, Buffer.from(m.service, 'utf8')) : Buffer.alloc(0)),
  decodeRequest: (b: Buffer): HealthCheckRequestMessage => ({ service: stringField(b, scanFields(b), 1) }),
  encodeResponse: (m: HealthCheckResponseMessage): Buffer => (m.status ? Buffer.concat([encodeVarint(1 * 8 + WIRE_VARINT), encodeVarint(m.status)]) : Buffer.alloc(0)),
  decodeResponse: (b: Buffer): HealthCheckResponseMessage => {
    let status = 0;
    for (const f of scanFields(b)) if (f.field === 1 && f.wireType === WIRE_VARINT) status = readVarint(b, f.valueStart).value | 0;
    return { status };
  },
};

export interface GrpcHealthOptions {
  host: string;
  port: number;
  service: string;
  timeoutMs: number;
  /** The `user-agent` header (the kubelet's, for app probes); none when absent. */
  userAgent?: string;
  /** Source rule and name resolution; absent = connect to `host` as is (Node resolves names). */
  network?: ProbeNetwork;
}

export type GrpcHealthOutcome =
  | { ok: true }
  /** The server answered with a status other than SERVING. */
  | { ok: false; kind: 'status'; status: number; statusName: string }
  /** The call failed: `code` is the gRPC status name (`UNIMPLEMENTED`, `DEADLINE_EXCEEDED`, …). */
  | { ok: false; kind: 'rpc'; code: string; details: string; message: string }
  | { ok: false; kind: 'resolve'; error: unknown };

/** The largest HealthCheckResponse accepted (the real one is 2 bytes). */
const MAX_RESPONSE_BYTES = 64 * 1024;
const BACKOFF = { initialMs: 1000, multiplier: 1.6, jitter: 0.2 };

type Http2Module = typeof import('node:http2');
/** Response headers or trailers as `node:http2` delivers them (`:status` is a number). */
export type GrpcHeaders = Readonly<Record<string, string | string[] | number | undefined>>;
type Attempt = { retry: false; outcome: GrpcHealthOutcome } | { retry: true; error: unknown };

function rpc(code: string, details: string): GrpcHealthOutcome {
  return { ok: false, kind: 'rpc', code, details, message: `${GRPC_STATUS_NAMES.indexOf(code as (typeof GRPC_STATUS_NAMES)[number])} ${code}: ${details}` };
}

export async function probeGrpcHealth(options: GrpcHealthOptions): Promise<GrpcHealthOutcome> {
  const deadline = Date.now() + options.timeoutMs;
  let target: Awaited<ReturnType<typeof connectTarget>>;
  try {
    target = await connectTarget(options.host, options.port, options.network);
  } catch (error) {
    return { ok: false, kind: 'resolve', error };
  }
  const http2 = await import('node:http2');
  const authority = `${net.isIP(options.host) === 6 ? `[${options.host}]` : options.host}:${options.port}`;
  let backoffMs = BACKOFF.initialMs;
  for (;;) {
    const attempt = await callOnce(http2, target, authority, options, deadline);
    if (!attempt.retry) return attempt.outcome;
    const remaining = deadline - Date.now();
    const wait = backoffMs * (1 - BACKOFF.jitter + Math.random() * 2 * BACKOFF.jitter);
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(wait, remaining))));
    if (wait >= remaining) {
      const reason = attempt.error instanceof Error ? attempt.error.message : String(attempt.error);
      return rpc('DEADLINE_EXCEEDED', `Deadline exceeded waiting for a connection to ${authority}: ${reason}`);
    }
    backoffMs *= BACKOFF.multiplier;
  }
}

/** HTTP status → gRPC code for a non-200 answer (gRPC's http-grpc-status-mapping). */
function httpStatusCode(status: number): string {
  switch (status) {
    case 400:
      return 'INTERNAL';
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'PERMISSION_DENIED';
    case 404:
      return 'UNIMPLEMENTED';
    case 429:
    case 502:
    case 503:
    case 504:
      return 'UNAVAILABLE';
    default:
      return 'UNKNOWN';
  }
}

function callOnce(
  http2: Http2Module,
  target: Awaited<ReturnType<typeof connectTarget>>,
  authority: string,
  options: GrpcHealthOptions,
  deadline: number,
): Promise<Attempt> {
  return new Promise<Attempt>((resolve) => {
    let session: ClientHttp2Session | undefined;
    let stream: ClientHttp2Stream | undefined;
    let headers: GrpcHeaders | undefined;
    let trailers: GrpcHeaders | undefined;
    let settled = false;
    const reader = new MessageReader(MAX_RESPONSE_BYTES);
    const messages: Buffer[] = [];
    const socket = net.connect(target);
    const finish = (attempt: Attempt): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream?.destroy();
      session?.destroy();
      socket.destroy();
      resolve(attempt);
    };
    const timer = setTimeout(() => finish({ retry: false, outcome: rpc('DEADLINE_EXCEEDED', 'Deadline exceeded') }), Math.max(0, deadline - Date.now()));
    // Until the server answers, a failure is the connection's: retried until the deadline.
    const fail = (error: Error): void =>
      finish(headers === undefined ? { retry: true, error } : { retry: false, outcome: rpc('UNAVAILABLE', error.message) });
    socket.on('error', fail);
    socket.once('connect', () => {
      session = http2.connect(`http://${authority}`, { createConnection: () => socket });
      session.on('error', fail);
      const remaining = Math.max(1, deadline - Date.now());
      stream = session.request({
        ':method': 'POST',
        ':scheme': 'http',
        ':path': HEALTH_CHECK_METHOD,
        ':authority': authority,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${remaining}m`,
        ...(options.userAgent ? { 'user-agent': options.userAgent } : {}),
      });
      stream.on('error', fail);
      stream.once('response', (h) => (headers = h));
      stream.once('trailers', (t) => (trailers = t));
      stream.on('data', (chunk: Buffer) => {
        try {
          messages.push(...reader.push(chunk));
        } catch (err) {
          finish({ retry: false, outcome: rpc('INTERNAL', (err as Error).message) });
        }
      });
      stream.once('close', () => finish(headers === undefined ? { retry: true, error: new Error('connection closed before a response') } : { retry: false, outcome: evaluate(headers, trailers, messages) }));
      stream.end(frameMessage(healthCodec.encodeRequest({ service: options.service })));
    });
  });
}

/** PURE: the call's outcome from the response headers, trailers (absent for trailers-only) and messages. */
export function evaluate(headers: GrpcHeaders, trailers: GrpcHeaders | undefined, messages: readonly Buffer[]): GrpcHealthOutcome {
  const httpStatus = Number(headers[':status']);
  if (httpStatus !== 200) return rpc(httpStatusCode(httpStatus), `Received HTTP status code ${httpStatus}`);
  const end = trailers ?? headers;
  const rawStatus = end['grpc-status'];
  if (rawStatus === undefined) return rpc('UNKNOWN', 'No status received');
  const code = Number(rawStatus);
  if (code !== 0) {
    const msg = end['grpc-message'];
    return rpc(statusName(code), decodeGrpcMessage(typeof msg === 'string' ? msg : ''));
  }
  if (messages.length !== 1) return rpc('UNIMPLEMENTED', `expected one response message, got ${messages.length}`);
  let status: number;
  try {
    status = healthCodec.decodeResponse(messages[0] as Buffer).status;
  } catch (err) {
    return rpc('INTERNAL', `cannot decode the response: ${(err as Error).message}`);
  }
  if (status === SERVING) return { ok: true };
  return { ok: false, kind: 'status', status, statusName: servingStatusName(status) };
}
