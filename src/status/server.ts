/**
 * The status server (SPEC §6, port `statusPort`): routing only, one module per endpoint.
 *
 *   /healthz/ready                          → routes.ready (ready.ts)
 *   /stats/prometheus, /metrics             → merged metrics (stats.ts)
 *   /app-health/…, /app-lifecycle/…         → app probes (app-probe.ts; 400 when not configured)
 *   /quitquitquit, /drain                   → loopback-only, POST-only, reply then act (lifecycle.ts)
 *   /, /status                              → loopback-only status page and its JSON (page.ts), when `status` is set
 *   /debug/ndsz                             → loopback-only DNS name table (ndsz.ts; 404 `{}` without one)
 *   anything else                           → 404
 *
 * `start` listens on all interfaces (dual-stack `::`, or `0.0.0.0` where IPv6 is unavailable)
 * and rejects with an AgentError naming the port when it cannot (e.g. EADDRINUSE). Header and
 * request timeouts are set, and request bodies (no endpoint reads one) are limited.
 * `close` stops accepting, lets in-flight requests finish for a short grace period, then
 * destroys what is left and the outbound connections; it is idempotent.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { AgentError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { AppProbers } from './app-probe.js';
import { lifecycleHandler } from './lifecycle.js';
import { StatusPageEndpoints } from './page.js';
import type { StatusRegistry } from './registry.js';
import { ndszHandler } from './ndsz.js';
import { sendText } from './respond.js';
import type { ScrapeHistory } from './scrape-history.js';
import { StatsEndpoint, type MetricsEndpointOptions } from './stats.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface StatusServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** Default: all interfaces, dual-stack (`::`), falling back to `0.0.0.0` without IPv6. */
  host?: string;
  log: Logger;
  routes: { ready: Handler; quit: () => void; drain: () => void; ndsz?: Handler };
  metrics: MetricsEndpointOptions;
  appProbers: AppProbers;
  /** METRICS_LOCALHOST_ACCESS_ONLY: merged metrics for loopback peers only. */
  metricsLocalhostOnly: boolean;
  /** The status page's providers (`/`, `/status`); without it those paths are 404. */
  status?: StatusRegistry;
  /** Records each merged scrape for the status page. */
  scrapeHistory?: ScrapeHistory;
  /** Grace period for in-flight requests on close (default 2 s). */
  closeGraceMs?: number;
}

/** Request bodies are never read; anything larger than this is refused. */
export const MAX_REQUEST_BODY_BYTES = 64 * 1024;
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
export const NOT_FOUND_BODY = '404 page not found\n';

export class StatusServer {
  private closing: Promise<void> | undefined;
  private readonly quit: Handler;
  private readonly drain: Handler;
  private readonly statusPage: StatusPageEndpoints | undefined;

  private constructor(
    private readonly server: http.Server,
    private readonly sockets: Set<Socket>,
    private readonly stats: StatsEndpoint,
    private readonly options: StatusServerOptions,
    readonly port: number,
  ) {
    this.quit = lifecycleHandler('/quitquitquit', () => options.routes.quit(), options.log);
    this.drain = lifecycleHandler('/drain', () => options.routes.drain(), options.log);
    this.statusPage = options.status ? new StatusPageEndpoints(options.status) : undefined;
  }

  static async start(options: StatusServerOptions): Promise<StatusServer> {
    const log = options.log;
    const stats = new StatsEndpoint(options.metrics, options.metricsLocalhostOnly, log.child({ scope: 'metrics' }), options.scrapeHistory);
    const server = http.createServer({
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      maxHeaderSize: 16 * 1024,
      keepAliveTimeout: 5_000,
    });
    let instance: StatusServer | undefined;
    const sockets = new Set<Socket>();
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (instance) instance.dispatch(req, res);
      else sendText(req, res, 503, 'starting\n');
    });
    try {
      const port = await listen(server, options.port, options.host);
      instance = new StatusServer(server, sockets, stats, options, port);
      log.info(`status server listening on port ${port}`);
      return instance;
    } catch (err) {
      await stats.close();
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'EADDRINUSE' ? 'the port is already in use' : describeError(err);
      throw new AgentError('STATUS_SERVER_LISTEN_FAILED', `status server: cannot listen on port ${options.port}: ${why}`, { cause: err });
    }
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    if (!this.limitBody(req, res)) return;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const { routes } = this.options;
    let handler: Handler;
    if (path === '/healthz/ready') handler = routes.ready;
    else if (path === '/stats/prometheus' || path === '/metrics') handler = this.stats.handle;
    else if (path === '/quitquitquit') handler = this.quit;
    else if (path === '/drain') handler = this.drain;
    else if (path === '/' && this.statusPage) handler = this.statusPage.page;
    else if (path === '/status' && this.statusPage) handler = this.statusPage.json;
    else if (path === '/debug/ndsz') handler = routes.ndsz ?? ndszHandler(() => undefined);
    else if (AppProbers.matches(path)) handler = (rq, rs) => this.options.appProbers.handle(rq, rs, { statusPort: this.port });
    else handler = (rq, rs) => sendText(rq, rs, 404, NOT_FOUND_BODY);
    try {
      const result = handler(req, res);
      if (result instanceof Promise) result.catch((err: unknown) => this.handlerFailed(path, res, err));
    } catch (err) {
      this.handlerFailed(path, res, err);
    }
  }

  private handlerFailed(path: string, res: ServerResponse, err: unknown): void {
    this.options.log.error(`status server: handler for ${path} failed: ${describeError(err)}`);
    if (!res.headersSent) {
      res.writeHead(500, { 'Content-Length': '0' });
      res.end();
    } else {
      res.destroy();
    }
  }

  /** Discards a request body, refusing (413) one above the limit. False when refused. */
  private limitBody(req: IncomingMessage, res: ServerResponse): boolean {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_REQUEST_BODY_BYTES) {
      res.setHeader('Connection', 'close');
      sendText(req, res, 413, 'Request Entity Too Large\n');
      req.resume();
      res.once('finish', () => req.socket.destroy());
      return false;
    }
    let seen = 0;
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > MAX_REQUEST_BODY_BYTES) req.socket.destroy();
    });
    req.resume();
    return true;
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const grace = setTimeout(() => this.server.closeAllConnections(), this.options.closeGraceMs ?? 2_000);
    try {
      await closed;
    } finally {
      clearTimeout(grace);
      await this.stats.close();
      for (const s of this.sockets) s.destroy();
      this.options.log.info('status server closed');
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Listens on `host`, or dual-stack `::` falling back to `0.0.0.0`; resolves with the bound port. */
function listen(server: http.Server, port: number, host: string | undefined): Promise<number> {
  const attempt = (h: string) =>
    new Promise<number>((resolve, reject) => {
      const onError = (err: Error) => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = () => {
        server.off('error', onError);
        resolve((server.address() as AddressInfo).port);
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ port, host: h, ipv6Only: false });
    });
  if (host !== undefined) return attempt(host);
  return attempt('::').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL') return attempt('0.0.0.0');
    throw err;
  });
}
