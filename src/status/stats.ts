/**
 * `/stats/prometheus` and `/metrics` (SPEC §6.2): adapts an HTTP request to a merged scrape.
 * Always answers 200 with what succeeded (403 only for a non-loopback peer when
 * METRICS_LOCALHOST_ACCESS_ONLY is on, 503 with Retry-After when no merge slot frees in time:
 * at most METRICS_MERGE_CONCURRENCY merges run, METRICS_MERGE_QUEUE more wait up to half their
 * scrape timeout); the body is streamed, gzip-compressed when accepted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import { ScrapeAdmission } from '../metrics/admission.js';
import { MergedMetrics, sourceTimeoutMs, type MergedMetricsOptions } from '../metrics/scrape.js';
import { parsePrometheusAnnotations } from '../metrics/annotations.js';
import type { AgentConfig } from '../config/load.js';
import type { AgentMetrics } from '../metrics/registry.js';
import { LOCALHOST_ONLY_BODY, isLoopbackAddress } from './loopback.js';
import { StreamingBody, sendText } from './respond.js';
import type { ScrapeHistory } from './scrape-history.js';

export type MetricsEndpointOptions = Omit<MergedMetricsOptions, 'log'> & {
  /** Merged scrapes running at once (METRICS_MERGE_CONCURRENCY; 0 = no limit; default 2). */
  mergeConcurrency?: number;
  /** Merged scrapes waiting for a slot (METRICS_MERGE_QUEUE; default 32). */
  mergeQueue?: number;
};

export const DEFAULT_MERGE_CONCURRENCY = 2;
export const DEFAULT_MERGE_QUEUE = 32;
/** The body of the 503 for a merged scrape that got no slot. */
export const MERGE_BUSY_BODY = 'too many merged metrics scrapes at once; retry later\n';

/**
 * The endpoint options from the config: Envoy on ENVOY_PROMETHEUS_PORT, the application per
 * ISTIO_PROMETHEUS_ANNOTATIONS (sidecars only). Throws ConfigError for a bad annotation value.
 */
export function metricsEndpointOptions(
  config: AgentConfig,
  deps: { metrics: AgentMetrics; localhost: string },
): MetricsEndpointOptions {
  const raw = config.env.ISTIO_PROMETHEUS_ANNOTATIONS;
  const app = config.proxyType === 'sidecar' ? parsePrometheusAnnotations(raw, config.statusPort) : undefined;
  return {
    metrics: deps.metrics,
    localhost: deps.localhost,
    envoyPort: config.env.ENVOY_PROMETHEUS_PORT,
    mergeConcurrency: config.env.METRICS_MERGE_CONCURRENCY,
    mergeQueue: config.env.METRICS_MERGE_QUEUE,
    ...(app ? { app } : {}),
  };
}

export class StatsEndpoint {
  private readonly merged: MergedMetrics;
  /** Bounds the merged scrapes in flight (see ScrapeAdmission). */
  readonly admission: ScrapeAdmission;
  private readonly defaultTimeoutMs: number | undefined;

  constructor(
    options: MetricsEndpointOptions,
    private readonly localhostOnly: boolean,
    private readonly log: Logger,
    /** Where each scrape is recorded for the status page (optional). */
    private readonly history?: ScrapeHistory,
  ) {
    const { mergeConcurrency, mergeQueue, ...merged } = options;
    this.merged = new MergedMetrics({ ...merged, log });
    this.defaultTimeoutMs = options.defaultTimeoutMs;
    this.admission = new ScrapeAdmission(mergeConcurrency ?? DEFAULT_MERGE_CONCURRENCY, mergeQueue ?? DEFAULT_MERGE_QUEUE);
  }

  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (this.localhostOnly && !isLoopbackAddress(req.socket.remoteAddress)) {
      sendText(req, res, 403, LOCALHOST_ONLY_BODY);
      return;
    }
    const ctl = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) ctl.abort(new Error('client connection closed'));
    };
    res.on('close', onClose);
    // A queued scrape waits at most half its own timeout, leaving it the other half to run.
    const timeoutHeader = header(req, 'x-prometheus-scrape-timeout-seconds');
    const admission = await this.admission.acquire(sourceTimeoutMs(timeoutHeader, this.defaultTimeoutMs) / 2, ctl.signal);
    if (!admission.admitted) {
      res.off('close', onClose);
      if (admission.reason === 'aborted') return;
      this.log.debug(`merged metrics scrape refused (${admission.reason}): ${this.admission.concurrency} running, queue of ${this.admission.queue}`);
      sendText(req, res, 503, MERGE_BUSY_BODY, { 'Retry-After': '1' });
      return;
    }
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const body = new StreamingBody(req, res);
    const t0 = performance.now();
    let bytes = 0;
    try {
      const report = await this.merged.scrape(
        {
          rawQuery: q >= 0 ? url.slice(q + 1) : '',
          accept: req.headers.accept,
          userAgent: req.headers['user-agent'],
          timeoutHeader,
          signal: ctl.signal,
        },
        {
          start: (contentType) => body.start(200, { 'Content-Type': contentType }),
          write: (chunks) => {
            for (const c of chunks) bytes += c.length;
            return body.write(chunks);
          },
        },
      );
      await body.end();
      this.history?.add({ at: Date.now(), durationMs: performance.now() - t0, bytes, report });
    } catch (err) {
      this.history?.add({ at: Date.now(), durationMs: performance.now() - t0, bytes, report: undefined, error: describeError(err) });
      // Only the client going away (or a bug) gets here; the body cannot be fixed up any more.
      if (!ctl.signal.aborted) this.log.error(`merged metrics scrape failed: ${describeError(err)}`);
      res.destroy();
    } finally {
      admission.release();
      res.off('close', onClose);
    }
  };

  close(): Promise<void> {
    return this.merged.close();
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
