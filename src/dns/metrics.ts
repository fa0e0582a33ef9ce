/**
 * The DNS proxy's metrics, Istio's names (`pkg/dns/client/monitoring.go`):
 * `istio_agent_dns_requests_total`, `istio_agent_dns_upstream_requests_total`,
 * `istio_agent_dns_upstream_failures_total` (queries no upstream answered),
 * `istio_agent_dns_upstream_request_duration_seconds`; beyond Istio, the answer cache's
 * `istio_agent_dns_cache_hits_total` / `…_misses_total`.
 */
import type { Registry } from 'prom-client';
import { Counter, Histogram } from 'prom-client';

export interface DnsMetrics {
  requests: Counter;
  upstreamRequests: Counter;
  upstreamFailures: Counter;
  upstreamDuration: Histogram;
  cacheHits: Counter;
  cacheMisses: Counter;
}

export function createDnsMetrics(registry: Registry | undefined, prefix = 'istio_agent_'): DnsMetrics {
  const registers = registry ? [registry] : [];
  return {
    requests: new Counter({ name: `${prefix}dns_requests_total`, help: 'Total number of DNS requests.', registers }),
    upstreamRequests: new Counter({ name: `${prefix}dns_upstream_requests_total`, help: 'Total number of DNS requests forwarded to upstream.', registers }),
    upstreamFailures: new Counter({ name: `${prefix}dns_upstream_failures_total`, help: 'Total number of DNS failures.', registers }),
    upstreamDuration: new Histogram({
      name: `${prefix}dns_upstream_request_duration_seconds`,
      help: 'Total time in seconds Istio takes to get DNS response from upstream.',
      buckets: [0.001, 0.005, 0.01, 0.1, 1, 5],
      registers,
    }),
    cacheHits: new Counter({ name: `${prefix}dns_cache_hits_total`, help: 'Upstream answers served from the DNS cache.', registers }),
    cacheMisses: new Counter({ name: `${prefix}dns_cache_misses_total`, help: 'Forwarded queries the DNS cache could not answer.', registers }),
  };
}
