/**
 * The merged-metrics scrape (SPEC §6.2), the I/O shell around the pure merger: fetches the
 * agent's registry, Envoy's `/stats/prometheus` and, when configured, the application's
 * metrics, and writes one exposition to a sink.
 *
 * Guarantees:
 * - the response is always complete and valid: a failing source is skipped (or cut at a line
 *   boundary) and counted in `istio_agent_scrape_failures_total{type}`;
 * - every source has its own deadline: the scrape timeout header minus 0.25 s, or 10 s.
 *   Envoy must answer (headers) within it and then streams with that as an idle timeout;
 *   the application must deliver its whole body within it;
 * - Envoy's body is streamed through the merger (never held whole); the application's is
 *   buffered up to a cap (10 MiB by default), validated, and dropped whole when too big or
 *   not an exposition;
 * - the Content-Type follows the application's (`responseContentType`); the sink is started
 *   once the application's headers are in (or it failed), before any body byte;
 * - aborting `signal` (the scraper went away) cancels every outbound request.
 */
import type { Dispatcher } from 'undici';
import { Agent } from '../undici-lazy.js'; // undici loads on the first scrape, not at start-up
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import { isOpenMetrics, responseContentType, rewriteAccept } from './accept.js';
import type { AppScrapeTarget } from './annotations.js';
import { ExpositionValidator } from './exposition.js';
import { ExpositionMerger, PreparedSourceBuilder, type PreparedSource, type SourceStats } from './merge.js';
import type { AgentMetrics, ScrapeSource } from './registry.js';

export const DEFAULT_APP_BODY_LIMIT = 10 * 1024 * 1024;
export const DEFAULT_SCRAPE_TIMEOUT_MS = 10_000;
export const SCRAPE_TIMEOUT_MARGIN_MS = 250;
/** undici's own timeouts are coarse (they may fire a few hundred ms early or late): backstops only. */
const BACKSTOP_MS = 1000;

export interface MergedMetricsOptions {
  metrics: AgentMetrics;
  log: Logger;
  /** The IP-mode localhost: `127.0.0.1`, or `::1` for IPv6 pods. */
  localhost: string;
  /** Envoy's Prometheus port (ENVOY_PROMETHEUS_PORT); undefined = no Envoy source. */
  envoyPort?: number;
  /** Default `/stats/prometheus`. */
  envoyPath?: string;
  /** The application endpoint from ISTIO_PROMETHEUS_ANNOTATIONS; undefined = none. */
  app?: AppScrapeTarget;
  /** Application body cap in bytes (default 10 MiB). */
  appBodyLimitBytes?: number;
  /** Per-source timeout without the scrape-timeout header (default 10 s). */
  defaultTimeoutMs?: number;
  /** Outbound HTTP dispatcher (default: an undici Agent owned by this object). */
  dispatcher?: Dispatcher;
}

/** What the scrape needs from the incoming request. */
export interface ScrapeRequest {
  /** The raw query string, without `?` ('' when none). */
  rawQuery: string;
  accept?: string | undefined;
  userAgent?: string | undefined;
  /** `X-Prometheus-Scrape-Timeout-Seconds`. */
  timeoutHeader?: string | undefined;
  /** Aborted when the scraper goes away. */
  signal: AbortSignal;
}

/** Where the merged body goes. `start` is called exactly once, before the first `write`. */
export interface MetricsSink {
  start(contentType: string): void;
  /** Resolves when the sink can take more (backpressure); rejects if it is gone. */
  write(chunks: Buffer[]): Promise<void>;
}

export type SourceOutcome = 'ok' | 'failed' | 'skipped';

export interface ScrapeReport {
  contentType: string;
  sources: Record<ScrapeSource, SourceOutcome>;
  errors: Partial<Record<ScrapeSource, string>>;
  duplicates: Partial<Record<ScrapeSource, string[]>>;
}

/** Per-source timeout: the header minus 0.25 s (never below half the header), else the default. */
export function sourceTimeoutMs(header: string | undefined, defaultMs = DEFAULT_SCRAPE_TIMEOUT_MS): number {
  if (header === undefined || header.trim() === '') return defaultMs;
  const seconds = Number(header.trim());
  if (!Number.isFinite(seconds) || seconds <= 0) return defaultMs;
  const ms = seconds * 1000;
  return Math.max(ms - SCRAPE_TIMEOUT_MARGIN_MS, ms / 2);
}

/** Drops a response body we will not read (undici reports that as an error event). */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

function hostForUrl(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

class SourceError extends Error {}
/** The sink (the scraper's connection) failed: the scrape ends, no source is blamed. */
class SinkError extends Error {}

interface AppResult {
  contentType: string | undefined;
  chunks: Buffer[];
  /** The body merged on its own as it arrived (adopted at its turn when nothing collides). */
  prepared: PreparedSource;
}

export class MergedMetrics {
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly bodyLimit: number;
  private readonly defaultTimeout: number;

  constructor(private readonly options: MergedMetricsOptions) {
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher =
      options.dispatcher ??
      new Agent({ keepAliveTimeout: 15_000, keepAliveMaxTimeout: 60_000, connect: { timeout: DEFAULT_SCRAPE_TIMEOUT_MS } });
    this.bodyLimit = options.appBodyLimitBytes ?? DEFAULT_APP_BODY_LIMIT;
    this.defaultTimeout = options.defaultTimeoutMs ?? DEFAULT_SCRAPE_TIMEOUT_MS;
  }

  /** Runs one merged scrape into `sink`. Never throws for a source failure; rejects only if the sink fails. */
  async scrape(req: ScrapeRequest, sink: MetricsSink): Promise<ScrapeReport> {
    const { metrics, log } = this.options;
    metrics.scrapes.inc();
    const timeoutMs = sourceTimeoutMs(req.timeoutHeader, this.defaultTimeout);
    const report: ScrapeReport = {
      contentType: '',
      sources: { agent: 'ok', envoy: 'skipped', application: 'skipped' },
      errors: {},
      duplicates: {},
    };
    const fail = (source: ScrapeSource, err: unknown) => {
      if (report.sources[source] === 'failed') return;
      report.sources[source] = 'failed';
      report.errors[source] = describeError(err);
      metrics.scrapeFailures.labels(source).inc();
      log.warn(`failed scraping ${source} metrics: ${describeError(err)}`);
    };

    const cleanups: (() => void)[] = [];
    const emit = async (chunks: Buffer[]): Promise<void> => {
      try {
        await sink.write(chunks);
      } catch (err) {
        throw new SinkError(`writing the merged body failed: ${describeError(err)}`, { cause: err });
      }
    };
    try {
      // Start every source at once; each has its own deadline.
      const agentText = metrics.registry.metrics();
      agentText.catch(() => undefined);
      const envoy = this.options.envoyPort !== undefined ? this.startEnvoy(req, timeoutMs, cleanups) : undefined;
      envoy?.catch(() => undefined);
      const app = this.options.app !== undefined ? this.startApp(req, timeoutMs, cleanups) : undefined;
      app?.body.catch(() => undefined);

      // The Content-Type follows the application's, so wait for its headers (bounded).
      let appContentType: string | undefined;
      if (app) {
        try {
          appContentType = (await app.headers) ?? undefined;
        } catch (err) {
          fail('application', err);
        }
      }
      report.contentType = responseContentType(appContentType);
      const merger = new ExpositionMerger({ openMetrics: isOpenMetrics(report.contentType) });
      sink.start(report.contentType);

      // 1. The agent's own registry.
      let agentBody: string | undefined;
      try {
        agentBody = await agentText;
      } catch (err) {
        fail('agent', err);
      }
      if (agentBody !== undefined) {
        merger.begin('agent');
        const out = merger.write(Buffer.from(agentBody));
        const end = merger.end();
        await emit([...out, ...end.out]);
      }

      // 2. Envoy, streamed.
      if (envoy) {
        report.sources.envoy = 'ok';
        let body: AsyncIterable<Buffer> | undefined;
        try {
          body = await envoy;
        } catch (err) {
          fail('envoy', err);
        }
        if (body) {
          merger.begin('envoy', { verbatim: true });
          let stats: SourceStats;
          try {
            for await (const chunk of body) {
              const out = merger.write(chunk);
              if (out.length > 0) await emit(out);
            }
            const end = merger.end();
            await emit(end.out);
            stats = end.stats;
          } catch (err) {
            if (err instanceof SinkError || req.signal.aborted) throw err;
            stats = merger.abort();
            fail('envoy', new SourceError(`Envoy body cut short: ${describeError(err)}`, { cause: err }));
          }
          this.account('envoy', stats, report, fail);
        }
      }

      // 3. The application, last: its (dropped) `# EOF` would otherwise end the body early.
      if (app && report.sources.application !== 'failed') {
        report.sources.application = 'ok';
        let result: AppResult | undefined;
        try {
          result = await app.body;
        } catch (err) {
          result = undefined;
          if (req.signal.aborted) throw err;
          fail('application', err);
        }
        if (result) {
          // Usually merged already while Envoy streamed; line by line again only on a collision.
          const adopted = merger.adopt(result.prepared);
          if (adopted) {
            await emit(adopted.out);
            this.account('application', adopted.stats, report, fail);
          } else {
            merger.begin('application');
            const out: Buffer[] = [];
            for (const chunk of result.chunks) for (const b of merger.write(chunk)) out.push(b);
            const end = merger.end();
            for (const b of end.out) out.push(b);
            await emit(out);
            this.account('application', end.stats, report, fail);
          }
        }
      }

      await emit(merger.finish());
      return report;
    } finally {
      for (const c of cleanups) c();
    }
  }

  private account(source: ScrapeSource, stats: SourceStats, report: ScrapeReport, fail: (s: ScrapeSource, e: unknown) => void): void {
    if (stats.droppedFamilies.length > 0) {
      report.duplicates[source] = stats.droppedFamilies;
      this.options.metrics.duplicateFamilies.labels(source).inc(stats.droppedFamilies.length);
      this.options.log.debug(`dropped ${stats.droppedFamilies.length} ${source} metric families already emitted by an earlier source: ${stats.droppedFamilies.slice(0, 10).join(', ')}`);
    }
    if (stats.invalidLines > 0) fail(source, new SourceError(`${stats.invalidLines} invalid exposition lines dropped`));
  }

  private forwardedHeaders(req: ScrapeRequest, target: 'envoy' | 'application'): Record<string, string> {
    const headers: Record<string, string> = { accept: rewriteAccept(req.accept, target) };
    if (req.userAgent) headers['user-agent'] = req.userAgent;
    if (req.timeoutHeader) headers['x-prometheus-scrape-timeout-seconds'] = req.timeoutHeader;
    return headers;
  }

  /** Envoy: resolves with the body stream once a 200 arrived within the deadline. */
  private async startEnvoy(req: ScrapeRequest, timeoutMs: number, cleanups: (() => void)[]): Promise<AsyncIterable<Buffer>> {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(req.signal.reason);
    req.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ctl.abort(new SourceError(`no response from Envoy within ${timeoutMs} ms`)), timeoutMs);
    cleanups.push(() => {
      clearTimeout(timer);
      req.signal.removeEventListener('abort', onAbort);
      ctl.abort(new SourceError('scrape finished'));
    });
    const origin = `http://${hostForUrl(this.options.localhost)}:${this.options.envoyPort}`;
    const path = `${this.options.envoyPath ?? '/stats/prometheus'}${req.rawQuery ? `?${req.rawQuery}` : ''}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.dispatcher.request({
        origin,
        path,
        method: 'GET',
        headers: this.forwardedHeaders(req, 'envoy'),
        signal: ctl.signal,
        // Our own timer is the deadline; undici's coarse timers are only a backstop.
        headersTimeout: timeoutMs + BACKSTOP_MS,
        // Envoy's body: an idle timeout (not counted while we apply backpressure).
        bodyTimeout: timeoutMs,
      });
    } catch (err) {
      throw ctl.signal.aborted && ctl.signal.reason instanceof SourceError ? ctl.signal.reason : new SourceError(`error scraping ${origin}${path}: ${describeError(err)}`, { cause: err });
    }
    clearTimeout(timer);
    if (res.statusCode !== 200) {
      discard(res.body);
      throw new SourceError(`error scraping ${origin}${path}, status code: ${res.statusCode}`);
    }
    return res.body as AsyncIterable<Buffer>;
  }

  /** The application: `headers` settles with its Content-Type, `body` with the whole capped body. */
  private startApp(req: ScrapeRequest, timeoutMs: number, cleanups: (() => void)[]): { headers: Promise<string | undefined>; body: Promise<AppResult> } {
    const app = this.options.app as AppScrapeTarget;
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(req.signal.reason);
    req.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () => ctl.abort(new SourceError(`application metrics not received within ${timeoutMs} ms`)),
      timeoutMs,
    );
    cleanups.push(() => {
      clearTimeout(timer);
      req.signal.removeEventListener('abort', onAbort);
      ctl.abort(new SourceError('scrape finished'));
    });
    const url = `http://${hostForUrl(this.options.localhost)}:${app.port}${app.path}`;
    const limit = this.bodyLimit;
    const response = this.dispatcher.request({
      origin: `http://${hostForUrl(this.options.localhost)}:${app.port}`,
      path: app.path,
      method: 'GET',
      headers: this.forwardedHeaders(req, 'application'),
      signal: ctl.signal,
      // Our own timer is the deadline; undici's coarse timers are only a backstop.
      headersTimeout: timeoutMs + BACKSTOP_MS,
      bodyTimeout: timeoutMs + BACKSTOP_MS,
    });
    const headers = response.then((res) => {
      if (res.statusCode !== 200) {
        discard(res.body);
        throw new SourceError(`error scraping ${url}, status code: ${res.statusCode}`);
      }
      const ct = res.headers['content-type'];
      return Array.isArray(ct) ? ct[0] : ct;
    });
    const body = headers.then(async (contentType) => {
      const res = await response;
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > limit) {
        discard(res.body);
        throw new SourceError(`application metrics body of ${declared} bytes exceeds the ${limit}-byte limit`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      const validator = new ExpositionValidator();
      const builder = new PreparedSourceBuilder('application', { openMetrics: isOpenMetrics(responseContentType(contentType)) });
      const invalid = (problem: string) => new SourceError(`application body is not a Prometheus exposition: ${problem}`);
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > limit) {
            discard(res.body);
            throw new SourceError(`application metrics body exceeds the ${limit}-byte limit`);
          }
          const problem = validator.push(chunk);
          if (problem !== undefined) {
            discard(res.body);
            throw invalid(problem);
          }
          chunks.push(chunk);
          builder.write(chunk);
        }
        const problem = validator.end();
        if (problem !== undefined) throw invalid(problem);
      } catch (err) {
        if (err instanceof SourceError) throw err;
        throw ctl.signal.aborted && ctl.signal.reason instanceof SourceError ? ctl.signal.reason : err;
      }
      clearTimeout(timer);
      return { contentType, chunks, prepared: builder.end() };
    });
    return {
      headers: headers.catch((err: unknown) => {
        throw ctl.signal.aborted && ctl.signal.reason instanceof SourceError ? ctl.signal.reason : err;
      }),
      body,
    };
  }

  /** Closes the outbound connections this object owns. */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.destroy();
  }
}
