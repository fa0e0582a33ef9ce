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
 * - aborting `signal` (the scraper went away) cancels every outbound request;
 * - a sink's backpressure pauses Envoy's body; a sink that stays unwritable for a whole
 *   source timeout fails the scrape with MetricsSinkError (no wait is unbounded).
 */
import http from 'node:http';
import type { Logger } from '../log.js';
import { describeError, MetricsSinkError as SinkError, MetricsSourceError as SourceError } from '../errors.js';
import { isOpenMetrics, responseContentType, rewriteAccept } from './accept.js';
import type { AppScrapeTarget } from './annotations.js';
import { consume, discard, get } from './fetch.js';
import { ExpositionMerger, type PreparedSource, type SourceStats } from './merge.js';
import { PreparedSourceBuilder } from './prepared.js';
import type { AgentMetrics, ScrapeSource } from './registry.js';

export const DEFAULT_APP_BODY_LIMIT = 10 * 1024 * 1024;
export const DEFAULT_SCRAPE_TIMEOUT_MS = 10_000;
export const SCRAPE_TIMEOUT_MARGIN_MS = 250;

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
  /** Outbound keep-alive agent (default: one owned by this object). */
  agent?: http.Agent;
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
  /**
   * Takes the chunks; returns a promise only when the sink wants the writer to wait
   * (backpressure), which rejects if the sink is gone. Throws if it is gone already.
   */
  write(chunks: Buffer[]): Promise<void> | void;
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

function hostForUrl(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

interface AppResult {
  contentType: string | undefined;
  chunks: Buffer[];
  /** The body merged on its own as it arrived (adopted at its turn when nothing collides). */
  prepared: PreparedSource;
}

/** Envoy's response once its headers are in: the body, and how to cut it short. */
interface EnvoyBody {
  body: http.IncomingMessage;
  abort(reason: SourceError): void;
}

export class MergedMetrics {
  private readonly agent: http.Agent;
  private readonly ownsAgent: boolean;
  private readonly bodyLimit: number;
  private readonly defaultTimeout: number;

  constructor(private readonly options: MergedMetricsOptions) {
    this.ownsAgent = options.agent === undefined;
    // Scrapes come every few seconds: keep the connections to Envoy and the app (idle ones close after 15 s).
    this.agent = options.agent ?? new http.Agent({ keepAlive: true, timeout: 15_000 });
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
      // The scraper went away: whatever that broke is not the source's failure.
      if (report.sources[source] === 'failed' || req.signal.aborted) return;
      report.sources[source] = 'failed';
      report.errors[source] = describeError(err);
      metrics.scrapeFailures.labels(source).inc();
      log.warn(`failed scraping ${source} metrics: ${describeError(err)}`);
    };

    const cleanups: (() => void)[] = [];
    const sinkError = (err: unknown) => new SinkError(`writing the merged body failed: ${describeError(err)}`, { cause: err });
    /** Writes to the sink; a promise only under backpressure. Sink failures become SinkError. */
    const emit = (chunks: Buffer[]): Promise<void> | undefined => {
      let wait: Promise<void> | void;
      try {
        wait = sink.write(chunks);
      } catch (err) {
        throw sinkError(err);
      }
      if (!wait) return undefined;
      const pending = wait;
      // Bounded: a scraper that takes nothing for a whole source timeout fails the scrape.
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new SinkError(`the scraper took no data for ${timeoutMs} ms`)), timeoutMs);
        pending.then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(sinkError(err));
          },
        );
      });
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
        let res: EnvoyBody | undefined;
        try {
          res = await envoy;
        } catch (err) {
          fail('envoy', err);
        }
        if (res) {
          merger.begin('envoy', { verbatim: true });
          let stats: SourceStats;
          // An idle timeout: armed only while waiting for Envoy, not while the scraper applies backpressure.
          const envoyBody = res;
          let idle: NodeJS.Timeout | undefined;
          const arm = () => {
            idle = setTimeout(() => envoyBody.abort(new SourceError(`Envoy's body stalled for ${timeoutMs} ms`)), timeoutMs);
          };
          try {
            arm();
            await consume(envoyBody.body, (chunk) => {
              clearTimeout(idle);
              const out = merger.write(chunk);
              const wait = out.length > 0 ? emit(out) : undefined;
              if (!wait) return arm();
              return wait.then(arm);
            });
            clearTimeout(idle);
            const end = merger.end();
            await emit(end.out);
            stats = end.stats;
          } catch (err) {
            clearTimeout(idle);
            if (err instanceof SinkError || req.signal.aborted) throw err;
            stats = merger.abort();
            const cause = err instanceof SourceError ? err : new SourceError(`Envoy body cut short: ${describeError(err)}`, { cause: err });
            fail('envoy', cause);
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
  private async startEnvoy(req: ScrapeRequest, timeoutMs: number, cleanups: (() => void)[]): Promise<EnvoyBody> {
    const ctl = this.sourceController(req, cleanups, timeoutMs, () => new SourceError(`no response from Envoy within ${timeoutMs} ms`));
    const host = this.options.localhost;
    const path = `${this.options.envoyPath ?? '/stats/prometheus'}${req.rawQuery ? `?${req.rawQuery}` : ''}`;
    const where = `http://${hostForUrl(host)}:${this.options.envoyPort}${path}`;
    let res: http.IncomingMessage;
    try {
      res = await get(this.agent, { host, port: this.options.envoyPort as number, path, headers: this.forwardedHeaders(req, 'envoy'), signal: ctl.signal });
    } catch (err) {
      throw err instanceof SourceError ? err : new SourceError(`error scraping ${where}: ${describeError(err)}`, { cause: err });
    }
    ctl.stopDeadline();
    if (res.statusCode !== 200) {
      discard(res);
      throw new SourceError(`error scraping ${where}, status code: ${res.statusCode}`);
    }
    return { body: res, abort: (reason) => ctl.abort(reason) };
  }

  /** The application: `headers` settles with its Content-Type, `body` with the whole capped body. */
  private startApp(req: ScrapeRequest, timeoutMs: number, cleanups: (() => void)[]): { headers: Promise<string | undefined>; body: Promise<AppResult> } {
    const app = this.options.app as AppScrapeTarget;
    const ctl = this.sourceController(req, cleanups, timeoutMs, () => new SourceError(`application metrics not received within ${timeoutMs} ms`));
    const host = this.options.localhost;
    const url = `http://${hostForUrl(host)}:${app.port}${app.path}`;
    const limit = this.bodyLimit;
    const response = get(this.agent, { host, port: app.port, path: app.path, headers: this.forwardedHeaders(req, 'application'), signal: ctl.signal }).catch((err: unknown) => {
      throw err instanceof SourceError ? err : new SourceError(`error scraping ${url}: ${describeError(err)}`, { cause: err });
    });
    const headers = response.then((res) => {
      if (res.statusCode !== 200) {
        discard(res);
        throw new SourceError(`error scraping ${url}, status code: ${res.statusCode}`);
      }
      return res.headers['content-type'];
    });
    const body = headers.then(async (contentType) => {
      const res = await response;
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > limit) {
        discard(res);
        throw new SourceError(`application metrics body of ${declared} bytes exceeds the ${limit}-byte limit`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      // Validated and merged on its own in one pass as it arrives (see PreparedSourceBuilder).
      const builder = new PreparedSourceBuilder('application', { openMetrics: isOpenMetrics(responseContentType(contentType)), validate: true });
      let prepared: PreparedSource & { problem: string | undefined };
      const invalid = (problem: string) => new SourceError(`application body is not a Prometheus exposition: ${problem}`);
      try {
        await consume(res, (chunk) => {
          size += chunk.length;
          if (size > limit) throw new SourceError(`application metrics body exceeds the ${limit}-byte limit`);
          const problem = builder.write(chunk);
          if (problem !== undefined) throw invalid(problem);
          chunks.push(chunk);
        });
        prepared = builder.end();
        if (prepared.problem !== undefined) throw invalid(prepared.problem);
      } catch (err) {
        if (err instanceof SourceError) throw err;
        throw ctl.signal.aborted && ctl.signal.reason instanceof SourceError ? ctl.signal.reason : new SourceError(`application body cut short: ${describeError(err)}`, { cause: err });
      }
      ctl.stopDeadline();
      return { contentType, chunks, prepared };
    });
    return { headers, body };
  }

  /**
   * One source's abort controller: aborted by its deadline (`timeoutMs`, with `onDeadline`'s
   * error), by the scraper going away, or when the scrape finishes (cleanups).
   */
  private sourceController(req: ScrapeRequest, cleanups: (() => void)[], timeoutMs: number, onDeadline: () => SourceError) {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(req.signal.reason);
    req.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ctl.abort(onDeadline()), timeoutMs);
    cleanups.push(() => {
      clearTimeout(timer);
      req.signal.removeEventListener('abort', onAbort);
      ctl.abort(new SourceError('scrape finished'));
    });
    return {
      signal: ctl.signal,
      stopDeadline: () => clearTimeout(timer),
      abort: (reason: SourceError) => ctl.abort(reason),
    };
  }

  /** Closes the outbound connections this object owns. */
  async close(): Promise<void> {
    if (this.ownsAgent) this.agent.destroy();
  }
}
