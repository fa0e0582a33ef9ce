/**
 * The xDS proxy (SPEC §7.1, §7.2): an ADS server for Envoy on the UDS `<configPath>/XDS` that
 * forwards every Envoy stream to one upstream stream of the same kind (SotW↔SotW,
 * Delta↔Delta) to the control plane, dialled at that moment.
 * This file is the server (downstream side); each stream is a `ProxyConnection`
 * (./connection.ts); statuses are mapped in ./grpc-status.ts.
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
 * - `agentType` (the NDS name table, docs/DNS.md): subscribed on every stream right after
 *   Envoy's first LDS request; its responses are applied and ACKed/NACKed here, never forwarded.
 * - `close()` ends the active stream (UNAVAILABLE), stops the server and removes the socket.
 *   Idempotent; concurrent callers share one promise.
 */
import { XdsActivity } from './activity.js';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import type { Logger } from '../log.js';
import { AgentError, describeError } from '../errors.js';
import { ADS_METHOD, type HealthReport, type XdsNode, type XdsStreamKind } from './messages.js';
import { Status } from './grpc-wire.js';
import { OK, respondTrailersOnly } from './grpc-status.js';
import { type ConnectionHost, ProxyConnection, nodeKey } from './connection.js';
import type { XdsUpstreamSettings } from './upstream.js';
import type { AgentTypeHandler } from './agent-types.js';
import type { TerminationType, XdsProxyMetrics } from './metrics.js';

export type { HealthReport, XdsNode, XdsStreamKind } from './messages.js';
export type { EndStatus } from './grpc-status.js';
export { expectedTermination } from './grpc-status.js';

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
  /**
   * A type the agent consumes itself (the NDS name table): requested on every stream right after
   * Envoy's first LDS request; its responses are applied, ACKed/NACKed, and never reach Envoy.
   */
  agentType?: AgentTypeHandler;
}

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

export class XdsProxy implements ConnectionHost {
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
  /** ACKs/NACKs per type and upstream connects, for the status page. */
  readonly activity = new XdsActivity();
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

  /** Status provider facts (status.schema.json, section `controlPlane`). */
  snapshot(): Record<string, unknown> {
    const st = this.status();
    return {
      upstreamAddress: this.options.upstream.address,
      plaintext: this.options.upstream.plaintext,
      connected: st.active?.upstreamConnected ?? false,
      streamKind: st.active?.kind ?? null,
      envoyStreams: st.streams,
      streamResets: st.resets,
      ...this.activity.snapshot(),
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
