/**
 * What the small HTTP commands (`wait`, `request`) share: one undici request with a
 * whole-exchange deadline (connect, headers and body, like Go's `http.Client.Timeout`),
 * and Go-like one-line descriptions of transport failures (`Get "<url>": <cause>`).
 */
import { Agent, type Dispatcher } from 'undici';
import { HttpRequestError } from '../errors.js';

export interface HttpResult {
  status: number;
  body: string;
}

export interface HttpRequestOptions {
  origin: string;
  /** Sent byte for byte (undici does not re-encode it). */
  path: string;
  method: string;
  body?: string;
  timeoutMs: number;
  /** Bodies above this are cut (the result then holds only the first `maxBodyBytes`). */
  maxBodyBytes?: number;
  signal?: AbortSignal;
}

/** Thrown for transport failures (defined in the error catalogue). */
export { HttpRequestError };

/**
 * One HTTP exchange. Resolves with any status; rejects with HttpRequestError when the
 * exchange fails or does not finish within `timeoutMs`.
 */
export async function httpRequest(dispatcher: Dispatcher, options: HttpRequestOptions): Promise<HttpResult> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const url = `${options.origin}${options.path}`;
  try {
    const res = await dispatcher.request({
      origin: options.origin,
      path: options.path,
      method: options.method as Dispatcher.HttpMethod,
      ...(options.body !== undefined ? { body: options.body } : {}),
      signal,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
    const body = await readBody(res.body, options.maxBodyBytes);
    return { status: res.statusCode, body };
  } catch (err) {
    const cause = timeout.aborted ? `request timed out after ${options.timeoutMs}ms` : describeTransportError(err);
    throw new HttpRequestError(`${goMethod(options.method)} "${url}": ${cause}`, { cause: err });
  }
}

async function readBody(body: Dispatcher.ResponseData['body'], max: number | undefined): Promise<string> {
  if (max === undefined) return body.text();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= max) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

/** Go's url.Error spells the method `Get`, `Post`, … */
function goMethod(method: string): string {
  return method.length === 0 ? method : `${method[0]?.toUpperCase() ?? ''}${method.slice(1).toLowerCase()}`;
}

/**
 * One line for a connect/protocol error, including every attempt of a multi-address connect.
 * Duck-typed: errors may come from another realm (e.g. a test sandbox), where instanceof fails.
 */
export function describeTransportError(err: unknown): string {
  if (typeof err !== 'object' || err === null || !('message' in err)) return String(err);
  const e = err as { message: unknown; name?: unknown; code?: unknown; cause?: unknown; errors?: unknown };
  if (Array.isArray(e.errors) && e.errors.length > 0) {
    return [...new Set(e.errors.map((x) => describeTransportError(x)))].join('; ');
  }
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : typeof e.code === 'string' ? e.code : String(e.name ?? 'Error');
  if (e.cause === undefined || e.cause === null || e.cause === err) return message;
  const inner = describeTransportError(e.cause);
  return message.includes(inner) ? message : `${message}: ${inner}`;
}

/** A dispatcher for a short-lived command: keeps one connection alive between attempts. */
export function commandDispatcher(): Agent {
  return new Agent({ connections: 1, keepAliveTimeout: 10_000 });
}
