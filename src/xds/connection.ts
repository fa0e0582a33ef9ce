/**
 * One Envoy stream of the xDS proxy and its upstream stream to the control plane: the dial,
 * cut-through forwarding of responses (with backpressure; the agent's own type, NDS, is split
 * out and consumed here), Envoy's requests (node on the first, NDS subscription and health after
 * the first LDS request), and the one way out, `close(status)`.
 */
import type { XdsActivity } from './activity.js';
import http2 from 'node:http2';
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import { AGENT_VERSION } from '../version.js';
import { ADS_METHOD, LISTENER_TYPE, healthRequest, replaceNode, shortType, summarizeRequest, type HealthReport, type XdsNode, type XdsStreamKind } from './messages.js';
import { FrameScanner, MessageReader, Status, frameMessage, statusName } from './grpc-wire.js';
import { GRPC_HEADERS, OK, expectedTermination, respondTrailersOnly, statusFromHeaders, statusFromHttp, statusHeaders, type EndStatus } from './grpc-status.js';
import { UPSTREAM_WINDOW_BYTES, XdsDialError, upstreamDial, type XdsUpstreamSettings } from './upstream.js';
import type { TerminationType, XdsProxyMetrics } from './metrics.js';
import { ResponseRouter, ackRequest, readConsumed, subscribeRequest, type AgentTypeHandler } from './agent-types.js';

/** What a connection needs from the server that accepted it. */
export interface ConnectionHost {
  readonly log: Logger;
  readonly dialTimeoutMs: number;
  readonly keepaliveMs: number;
  readonly options: {
    upstream: Pick<XdsUpstreamSettings, 'address' | 'plaintext' | 'rootCaPath' | 'serverName'>;
    headers: () => Promise<Record<string, string>> | Record<string, string>;
    node: () => XdsNode;
    metrics?: XdsProxyMetrics;
    /** A type the agent consumes (NDS): subscribed after the first LDS request, never forwarded. */
    agentType?: AgentTypeHandler;
  };
  latestHealth(): HealthReport | undefined;
  /** Status-page record of ACKs/NACKs and upstream connects (optional). */
  readonly activity?: XdsActivity;
  countTermination(side: 'istiod' | 'envoy', type: TerminationType): void;
  /** Called once when the connection has closed. */
  unregister(conn: ProxyConnection): void;
}

/** Bytes of responses that may wait for Envoy before the upstream stream is paused. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** Identity of a node as sent upstream (to tell whether a stream already carries the current one). */
export function nodeKey(node: XdsNode): string {
  return JSON.stringify(node);
}

/**
 * One Envoy stream and its upstream stream. States: dialing → open (upstream session connected)
 * → closed. `close()` is the only exit and is idempotent: it cancels the upstream stream, closes
 * its session, ends Envoy's stream with the given status and unregisters from the proxy.
 */
export class ProxyConnection {
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
  private readonly router: ResponseRouter | undefined;

  constructor(
    private readonly proxy: ConnectionHost,
    readonly id: number,
    readonly kind: XdsStreamKind,
    private readonly downstream: http2.ServerHttp2Stream,
  ) {
    this.log = proxy.log;
    const t = proxy.options.agentType;
    this.router = t ? new ResponseRouter(kind, t.typeUrl) : undefined;
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
    this.proxy.activity?.upstreamConnected();
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
    if (!this.router) {
      this.writeDownstream(chunk);
      return;
    }
    for (const r of this.router.push(chunk)) {
      if ('forward' in r) this.writeDownstream(r.forward);
      else this.consume(r.consume);
      if (this.closed) return;
    }
  }

  /** A response of the agent's own type: applied here, ACKed or NACKed upstream, never forwarded. */
  private consume(msg: Buffer): void {
    const handler = this.proxy.options.agentType as AgentTypeHandler;
    let version = '';
    let nonce = '';
    let error: string | undefined;
    try {
      const c = readConsumed(this.kind, msg);
      version = c.version;
      nonce = c.nonce;
      if (c.resources === 0 || c.first === undefined) {
        this.log.debug(`xDS stream ${this.id}: empty ${shortType(handler.typeUrl)} response ignored`);
        return;
      }
      handler.apply(c.first);
    } catch (err) {
      error = describeError(err);
      this.log.warn(`xDS stream ${this.id}: rejecting ${shortType(handler.typeUrl)} response (nonce ${nonce || '-'}): ${error}`);
    }
    this.writeUpstream(ackRequest(this.kind, handler.typeUrl, version, nonce, error), error === undefined ? 'ACK' : 'NACK');
  }

  private writeDownstream(chunk: Buffer): void {
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
    this.proxy.activity?.observe(this.kind, req);
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
      const t = this.proxy.options.agentType;
      if (t) this.writeUpstream(subscribeRequest(this.kind, t.typeUrl), t.typeUrl);
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
