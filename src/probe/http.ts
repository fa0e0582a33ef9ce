/**
 * HTTP GET probe with the kubelet's (Go client's) transport semantics:
 * - one fresh connection per request, `Connection: close`; the source rule of `network`;
 * - HTTPS without certificate verification, HTTP/2 via ALPN when `http2` is set;
 * - `redirects: 'same-host'`: 301/302/303/307/308 with a Location on the first URL's hostname
 *   are followed; as in Go, the 10th redirect is an error; a custom Host is kept only through a
 *   relative redirect. A redirect elsewhere, or `redirects: 'none'`, returns that 3xx response;
 * - at most `maxBodyBytes` of the body are read (0 = none: the answer is the status line);
 * - one timeout covers every hop and the body.
 * Resolves (never rejects) with the last response or the failure. Every socket, request and
 * session it opens is destroyed before it resolves. `node:tls` and `node:http2` are loaded on
 * the first HTTPS / HTTP/2 probe only (2–5 MiB of RSS that plain-HTTP probes never need).
 */
import http from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { connectTarget, type ProbeNetwork } from './network.js';

/** Go's client: `stopped after 10 redirects`, checked before following a redirect. */
export const MAX_PROBE_REQUESTS = 10;
const FOLLOWED_REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface HttpProbeOptions {
  url: URL;
  /** Host of the first request (default: the URL's host). */
  host?: string;
  /** Lower-case names; `host` and `connection` are set by the probe. */
  headers: Record<string, string | string[]>;
  timeoutMs: number;
  http2: boolean;
  redirects: 'none' | 'same-host';
  maxBodyBytes: number;
  network?: ProbeNetwork;
}

export type HttpProbeOutcome =
  | { ok: true; status: number; body: Buffer; location?: string }
  | { ok: false; timedOut: boolean; error: unknown };

interface Hop {
  status: number;
  location: string | undefined;
  body: Buffer;
}

type Disposables = { destroy(): void }[];

export async function probeHttp(options: HttpProbeOptions): Promise<HttpProbeOutcome> {
  const disposables: Disposables = [];
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new Error(`timed out after ${options.timeoutMs} ms`)), options.timeoutMs);
  try {
    const first = options.url;
    let url = first;
    let hostHeader = options.host ?? first.host;
    for (let requests = 1; ; requests++) {
      const hop = await withAbort(fetchOnce(url, hostHeader, options, ctl.signal, disposables), ctl.signal);
      if (options.redirects === 'same-host' && FOLLOWED_REDIRECTS.has(hop.status) && hop.location !== undefined) {
        let next: URL;
        try {
          next = new URL(hop.location, url);
        } catch {
          throw new Error(`failed to parse Location header ${JSON.stringify(hop.location)}`);
        }
        if (next.hostname === first.hostname) {
          if (requests >= MAX_PROBE_REQUESTS) throw new Error(`stopped after ${MAX_PROBE_REQUESTS} redirects`);
          if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new Error(`unsupported protocol scheme in redirect to ${next.href}`);
          if (/^[a-z][a-z0-9+.-]*:/i.test(hop.location) || hop.location.startsWith('//')) hostHeader = next.host;
          url = next;
          continue;
        }
      }
      return { ok: true, status: hop.status, body: hop.body, ...(hop.location !== undefined ? { location: hop.location } : {}) };
    }
  } catch (err) {
    return ctl.signal.aborted ? { ok: false, timedOut: true, error: ctl.signal.reason } : { ok: false, timedOut: false, error: err };
  } finally {
    clearTimeout(timer);
    for (const d of disposables) d.destroy();
  }
}

type Http2Module = typeof import('node:http2');

function noop(): void {}

function withAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function fetchOnce(url: URL, hostHeader: string, options: HttpProbeOptions, signal: AbortSignal, disposables: Disposables): Promise<Hop> {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const target = await connectTarget(hostname, port, options.network);
  if (signal.aborted) throw signal.reason;
  const path = `${url.pathname}${url.search}`;
  if (url.protocol === 'http:') {
    const socket = net.connect(target);
    socket.on('error', noop); // reported through the request
    disposables.push(socket);
    return http1(socket, path, hostHeader, options, disposables);
  }
  // Both loaded before connecting: once the handshake is done the session must take the socket
  // over at once.
  const [tls, http2] = await Promise.all([import('node:tls'), options.http2 ? import('node:http2') : undefined]);
  if (signal.aborted) throw signal.reason;
  const socket = tls.connect({
    ...target,
    rejectUnauthorized: false,
    ALPNProtocols: options.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
    ...(net.isIP(hostname) === 0 ? { servername: hostname } : {}),
  });
  socket.on('error', noop); // reported through the waits below
  disposables.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  if (signal.aborted) throw signal.reason;
  if (socket.alpnProtocol === 'h2' && http2) return h2(http2, socket, url, path, hostHeader, options, disposables);
  return http1(socket, path, hostHeader, options, disposables);
}

function http1(socket: Duplex, path: string, hostHeader: string, options: HttpProbeOptions, disposables: Disposables): Promise<Hop> {
  return new Promise<Hop>((resolve, reject) => {
    const req = http.request({
      method: 'GET',
      path,
      headers: { ...options.headers, host: hostHeader, connection: 'close' },
      createConnection: () => socket as net.Socket,
    });
    disposables.push(req);
    req.once('error', reject);
    req.once('response', (res) => {
      readAtMost(res, options.maxBodyBytes).then((body) => resolve({ status: res.statusCode ?? 500, location: res.headers.location, body }), reject);
    });
    req.end();
  });
}

function h2(http2: Http2Module, socket: TLSSocket, url: URL, path: string, hostHeader: string, options: HttpProbeOptions, disposables: Disposables): Promise<Hop> {
  return new Promise<Hop>((resolve, reject) => {
    const session = http2.connect(url.origin, { createConnection: () => socket });
    disposables.push(session);
    session.on('error', noop);
    session.once('error', reject);
    const h2headers: OutgoingHttpHeaders = { ...options.headers };
    delete h2headers.connection;
    delete h2headers.host;
    const stream = session.request({ ...h2headers, ':method': 'GET', ':path': path, ':scheme': 'https', ':authority': hostHeader }, { endStream: true });
    stream.on('error', noop);
    stream.once('error', reject);
    stream.once('response', (resHeaders) => {
      const status = Number(resHeaders[':status']);
      const loc = resHeaders.location;
      readAtMost(stream, options.maxBodyBytes).then((body) => resolve({ status, location: Array.isArray(loc) ? loc[0] : loc, body }), reject);
    });
  });
}

/** Reads at most `max` bytes of a body; a body error after some bytes keeps what was read. */
function readAtMost(stream: NodeJS.ReadableStream & { destroy(): void }, max: number): Promise<Buffer> {
  if (max <= 0) {
    stream.on('error', noop);
    stream.destroy();
    return Promise.resolve(Buffer.alloc(0));
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      stream.removeListener('data', onData);
      stream.removeListener('end', done);
      stream.removeListener('error', done);
      stream.on('error', noop);
      const body = Buffer.concat(chunks);
      resolve(body.length > max ? body.subarray(0, max) : body);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= max) {
        done();
        stream.destroy();
      }
    };
    stream.on('data', onData);
    stream.once('end', done);
    stream.once('error', done);
  });
}
