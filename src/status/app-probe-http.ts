/**
 * httpGet app probe (SPEC §6.3), with the kubelet's client semantics:
 * - `GET <scheme>://<destination>:<port><path>`; the destination is fixed by the config;
 * - all incoming headers are copied (minus hop-by-hop ones); Host is the incoming Host with
 *   the status port replaced by the app port; `Connection: close` (no keep-alive);
 * - HTTPS without certificate verification, HTTP/2 via ALPN when enabled;
 * - redirects are followed only to the same hostname; as in Go's client, the 10th redirect
 *   is an error (500); a redirect elsewhere, or any other 3xx, is answered 200 with no body;
 * - otherwise the app's status and at most 10 KiB of its body (none of its headers);
 * - a transport error or the timeout (covering every hop and the body) → 500, empty body.
 * Every socket and session it opens is destroyed before it resolves. `node:tls` and
 * `node:http2` are loaded on the first HTTPS / HTTP/2 probe only (they cost 2–5 MiB of RSS that
 * an agent with plain-HTTP probes, the common case, never needs).
 */
import http from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { describeError } from '../errors.js';
import type { HttpGetProber } from './app-probe.js';
import type { ProbeNetwork } from './app-probe-net.js';

export const MAX_PROBE_BODY_BYTES = 10 * 1024;
/** Go's client: `stopped after 10 redirects`, checked before following a redirect. */
export const MAX_PROBE_REQUESTS = 10;

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
  'content-length',
  'expect',
  'http2-settings',
]);
const FOLLOWED_REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface HttpProbeOptions {
  prober: HttpGetProber;
  /** The pod IP or `localhost`. */
  destination: string;
  incoming: http.IncomingMessage;
  statusPort: number;
  http2: boolean;
  net: ProbeNetwork;
}

export interface HttpProbeResult {
  status: number;
  body: Buffer;
  /** Set when the probe failed in transport (status 500). */
  error?: string;
}

/** SPEC §6.3: the incoming Host, with the status port replaced by the app port. */
export function rewriteHost(incomingHost: string | undefined, statusPort: number, appPort: number): string | undefined {
  if (!incomingHost) return undefined;
  const m = /^(\[[^\]]*\]|[^:[\]]*):(\d+)$/.exec(incomingHost);
  if (m && Number(m[2]) === statusPort) return `${m[1]}:${appPort}`;
  return incomingHost;
}

export function probeUrl(prober: HttpGetProber, destination: string): URL {
  const host = net.isIP(destination) === 6 ? `[${destination}]` : destination;
  return new URL(`${prober.scheme}://${host}:${prober.port}${prober.path}`);
}

interface Hop {
  status: number;
  location: string | undefined;
  body: Buffer;
}

export async function probeHttpGet(options: HttpProbeOptions): Promise<HttpProbeResult> {
  const { prober } = options;
  const disposables: { destroy(): void }[] = [];
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new Error(`probe timed out after ${prober.timeoutMs} ms`)), prober.timeoutMs);
  try {
    const first = probeUrl(prober, options.destination);
    let url = first;
    let hostHeader = rewriteHost(options.incoming.headers.host, options.statusPort, prober.port) ?? first.host;
    const headers = copyHeaders(options.incoming);
    for (let requests = 1; ; requests++) {
      const hop = await withAbort(fetchOnce(url, hostHeader, headers, options, ctl.signal, disposables), ctl.signal);
      if (FOLLOWED_REDIRECTS.has(hop.status) && hop.location !== undefined) {
        let next: URL;
        try {
          next = new URL(hop.location, url);
        } catch {
          throw new Error(`failed to parse Location header ${JSON.stringify(hop.location)}`);
        }
        if (next.hostname !== first.hostname) return { status: 200, body: Buffer.alloc(0) };
        if (requests >= MAX_PROBE_REQUESTS) throw new Error(`stopped after ${MAX_PROBE_REQUESTS} redirects`);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new Error(`unsupported protocol scheme in redirect to ${next.href}`);
        // Go keeps a custom Host only through a relative redirect.
        if (/^[a-z][a-z0-9+.-]*:/i.test(hop.location) || hop.location.startsWith('//')) hostHeader = next.host;
        url = next;
        continue;
      }
      if (hop.status >= 300 && hop.status < 400) return { status: 200, body: Buffer.alloc(0) };
      return { status: hop.status, body: hop.body };
    }
  } catch (err) {
    return { status: 500, body: Buffer.alloc(0), error: describeError(ctl.signal.aborted ? ctl.signal.reason : err) };
  } finally {
    clearTimeout(timer);
    for (const d of disposables) d.destroy();
  }
}

function copyHeaders(incoming: http.IncomingMessage): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(incoming.headersDistinct)) {
    if (HOP_BY_HOP.has(name) || values === undefined) continue;
    out[name] = values;
  }
  return out;
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

async function fetchOnce(
  url: URL,
  hostHeader: string,
  headers: Record<string, string[]>,
  options: HttpProbeOptions,
  signal: AbortSignal,
  disposables: { destroy(): void }[],
): Promise<Hop> {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const endpoint = await options.net.endpoint(hostname);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const path = `${url.pathname}${url.search}`;
  const connectOpts = {
    host: endpoint.address,
    port,
    family: endpoint.family,
    ...(endpoint.localAddress ? { localAddress: endpoint.localAddress } : {}),
  };
  if (url.protocol === 'http:') {
    const socket = net.connect(connectOpts);
    socket.on('error', noop); // reported through the request
    disposables.push(socket);
    return http1(socket, path, hostHeader, headers, disposables);
  }
  // Both loaded before connecting: once the handshake is done the session must take the socket
  // over at once.
  const [tls, http2] = await Promise.all([import('node:tls'), options.http2 ? import('node:http2') : undefined]);
  if (signal.aborted) throw signal.reason;
  const socket = tls.connect({
    ...connectOpts,
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
  if (socket.alpnProtocol === 'h2' && http2) return h2(http2, socket, url, path, hostHeader, headers, disposables);
  return http1(socket, path, hostHeader, headers, disposables);
}

function http1(socket: Duplex, path: string, hostHeader: string, headers: Record<string, string[]>, disposables: { destroy(): void }[]): Promise<Hop> {
  return new Promise<Hop>((resolve, reject) => {
    const req = http.request({
      method: 'GET',
      path,
      headers: { ...headers, host: hostHeader, connection: 'close' },
      createConnection: () => socket as net.Socket,
    });
    disposables.push(req);
    req.once('error', reject);
    req.once('response', (res) => {
      readAtMost(res, MAX_PROBE_BODY_BYTES).then((body) => {
        const location = res.headers.location;
        resolve({ status: res.statusCode ?? 500, location, body });
      }, reject);
    });
    req.end();
  });
}

function h2(
  http2: Http2Module,
  socket: TLSSocket,
  url: URL,
  path: string,
  hostHeader: string,
  headers: Record<string, string[]>,
  disposables: { destroy(): void }[],
): Promise<Hop> {
  return new Promise<Hop>((resolve, reject) => {
    const session = http2.connect(url.origin, { createConnection: () => socket });
    disposables.push(session);
    session.on('error', noop);
    session.once('error', reject);
    const h2headers: OutgoingHttpHeaders = { ...headers };
    delete h2headers.connection;
    const stream = session.request(
      { ...h2headers, ':method': 'GET', ':path': path, ':scheme': 'https', ':authority': hostHeader },
      { endStream: true },
    );
    stream.on('error', noop);
    stream.once('error', reject);
    stream.once('response', (resHeaders) => {
      const status = Number(resHeaders[':status']);
      const loc = resHeaders.location;
      readAtMost(stream, MAX_PROBE_BODY_BYTES).then((body) => resolve({ status, location: Array.isArray(loc) ? loc[0] : loc, body }), reject);
    });
  });
}

/** Reads at most `max` bytes of a body; a body error after some bytes keeps what was read. */
function readAtMost(stream: NodeJS.ReadableStream & { destroy(): void }, max: number): Promise<Buffer> {
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
      stream.on('error', () => undefined);
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
