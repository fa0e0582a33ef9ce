/**
 * The xDS proxy (SPEC §7.1, §7.2): an ADS server for Envoy on the UDS `<configPath>/XDS` that
 * forwards every Envoy stream to one upstream stream of the same kind (SotW↔SotW,
 * Delta↔Delta) to the control plane, dialled at that moment.
 *
 * It speaks gRPC's HTTP/2 protocol itself (node:http2) so that payloads are never decoded:
 * - Responses are cut through: each HTTP/2 DATA chunk from the control plane is written to Envoy
 *   as it arrives; message boundaries are followed (for counting) but payloads are never
 *   buffered, copied or parsed. Backpressure from Envoy pauses the upstream stream.
 * - Envoy's requests (small) are reassembled; only their top-level field headers are read (type
 *   URL). The first request of each upstream stream gets the agent's current node (`node()`);
 *   nothing else is rewritten.
 *
 * Guarantees:
 * - One Envoy stream at a time: a new stream ends the previous one (status OK, as Istio).
 * - Either side ending ends both. A dial that fails (token or root CA file missing, connection
 *   refused, TLS failure, no connection within `dialTimeoutMs`) ends Envoy's stream with
 *   UNAVAILABLE naming the cause, and Envoy retries with its own backoff. Upstream statuses are
 *   passed on to Envoy as they are. Nothing a peer does throws out of this class.
 * - `resetEnvoyStream` ends Envoy's stream with UNAVAILABLE at most once per `resetIntervalMs`;
 *   a request inside the interval is deferred to its end (the latest reason wins), and skipped if
 *   the stream by then already carries the current node.
 * - Health reports (`sendHealth`): the latest one is sent at once on an open stream, and on every
 *   new stream right after Envoy's first LDS request has been forwarded, never before.
 * - `close()` ends the active stream (UNAVAILABLE), stops the server and removes the socket.
 *   Idempotent; concurrent callers share one promise.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import type { Logger } from '../log.js';
import { AgentError, describeError } from '../errors.js';
import { AGENT_VERSION } from '../version.js';
import { ADS_METHOD, LISTENER_TYPE, healthRequest, replaceNode, shortType, summarizeRequest, type HealthReport, type XdsNode, type XdsStreamKind } from './messages.js';
import { FrameScanner, MessageReader, Status, decodeGrpcMessage, encodeGrpcMessage, frameMessage, statusName } from './grpc-wire.js';
import { UPSTREAM_WINDOW_BYTES, XdsDialError, upstreamDial, type XdsUpstreamSettings } from './upstream.js';
import type { TerminationType, XdsProxyMetrics } from './metrics.js';

export type { HealthReport, XdsNode, XdsStreamKind } from './messages.js';

export interface XdsProxyOptions {
  /** Absolute path of the UDS Envoy dials (`<configPath>/XDS`); a stale socket is replaced. */
  socketPath: string;
  upstream: Pick<XdsUpstreamSettings, 'address' | 'plaintext' | 'rootCaPath' | 'serverName'>;
  /** Metadata for each upstream stream, computed when it is dialled (may throw `XdsDialError`). */
  headers: () => Promise<Record<string, string>> | Record<string, string>;
  /** The current node, read for the first request of each upstream stream. */
  node: () => XdsNode;
  log: Logger;
  metrics?: XdsProxyMetrics;
  /** Default 5000 (SPEC §7.1). */
  dialTimeoutMs?: number;
  /** Minimum time between two `resetEnvoyStream` resets; default 5000 (SPEC §7.2). */
  resetIntervalMs?: number;
  /** HTTP/2 keepalive ping on the upstream session; default 30000 (0 = off), 10 s to answer. */
  keepaliveMs?: number;
}

/** Bytes of responses that may wait for Envoy before the upstream stream is paused. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface XdsProxyStatus {
  /** The active Envoy stream, if any. */
  active?: { id: number; kind: XdsStreamKind; upstreamConnected: boolean; ldsForwarded: boolean };
  /** Envoy streams accepted since start. */
  streams: number;
  /** Streams ended by `resetEnvoyStream`. */
  resets: number;
  /** A deferred reset is waiting for the end of the interval. */
  resetPending: boolean;
}

export interface EndStatus {
  code: number;
  details: string;
}
const OK: EndStatus = { code: Status.OK, details: '' };

export class XdsProxy {
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private active: ProxyConnection | undefined;
  private nextId = 1;
  private streams = 0;
  private resets = 0;
  private health: HealthReport | undefined;
  private lastResetAt = -Infinity;
  private resetTimer: NodeJS.Timeout | undefined;
  private pendingResetReason = '';
  private closing: Promise<void> | undefined;
  readonly log: Logger;
  readonly dialTimeoutMs: number;
  readonly keepaliveMs: number;
  private readonly resetIntervalMs: number;

  private constructor(readonly options: XdsProxyOptions) {
    this.log = options.log;
    this.dialTimeoutMs = options.dialTimeoutMs ?? 5000;
    this.resetIntervalMs = options.resetIntervalMs ?? 5000;
    this.keepaliveMs = options.keepaliveMs ?? 30_000;
    this.server = http2.createServer({ maxSessionMemory: 512 });
    this.server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
      s.on('error', () => undefined);
    });
    this.server.on('sessionError', () => undefined); // each session's own handler logs nothing: its streams report
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  /** Binds the UDS (replacing a stale socket) and serves. Rejects with an AgentError naming the path. */
  static async start(options: XdsProxyOptions): Promise<XdsProxy> {
    const proxy = new XdsProxy(options);
    const socket = options.socketPath;
    try {
      fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o700 });
      removeStaleSocket(socket);
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        proxy.server.once('error', onError);
        proxy.server.listen(socket, () => {
          proxy.server.off('error', onError);
          resolve();
        });
      });
    } catch (err) {
      proxy.server.close();
      throw new AgentError('XDS_PROXY_LISTEN_FAILED', `xDS proxy: cannot listen on ${socket}: ${describeError(err)}`, { cause: err });
    }
    proxy.server.on('error', (err) => proxy.log.error(`xDS proxy server error: ${describeError(err)}`));
    const u = options.upstream;
    proxy.log.info(`xDS proxy listening on ${socket}, upstream ${u.address} (${u.plaintext ? 'plaintext' : `TLS, SAN ${u.serverName ?? ''}, root CA ${u.rootCaPath ?? ''}`})`);
    return proxy;
  }

  status(): XdsProxyStatus {
    const a = this.active;
    return {
      ...(a ? { active: { id: a.id, kind: a.kind, upstreamConnected: a.upstreamConnected, ldsForwarded: a.ldsForwarded } } : {}),
      streams: this.streams,
      resets: this.resets,
      resetPending: this.resetTimer !== undefined,
    };
  }

  /** The latest health report, to be sent now (if a stream is ready for it) and on every new stream. */
  sendHealth(report: HealthReport): void {
    this.health = report;
    this.log.info(`health report: ${report.healthy ? 'healthy' : `unhealthy: ${report.message}`}`);
    this.active?.sendHealth(report);
  }

  latestHealth(): HealthReport | undefined {
    return this.health;
  }

  /**
   * Ends Envoy's xDS stream with UNAVAILABLE so Envoy re-subscribes and the control plane sees the
   * current node (SPEC §7.2). Rate-limited; see the class comment.
   */
  resetEnvoyStream(reason: string): void {
    if (this.closing) return;
    this.pendingResetReason = reason;
    if (this.resetTimer) return;
    const wait = this.lastResetAt + this.resetIntervalMs - performance.now();
    if (wait <= 0) {
      this.doReset(reason);
      return;
    }
    this.log.debug(`xDS stream reset deferred by ${Math.ceil(wait)}ms (at most one per ${this.resetIntervalMs}ms): ${reason}`);
    this.resetTimer = setTimeout(() => {
      this.resetTimer = undefined;
      this.doReset(this.pendingResetReason);
    }, wait);
    this.resetTimer.unref();
  }

  private doReset(reason: string): void {
    const c = this.active;
    if (!c || this.closing) return;
    if (c.sentNodeKey !== undefined && c.sentNodeKey === nodeKey(this.options.node())) {
      this.log.debug(`xDS stream ${c.id} already carries the current node; not resetting (${reason})`);
      return;
    }
    this.lastResetAt = performance.now();
    this.resets++;
    this.log.info(`ending Envoy's xDS stream ${c.id} with UNAVAILABLE so it reconnects: ${reason}`);
    c.close({ code: Status.UNAVAILABLE, details: reason });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const p = headers[':path'];
    const kind: XdsStreamKind | undefined = p === ADS_METHOD.sotw ? 'sotw' : p === ADS_METHOD.delta ? 'delta' : undefined;
    if (headers[':method'] !== 'POST' || kind === undefined) {
      respondTrailersOnly(stream, { code: Status.UNIMPLEMENTED, details: `unknown method ${String(p)}` });
      return;
    }
    if (this.closing) {
      respondTrailersOnly(stream, { code: Status.UNAVAILABLE, details: 'the agent is shutting down' });
      return;
    }
    const conn = new ProxyConnection(this, this.nextId++, kind, stream);
    this.streams++;
    const prev = this.active;
    this.active = conn;
    if (prev) {
      this.log.warn(`xDS stream ${conn.id} from Envoy replaces stream ${prev.id}; closing the previous one`);
      prev.close(OK);
    }
    this.log.debug(`accepted xDS stream ${conn.id} (${kind}) from Envoy, forwarding to upstream ${this.options.upstream.address}`);
    conn.start();
  }

  /** Called by a connection when it has closed. */
  unregister(conn: ProxyConnection): void {
    if (this.active === conn) this.active = undefined;
  }

  countTermination(side: 'istiod' | 'envoy', type: TerminationType): void {
    const m = this.options.metrics;
    if (!m) return;
    (side === 'istiod' ? m.istiodTerminations : m.envoyTerminations).labels(type).inc();
  }

  /** Ends the active stream, stops serving and removes the socket. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.resetTimer);
      this.resetTimer = undefined;
      this.active?.close({ code: Status.UNAVAILABLE, details: 'the agent is shutting down' });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const s of this.sessions) s.destroy();
        }, 1000);
        timer.unref();
        this.server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const s of this.sessions) s.close();
      });
      try {
        if (fs.lstatSync(this.options.socketPath).isSocket()) fs.unlinkSync(this.options.socketPath);
      } catch {
        // already gone
      }
      this.log.debug('xDS proxy closed');
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Removes a leftover socket at `p`; any other kind of file is an error. */
function removeStaleSocket(p: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${p} exists and is not a socket`);
  fs.unlinkSync(p);
}

function nodeKey(node: XdsNode): string {
  return JSON.stringify(node);
}

const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' } as const;

function statusHeaders(s: EndStatus): Record<string, string> {
  return { 'grpc-status': String(s.code), ...(s.details ? { 'grpc-message': encodeGrpcMessage(s.details) } : {}) };
}

function respondTrailersOnly(stream: http2.ServerHttp2Stream, s: EndStatus): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  try {
    stream.respond({ ...GRPC_HEADERS, ...statusHeaders(s) }, { endStream: true });
  } catch {
    // the peer is gone
  }
}

/** gRPC's mapping of a non-200 HTTP status (PROTOCOL-HTTP2 / http-grpc-status-mapping). */
function statusFromHttp(code: number): number {
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

function statusFromHeaders(h: http2.IncomingHttpHeaders): EndStatus | undefined {
  const raw = h['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  const msg = h['grpc-message'];
  return { code: Number.isInteger(code) ? code : Status.UNKNOWN, details: typeof msg === 'string' ? decodeGrpcMessage(msg) : '' };
}

/**
 * One Envoy stream and its upstream stream. States: dialing → open (upstream session connected)
 * → closed. `close()` is the only exit and is idempotent: it cancels the upstream stream, closes
 * its session, ends Envoy's stream with the given status and unregisters from the proxy.
 */
class ProxyConnection {
  private state: 'dialing' | 'open' | 'closed' = 'dialing';
  private session: http2.ClientHttp2Session | undefined;
  private upstream: http2.ClientHttp2Stream | undefined;
  private readonly queue: Buffer[] = [];
  private readonly reader = new MessageReader();
  private readonly scanner = new FrameScanner();
  private dialTimer: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private upstreamStatus: EndStatus | undefined;
  private paused = false;
  private upstreamError: string | undefined;
  private firstForwarded = false;
  ldsForwarded = false;
  /** JSON of the node put on this stream's first upstream request. */
  sentNodeKey: string | undefined;
  private readonly log: Logger;

  constructor(
    private readonly proxy: XdsProxy,
    readonly id: number,
    readonly kind: XdsStreamKind,
    private readonly downstream: http2.ServerHttp2Stream,
  ) {
    this.log = proxy.log;
  }

  get upstreamConnected(): boolean {
    return this.state === 'open';
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  start(): void {
    const d = this.downstream;
    d.on('data', (chunk: Buffer) => this.onDownstreamData(chunk));
    d.on('end', () => this.envoyGone('cancelled', 'Envoy closed the stream'));
    d.on('aborted', () => this.envoyGone('cancelled', 'Envoy cancelled the stream'));
    d.on('error', (err: Error) => this.envoyGone('error', describeError(err)));
    d.on('close', () => {
      const code = d.rstCode;
      if (code === http2.constants.NGHTTP2_CANCEL || code === http2.constants.NGHTTP2_NO_ERROR) this.envoyGone('cancelled', 'Envoy closed the stream');
      else this.envoyGone('error', `stream reset by Envoy (HTTP/2 error ${code})`);
    });
    void this.dial();
  }

  private envoyGone(type: TerminationType, why: string): void {
    if (this.state === 'closed') return;
    if (type === 'error') this.log.warn(`xDS stream ${this.id}: downstream terminated with unexpected error: ${why}`);
    else this.log.debug(`xDS stream ${this.id}: downstream terminated: ${why}`);
    this.proxy.countTermination('envoy', type);
    this.close(OK);
  }

  // ---- upstream --------------------------------------------------------------------------------

  private async dial(): Promise<void> {
    const { options } = this.proxy;
    let headers: Record<string, string>;
    let dial: Awaited<ReturnType<typeof upstreamDial>>;
    try {
      headers = await options.headers();
      dial = await upstreamDial(options.upstream);
    } catch (err) {
      this.dialFailed(err instanceof XdsDialError ? err.message : describeError(err));
      return;
    }
    if (this.state === 'closed') return;
    const session = http2.connect(dial.url, dial.options);
    this.session = session;
    this.dialTimer = setTimeout(() => this.dialFailed(`no connection within ${this.proxy.dialTimeoutMs}ms (dial timeout)`), this.proxy.dialTimeoutMs);
    session.on('error', (err) => {
      if (this.state === 'dialing') this.dialFailed(describeError(err));
      else this.upstreamError = describeError(err);
    });
    session.once('connect', () => this.connected(session));
    const reqHeaders: http2.OutgoingHttpHeaders = {
      ...headers,
      ':method': 'POST',
      ':path': ADS_METHOD[this.kind],
      ':authority': dial.authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': `pilot-agent/${AGENT_VERSION}`,
    };
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(reqHeaders);
    } catch (err) {
      this.dialFailed(describeError(err));
      return;
    }
    this.upstream = req;
    req.on('response', (h) => this.onUpstreamHeaders(h));
    req.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    req.on('trailers', (t) => (this.upstreamStatus ??= statusFromHeaders(t)));
    req.on('error', (err) => (this.upstreamError ??= describeError(err)));
    // The upstream is done when its side ends (status in trailers), or when the stream dies.
    req.on('end', () => this.onUpstreamClose(req));
    req.on('close', () => this.onUpstreamClose(req));
    for (const msg of this.queue.splice(0)) this.forward(msg);
  }

  private connected(session: http2.ClientHttp2Session): void {
    if (this.state !== 'dialing') return;
    clearTimeout(this.dialTimer);
    this.state = 'open';
    try {
      session.setLocalWindowSize(UPSTREAM_WINDOW_BYTES); // the connection window too, not only each stream's
    } catch {
      // the session is already going away
    }
    this.log.info(`xDS stream ${this.id} (${this.kind}): connected to upstream XDS server ${this.proxy.options.upstream.address}`);
    const every = this.proxy.keepaliveMs;
    if (every > 0) {
      this.keepalive = setInterval(() => {
        const timer = setTimeout(() => session.destroy(new Error(`keepalive ping not answered within 10s`)), 10_000);
        timer.unref();
        try {
          session.ping(() => clearTimeout(timer));
        } catch {
          clearTimeout(timer);
        }
      }, every);
      this.keepalive.unref();
    }
  }

  private dialFailed(cause: string): void {
    if (this.state !== 'dialing') return;
    const address = this.proxy.options.upstream.address;
    this.proxy.options.metrics?.istiodConnectionFailures.inc();
    this.log.error(`xDS stream ${this.id}: failed to connect to upstream ${address}: ${cause}`);
    this.close({ code: Status.UNAVAILABLE, details: `failed to connect to upstream ${address}: ${cause}` });
  }

  private onUpstreamHeaders(h: http2.IncomingHttpHeaders): void {
    if (this.state === 'closed') return;
    const httpStatus = Number(h[':status']);
    if (httpStatus !== 200) {
      this.upstreamStatus ??= { code: statusFromHttp(httpStatus), details: `upstream answered HTTP ${httpStatus}` };
      return;
    }
    const trailersOnly = statusFromHeaders(h);
    if (trailersOnly) {
      this.upstreamStatus ??= trailersOnly;
      return;
    }
    this.sendDownstreamHeaders();
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    const done = this.scanner.push(chunk);
    if (done.length > 0) {
      this.proxy.options.metrics?.responses.inc(done.length);
      if (this.log.isLevelEnabled('debug')) for (const n of done) this.log.debug(`xDS stream ${this.id}: upstream response of ${n} bytes`);
    }
    this.sendDownstreamHeaders();
    const d = this.downstream;
    if (d.destroyed || d.closed) return;
    d.write(chunk);
    // Node's 16 KiB high-water mark would stop the upstream after every chunk; allow a few MiB in flight.
    if (d.writableLength > MAX_BUFFERED_BYTES && !this.paused) {
      const up = this.upstream;
      this.paused = true;
      up?.pause();
      d.once('drain', () => {
        this.paused = false;
        up?.resume();
      });
    }
  }

  private onUpstreamClose(req: http2.ClientHttp2Stream): void {
    if (this.state === 'closed') return;
    let s = this.upstreamStatus;
    let expected: boolean;
    if (s) {
      expected = expectedTermination(s);
    } else {
      // No status: the stream was reset or the connection went away (istiod restarting, a network
      // cut). Envoy gets UNAVAILABLE; as in Istio, a plain close or cancel is an expected end.
      const rst = req.rstCode ?? http2.constants.NGHTTP2_NO_ERROR;
      const reset = rst !== http2.constants.NGHTTP2_NO_ERROR && rst !== http2.constants.NGHTTP2_CANCEL;
      const why = this.upstreamError ?? (reset ? `stream reset by upstream (HTTP/2 error ${rst})` : 'upstream connection closed');
      s = { code: Status.UNAVAILABLE, details: why };
      expected = !reset && this.upstreamError === undefined;
    }
    if (this.state === 'dialing') {
      this.dialFailed(s.details || statusName(s.code));
      return;
    }
    this.proxy.countTermination('istiod', expected ? 'cancelled' : 'error');
    if (expected) this.log.info(`xDS stream ${this.id}: upstream terminated: ${statusName(s.code)}${s.details ? `: ${s.details}` : ''}`);
    else this.log.warn(`xDS stream ${this.id}: upstream terminated with unexpected error: ${statusName(s.code)}: ${s.details}`);
    this.close(s);
  }

  // ---- requests (Envoy → control plane) ------------------------------------------------------

  private onDownstreamData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    let messages: Buffer[];
    try {
      messages = this.reader.push(chunk);
    } catch (err) {
      this.malformedRequest(describeError(err));
      return;
    }
    for (const m of messages) {
      if (this.closed) return; // forwarding can end the connection (a malformed request)
      if (!this.upstream) this.queue.push(m);
      else this.forward(m);
    }
  }

  private malformedRequest(why: string): void {
    this.log.warn(`xDS stream ${this.id}: malformed request from Envoy: ${why}`);
    this.proxy.countTermination('envoy', 'error');
    this.close({ code: Status.INVALID_ARGUMENT, details: `malformed request: ${why}` });
  }

  private forward(req: Buffer): void {
    let typeUrl: string;
    try {
      typeUrl = summarizeRequest(this.kind, req).typeUrl;
    } catch (err) {
      this.malformedRequest(describeError(err));
      return;
    }
    let out = req;
    if (!this.firstForwarded) {
      this.firstForwarded = true;
      const node = this.proxy.options.node();
      this.sentNodeKey = nodeKey(node);
      out = replaceNode(this.kind, req, node);
    }
    this.writeUpstream(out, typeUrl);
    if (!this.ldsForwarded && typeUrl === LISTENER_TYPE) {
      this.ldsForwarded = true;
      const h = this.proxy.latestHealth();
      if (h) this.writeUpstream(healthRequest(this.kind, h), 'health');
    }
  }

  sendHealth(report: HealthReport): void {
    if (this.state === 'closed' || !this.ldsForwarded) return;
    this.writeUpstream(healthRequest(this.kind, report), 'health');
  }

  private writeUpstream(msg: Buffer, what: string): void {
    const up = this.upstream;
    if (!up || this.state === 'closed' || up.destroyed) return;
    this.proxy.options.metrics?.requests.inc();
    if (this.log.isLevelEnabled('debug')) this.log.debug(`xDS stream ${this.id}: request ${shortType(what)}`);
    up.write(frameMessage(msg));
  }

  // ---- ending --------------------------------------------------------------------------------

  private headersSent = false;

  private sendDownstreamHeaders(): void {
    const d = this.downstream;
    if (this.headersSent || d.destroyed || d.closed || d.headersSent) return;
    this.headersSent = true;
    try {
      d.respond(GRPC_HEADERS, { waitForTrailers: true });
    } catch {
      // Envoy is gone; its 'close' event ends the connection
    }
  }

  /** Ends both sides once. `status` is what Envoy's stream ends with. */
  close(status: EndStatus): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.dialTimer);
    clearInterval(this.keepalive);
    this.queue.length = 0;
    const up = this.upstream;
    if (up) {
      up.removeAllListeners('data');
      up.on('error', () => undefined);
      if (!up.closed && !up.destroyed) up.close(http2.constants.NGHTTP2_CANCEL);
    }
    if (this.session) {
      this.session.on('error', () => undefined);
      this.session.destroy();
    }
    const d = this.downstream;
    if (!d.destroyed && !d.closed) {
      if (!this.headersSent && !d.headersSent) {
        respondTrailersOnly(d, status);
      } else {
        d.once('wantTrailers', () => {
          try {
            d.sendTrailers(statusHeaders(status));
          } catch {
            // Envoy is gone
          }
        });
        d.end();
      }
    }
    this.proxy.unregister(this);
  }
}
