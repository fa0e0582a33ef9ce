/**
 * One static listener of the double: a real listening socket with Envoy's observable
 * behaviour for an HTTP connection manager (route by virtual host and path to a static
 * cluster, proxy the request; 404 with no route; 503 when the upstream fails) or a TCP proxy.
 *
 * Contract:
 * - `bind()` binds at once (so the port is known while Envoy is still initializing) but
 *   connections wait in the accept queue until `startAccepting()` (Envoy's workers start);
 * - connections are counted for real: `listener.<addr>_<port>.downstream_cx_active` (and the
 *   per-worker gauge of the worker it was assigned to, round robin) drop when the socket closes;
 * - `stop()` closes the listening socket only (Envoy's stopListeners): open connections live on;
 * - `drainStarted()` closes idle HTTP connections and makes later responses `connection: close`,
 *   unless the slow-drain knob holds connections open;
 * - `destroy()` closes everything. Errors on sockets never escape.
 */
import http from 'node:http';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { addressString, type Address, type ClusterSpec, type ListenerSpec, type RouteSpec, type VirtualHostSpec } from './bootstrap.js';
import type { EnvoyLog } from './log.js';
import type { Stat, StatsStore } from './stats.js';

export interface ListenerContext {
  stats: StatsStore;
  log: EnvoyLog;
  concurrency: number;
  clusters: ReadonlyMap<string, ClusterSpec>;
  /** Is a drain under way that covers this listener? */
  draining(listener: StaticListener): boolean;
  slowDrain(): boolean;
  /** Per-cluster upstream HTTP agent (keep-alive, destroyed at shutdown). */
  agentFor(cluster: ClusterSpec): http.Agent;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization']);

/** `listener.<x>.` scope: the listener's stat_prefix, else its bound address with ':' → '_'. */
export function listenerStatScope(spec: ListenerSpec, bound: Address): string {
  if (spec.statPrefix !== '') return `listener.${spec.statPrefix}`;
  return `listener.${addressString(bound).replace(/:/g, '_')}`;
}

export class StaticListener {
  private server: net.Server | undefined;
  private http: http.Server | undefined;
  private accepting = false;
  private readonly queued: net.Socket[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly busy = new WeakMap<net.Socket, number>();
  private nextWorker = 0;
  private rr = new Map<string, number>();
  bound: Address | undefined;
  stopped = false;
  private scope = '';
  private cxActive!: Stat;
  private cxTotal!: Stat;
  private workerActive: Stat[] = [];
  private workerTotal: Stat[] = [];

  constructor(
    readonly spec: ListenerSpec,
    private readonly ctx: ListenerContext,
  ) {}

  get activeConnections(): number {
    return this.sockets.size;
  }

  /** Binds the socket; rejects with Envoy's `cannot bind '<addr>': <reason>`. */
  async bind(): Promise<void> {
    const addr = this.spec.address;
    if (!addr) return;
    const server = net.createServer({ pauseOnConnect: true });
    this.server = server;
    server.on('connection', (socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new Error(`cannot bind '${addressString(addr)}': ${describeErrno(err)}`));
      };
      server.once('error', onError);
      const done = (): void => {
        server.off('error', onError);
        server.on('error', (err) => this.ctx.log.error('conn_handler', `listener '${this.spec.name}' error: ${err.message}`));
        resolve();
      };
      if (addr.kind === 'pipe') server.listen({ path: addr.path, backlog: 1024 }, done);
      else server.listen({ host: addr.host, port: addr.port, backlog: 1024, ipv6Only: addr.family === 6 && !addr.ipv4Compat }, done);
    });
    const a = server.address();
    this.bound = addr.kind === 'pipe' || typeof a === 'string' || a === null ? addr : { ...addr, port: a.port };
    this.scope = listenerStatScope(this.spec, this.bound);
    const s = this.ctx.stats;
    this.cxActive = s.gauge(`${this.scope}.downstream_cx_active`);
    this.cxTotal = s.counter(`${this.scope}.downstream_cx_total`);
    s.counter(`${this.scope}.downstream_cx_destroy`);
    for (let i = 0; i < this.ctx.concurrency; i++) {
      this.workerActive.push(s.gauge(`${this.scope}.worker_${i}.downstream_cx_active`));
      this.workerTotal.push(s.counter(`${this.scope}.worker_${i}.downstream_cx_total`));
    }
    if (this.spec.filter.kind === 'http') {
      // The HCM's stats exist from its creation (unused until written).
      const p = `http.${this.spec.filter.statPrefix}`;
      for (const g of ['downstream_cx_active', 'downstream_rq_active']) s.gauge(`${p}.${g}`);
      for (const c of ['downstream_cx_total', 'downstream_rq_total', 'downstream_rq_completed', 'downstream_rq_2xx', 'downstream_rq_4xx', 'downstream_rq_5xx', 'no_route']) s.counter(`${p}.${c}`);
      this.http = this.createHttp(this.spec.filter.statPrefix, this.spec.filter.virtualHosts);
    }
  }

  /** Envoy's workers started: queued and future connections are served. */
  startAccepting(): void {
    this.accepting = true;
    for (const socket of this.queued.splice(0)) this.admit(socket);
  }

  /** Stops listening (Envoy's stopListeners); existing connections stay open. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.server?.close();
    for (const socket of this.queued.splice(0)) socket.destroy();
  }

  /** A drain covering this listener began: close idle HTTP connections (unless slow drain). */
  drainStarted(): void {
    if (this.ctx.slowDrain() || this.spec.filter.kind !== 'http') return;
    for (const socket of this.sockets) if (!this.busy.get(socket)) socket.destroy();
  }

  destroy(): void {
    this.stop();
    for (const socket of this.sockets) socket.destroy();
    this.http?.close();
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (!this.accepting) {
      this.queued.push(socket);
      socket.once('close', () => {
        const i = this.queued.indexOf(socket);
        if (i >= 0) this.queued.splice(i, 1);
      });
      return;
    }
    this.admit(socket);
  }

  private admit(socket: net.Socket): void {
    if (socket.destroyed) return;
    const worker = this.nextWorker++ % this.ctx.concurrency;
    this.sockets.add(socket);
    this.cxActive.inc();
    this.cxTotal.inc();
    this.workerActive[worker]?.inc();
    this.workerTotal[worker]?.inc();
    const httpStats = this.spec.filter.kind === 'http' ? `http.${this.spec.filter.statPrefix}` : '';
    if (httpStats) {
      this.ctx.stats.gauge(`${httpStats}.downstream_cx_active`).inc();
      this.ctx.stats.counter(`${httpStats}.downstream_cx_total`).inc();
    }
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.cxActive.dec();
      this.workerActive[worker]?.dec();
      this.ctx.stats.counter(`${this.scope}.downstream_cx_destroy`).inc();
      if (httpStats) this.ctx.stats.gauge(`${httpStats}.downstream_cx_active`).dec();
    });
    const filter = this.spec.filter;
    if (filter.kind === 'http' && this.http) {
      this.http.emit('connection', socket);
      socket.resume();
    } else if (filter.kind === 'tcp') {
      this.tcpProxy(socket, filter.cluster);
    } else {
      socket.destroy();
    }
  }

  private pickEndpoint(cluster: ClusterSpec): Address | undefined {
    if (cluster.endpoints.length === 0) return undefined;
    const i = this.rr.get(cluster.name) ?? 0;
    this.rr.set(cluster.name, i + 1);
    return cluster.endpoints[i % cluster.endpoints.length];
  }

  private tcpProxy(socket: net.Socket, clusterName: string): void {
    const cluster = this.ctx.clusters.get(clusterName);
    const ep = cluster ? this.pickEndpoint(cluster) : undefined;
    if (!cluster || !ep) {
      socket.destroy();
      return;
    }
    const upstream = ep.kind === 'pipe' ? net.connect({ path: ep.path }) : net.connect({ host: ep.host, port: ep.port });
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    socket.pipe(upstream);
    upstream.pipe(socket);
    socket.resume();
  }

  private createHttp(statPrefix: string, vhosts: VirtualHostSpec[]): http.Server {
    const server = http.createServer({ requestTimeout: 0 }, (req, res) => this.onRequest(statPrefix, vhosts, req, res));
    server.keepAliveTimeout = 0;
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\nconnection: close\r\n\r\nBad Request');
      socket.destroy();
    });
    return server;
  }

  private onRequest(statPrefix: string, vhosts: VirtualHostSpec[], req: http.IncomingMessage, res: http.ServerResponse): void {
    const s = this.ctx.stats;
    const p = `http.${statPrefix}`;
    const socket = req.socket;
    this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
    s.counter(`${p}.downstream_rq_total`).inc();
    s.counter(`${p}.downstream_rq_http1_total`).inc();
    s.gauge(`${p}.downstream_rq_active`).inc();
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    res.once('close', () => {
      this.busy.set(socket, Math.max(0, (this.busy.get(socket) ?? 1) - 1));
      s.gauge(`${p}.downstream_rq_active`).dec();
      s.counter(`${p}.downstream_rq_completed`).inc();
      s.counter(`${p}.downstream_rq_${Math.floor(res.statusCode / 100)}xx`).inc();
    });
    res.setHeader('server', 'envoy');
    if (this.ctx.draining(this) && !this.ctx.slowDrain()) res.setHeader('connection', 'close');

    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathOnly = q >= 0 ? url.slice(0, q) : url;
    const route = findRoute(vhosts, req.headers.host ?? '', pathOnly);
    if (!route) {
      s.counter(`${p}.no_route`).inc();
      res.writeHead(404, { 'content-length': '0' }).end();
      req.resume();
      return;
    }
    const action = route.action;
    if (action.kind === 'direct') {
      res.writeHead(action.status, { 'content-length': String(Buffer.byteLength(action.body)), 'content-type': 'text/plain' }).end(action.body);
      req.resume();
      return;
    }
    if (action.kind !== 'cluster') {
      res.writeHead(404, { 'content-length': '0' }).end();
      req.resume();
      return;
    }
    const cluster = this.ctx.clusters.get(action.cluster);
    if (!cluster) {
      res.writeHead(503, { 'content-length': '0' }).end();
      req.resume();
      return;
    }
    const c = `cluster.${cluster.statName}`;
    const ep = this.pickEndpoint(cluster);
    if (!ep) {
      s.counter(`${c}.upstream_cx_none_healthy`).inc();
      localReply(res, 503, 'no healthy upstream');
      req.resume();
      return;
    }
    let upstreamPath = url;
    if (action.prefixRewrite !== undefined && route.match.prefix !== undefined) {
      upstreamPath = action.prefixRewrite + url.slice(route.match.prefix.length);
    }
    this.proxy(req, res, cluster, ep, upstreamPath, action.timeoutMs);
  }

  private proxy(req: http.IncomingMessage, res: http.ServerResponse, cluster: ClusterSpec, ep: Address, upstreamPath: string, timeoutMs: number): void {
    const s = this.ctx.stats;
    const c = `cluster.${cluster.statName}`;
    const started = Date.now();
    s.counter(`${c}.upstream_rq_total`).inc();
    s.gauge(`${c}.upstream_rq_active`).inc();
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    headers['x-forwarded-proto'] = 'http';
    headers['x-request-id'] ??= randomUUID();
    headers['x-envoy-expected-rq-timeout-ms'] = String(timeoutMs);
    const target = ep.kind === 'pipe' ? { socketPath: ep.path } : { host: ep.host, port: ep.port, family: ep.family };
    let finished = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const routeTimer =
      timeoutMs > 0
        ? setTimeout(() => {
            s.counter(`${c}.upstream_rq_timeout`).inc();
            fail(504, 'upstream request timeout');
          }, timeoutMs)
        : undefined;
    const done = (): void => {
      finished = true;
      clearTimeout(routeTimer);
      clearTimeout(connectTimer);
      s.gauge(`${c}.upstream_rq_active`).dec();
    };
    const upstream = http.request({ ...target, method: req.method, path: upstreamPath, headers, agent: this.ctx.agentFor(cluster), setHost: false });
    const fail = (status: number, body: string): void => {
      if (finished) return;
      done();
      upstream.destroy();
      if (!res.headersSent) localReply(res, status, body);
      else res.destroy();
    };
    upstream.on('socket', (sock) => {
      if ((sock as net.Socket).connecting) {
        s.counter(`${c}.upstream_cx_total`).inc();
        connectTimer = setTimeout(() => {
          s.counter(`${c}.upstream_cx_connect_timeout`).inc();
          s.counter(`${c}.upstream_cx_connect_fail`).inc();
          fail(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection timeout');
        }, cluster.connectTimeoutMs);
        sock.once('connect', () => clearTimeout(connectTimer));
      }
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (finished) return;
      const connectFailed = ['ECONNREFUSED', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH', 'EACCES', 'ECONNRESET'].includes(err.code ?? '') && !upstream.reusedSocket && !res.headersSent;
      if (connectFailed && err.code !== 'ECONNRESET') {
        s.counter(`${c}.upstream_cx_connect_fail`).inc();
        fail(503, `upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: ${describeErrno(err)}`);
      } else {
        fail(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection termination');
      }
    });
    upstream.on('response', (ures) => {
      const code = ures.statusCode ?? 502;
      s.counter(`${c}.upstream_rq_${code}`).inc();
      s.counter(`${c}.upstream_rq_${Math.floor(code / 100)}xx`).inc();
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(ures.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
      out.server = 'envoy';
      out['x-envoy-upstream-service-time'] = String(Date.now() - started);
      // Envoy's HCM decides drain-close when it encodes the response, not when the request came.
      if (res.hasHeader('connection') || (this.ctx.draining(this) && !this.ctx.slowDrain())) out.connection = 'close';
      res.writeHead(code, out);
      ures.on('error', () => res.destroy());
      ures.pipe(res);
      ures.on('end', () => done());
    });
    res.once('close', () => {
      if (!finished) {
        done();
        upstream.destroy();
      }
    });
    req.pipe(upstream);
  }
}

function localReply(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) }).end(body);
}

export function describeErrno(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'Address already in use';
    case 'EADDRNOTAVAIL':
      return 'Cannot assign requested address';
    case 'EACCES':
      return 'Permission denied';
    case 'ECONNREFUSED':
      return 'Connection refused';
    case 'ENOENT':
      return 'No such file or directory';
    default:
      return err.message;
  }
}

/** Envoy's virtual host selection: exact domain, then longest `*.suffix`, then `prefix.*`, then `*`. */
export function selectVirtualHost(vhosts: readonly VirtualHostSpec[], hostHeader: string): VirtualHostSpec | undefined {
  const host = hostHeader.toLowerCase();
  const noPort = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  let best: { vh: VirtualHostSpec; rank: number; len: number } | undefined;
  for (const vh of vhosts) {
    for (const d0 of vh.domains) {
      const d = d0.toLowerCase();
      let rank = -1;
      if (d === host || d === noPort) rank = 3;
      else if (d === '*') rank = 0;
      else if (d.startsWith('*') && (host.endsWith(d.slice(1)) || noPort.endsWith(d.slice(1)))) rank = 2;
      else if (d.endsWith('*') && (host.startsWith(d.slice(0, -1)) || noPort.startsWith(d.slice(0, -1)))) rank = 1;
      if (rank < 0) continue;
      if (!best || rank > best.rank || (rank === best.rank && d.length > best.len)) best = { vh, rank, len: d.length };
    }
  }
  return best?.vh;
}

export function routeMatches(route: RouteSpec, path: string): boolean {
  const m = route.match;
  const p = m.caseSensitive ? path : path.toLowerCase();
  if (m.path !== undefined) return p === (m.caseSensitive ? m.path : m.path.toLowerCase());
  if (m.regex) return m.regex.test(path);
  if (m.prefix !== undefined) return p.startsWith(m.caseSensitive ? m.prefix : m.prefix.toLowerCase());
  return false;
}

export function findRoute(vhosts: readonly VirtualHostSpec[], host: string, path: string): RouteSpec | undefined {
  const vh = selectVirtualHost(vhosts, host);
  return vh?.routes.find((r) => routeMatches(r, path));
}
