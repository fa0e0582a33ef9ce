/**
 * Outbound GETs of the merged scrape (Envoy's and the application's metrics) over node:http
 * with a keep-alive agent. node:http's parser is native and hands out slices of the socket's
 * reads; undici (the other choice) costs 10+ MiB of resident memory once loaded (its WASM
 * parser and module graph) for no gain on this path.
 *
 * Contract of `get`:
 * - resolves with the response as soon as its headers are in (any status);
 * - rejects with the abort reason when `signal` aborts first, or with the socket error;
 * - after it resolved, aborting `signal` destroys the request: the body then ends with an
 *   error (a `for await` over it throws), and the socket is not reused;
 * - every error of the request is handled (nothing is left to crash the process).
 *
 * Memory: each socket read is a fresh buffer (up to 64 KiB) that V8 frees only when it
 * collects the Buffer object; a 10 MB body makes ~160 of them but little JS garbage, so young
 * collections come rarely and dead read buffers pile up (tens of MiB under concurrent
 * scrapes). When the runtime exposes `gc` (the launcher runs node with `--expose-gc`),
 * `consume` asks for a minor collection after every RECLAIM_EVERY_BYTES read, whatever the
 * number of concurrent scrapes: dead read buffers stay bounded by about that much. Measured
 * on Node 24.21 (scripts/bench/idle.mjs, seed pod, 20 concurrent 10 MB merged scrapes, both
 * runs with --max-semi-space-size=2): private peak 51–53 MiB with the forced GC against 74–77
 * without, 47 MiB 30 s later against 52–71.
 */
import http from 'node:http';

export const RECLAIM_EVERY_BYTES = 4 * 1024 * 1024;
const gc = (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc;
let readSinceGc = 0;

/** Counts bytes read; a minor GC once RECLAIM_EVERY_BYTES have been read since the last one. */
function noteRead(bytes: number): void {
  if (gc === undefined) return;
  readSinceGc += bytes;
  if (readSinceGc < RECLAIM_EVERY_BYTES) return;
  readSinceGc = 0;
  gc({ type: 'minor' });
}

export interface GetOptions {
  host: string;
  port: number;
  /** Path and query. */
  path: string;
  headers: Record<string, string>;
  signal: AbortSignal;
}

export function get(agent: http.Agent, options: GetOptions): Promise<http.IncomingMessage> {
  const { signal } = options;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: options.host, port: options.port, path: options.path, method: 'GET', headers: options.headers, agent });
    const onAbort = () => req.destroy(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    const detach = () => signal.removeEventListener('abort', onAbort);
    req.on('error', (err) => {
      detach();
      reject(err);
    });
    req.on('response', (res) => {
      // Once the body is done (or failed), the signal no longer concerns this request.
      res.once('close', detach);
      // Errors after the headers surface through the body; keep the request's own quiet.
      res.on('error', () => undefined);
      resolve(res);
    });
    req.end();
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

/** Drops a response body we will not read; its socket is not reused. */
export function discard(res: http.IncomingMessage): void {
  res.destroy();
}

/**
 * Feeds a response body to `onChunk`, chunk by chunk, as 'data' events (cheaper than async
 * iteration). While a promise returned by `onChunk` is pending the body is paused
 * (backpressure reaches the sender). Resolves once the body ended and the last promise
 * settled; rejects when the body fails (reset, aborted) or `onChunk` throws or rejects, and
 * then destroys the response.
 */
export function consume(res: http.IncomingMessage, onChunk: (chunk: Buffer) => Promise<void> | void): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let pending: Promise<void> | undefined;
    let failure: { err: unknown } | undefined;
    const cleanup = () => {
      res.off('data', onData);
      res.off('end', onEnd);
      res.off('error', onError);
      res.off('close', onClose);
    };
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      cleanup();
      res.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (settled) return;
      noteRead(chunk.length);
      let p: Promise<void> | void;
      try {
        p = onChunk(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      if (!p) return;
      res.pause();
      const current: Promise<void> = p.then(
        () => {
          if (pending === current) pending = undefined;
          if (!settled) res.resume();
        },
        (err: unknown) => {
          failure ??= { err };
          fail(err);
        },
      );
      pending = current;
    };
    const onEnd = () => {
      if (settled) return;
      settled = true;
      cleanup();
      // The last chunk's write may still be in flight.
      if (pending) void pending.then(() => (failure ? reject(failure.err) : resolve()));
      else resolve();
    };
    const onError = (err: Error) => fail(err);
    const onClose = () => fail(new Error('the response closed before its end'));
    res.on('data', onData);
    res.on('end', onEnd);
    res.on('error', onError);
    res.on('close', onClose);
  });
}
