/**
 * The agent's own Prometheus registry (SPEC §12): one per agent, created by a factory (no
 * module-level singleton). It holds the default process metrics (`process.ts`, prom-client's
 * names) under the `istio_agent_` prefix and the merged-metrics counters owned by
 * `src/metrics/`; other components register theirs on `registry` (e.g.
 * `istio_agent_envoy_restarts_total`).
 */
import { registerProcessMetrics } from './process.js';
import { Counter, Registry } from './prom.js';

export const METRIC_PREFIX = 'istio_agent_';

/** The sources of a merged scrape, as they appear in the `type` label. */
export type ScrapeSource = 'agent' | 'envoy' | 'application';

export interface AgentMetrics {
  readonly registry: Registry;
  /** `istio_agent_scrapes_total`: merged scrapes served (Istio's name). */
  readonly scrapes: Counter;
  /** `istio_agent_scrape_failures_total{type}`: a source skipped or cut short (Istio's name). */
  readonly scrapeFailures: Counter<'type'>;
  /**
   * `istio_agent_scrape_duplicate_families_total{type}` (ours): metric families dropped from a
   * later source because an earlier source of the same scrape already emitted them.
   * `type` is the source that lost (`envoy` or `application`).
   */
  readonly duplicateFamilies: Counter<'type'>;
}

export interface AgentRegistryOptions {
  /** Export the default process metrics, `process.ts` (default true). */
  defaultMetrics?: boolean;
}

export function createAgentMetrics(options: AgentRegistryOptions = {}): AgentMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) registerProcessMetrics(registry, { prefix: METRIC_PREFIX });
  const scrapes = new Counter({
    name: `${METRIC_PREFIX}scrapes_total`,
    help: 'The total number of scrapes.',
    registers: [registry],
  });
  const scrapeFailures = new Counter({
    name: `${METRIC_PREFIX}scrape_failures_total`,
    help: 'The total number of failed scrapes.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const duplicateFamilies = new Counter({
    name: `${METRIC_PREFIX}scrape_duplicate_families_total`,
    help: 'Metric families dropped from a merged scrape because an earlier source already emitted them.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  // Export the zero series so dashboards and alerts see them before the first failure.
  for (const type of ['agent', 'envoy', 'application'] satisfies ScrapeSource[]) scrapeFailures.labels(type).inc(0);
  for (const type of ['envoy', 'application'] satisfies ScrapeSource[]) duplicateFamilies.labels(type).inc(0);
  return { registry, scrapes, scrapeFailures, duplicateFamilies };
}
