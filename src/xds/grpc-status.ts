/**
 * gRPC status mapping for the proxy (no state): the status a stream ends with, how it is written
 * (trailers, or trailers-only when no response headers were sent), how it is read from an
 * upstream's headers or trailers (and from a non-200 HTTP status), and Istio's classification
 * of a stream end as expected or an error.
 */
import type http2 from 'node:http2';
import { Status, decodeGrpcMessage, encodeGrpcMessage } from './grpc-wire.js';

export interface EndStatus {
  code: number;
  details: string;
}
export const OK: EndStatus = { code: Status.OK, details: '' };

export const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' } as const;

export function statusHeaders(s: EndStatus): Record<string, string> {
  return { 'grpc-status': String(s.code), ...(s.details ? { 'grpc-message': encodeGrpcMessage(s.details) } : {}) };
}

export function respondTrailersOnly(stream: http2.ServerHttp2Stream, s: EndStatus): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  try {
    stream.respond({ ...GRPC_HEADERS, ...statusHeaders(s) }, { endStream: true });
  } catch {
    // the peer is gone
  }
}

/** gRPC's mapping of a non-200 HTTP status (PROTOCOL-HTTP2 / http-grpc-status-mapping). */
export function statusFromHttp(code: number): number {
  if (code === 400) return Status.INTERNAL;
  if (code === 401) return 16;
  if (code === 403) return 7;
  if (code === 404) return Status.UNIMPLEMENTED;
  if (code === 429 || code === 502 || code === 503 || code === 504) return Status.UNAVAILABLE;
  return Status.UNKNOWN;
}

/**
 * Istio's classification of a stream end (`istiogrpc.GRPCErrorType`): OK, CANCELLED,
 * DEADLINE_EXCEEDED and UNAVAILABLE for a peer going away are expected (`type="cancelled"`);
 * anything else is an error (`type="error"`).
 */
export function expectedTermination(s: EndStatus): boolean {
  if (s.code === Status.OK || s.code === Status.CANCELLED || s.code === 4) return true;
  return s.code === Status.UNAVAILABLE && /client disconnected|transport is closing|error reading from server: EOF/.test(s.details);
}

export function statusFromHeaders(h: http2.IncomingHttpHeaders): EndStatus | undefined {
  const raw = h['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  const msg = h['grpc-message'];
  return { code: Number.isInteger(code) ? code : Status.UNKNOWN, details: typeof msg === 'string' ? decodeGrpcMessage(msg) : '' };
}
