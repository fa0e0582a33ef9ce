/**
 * The xDS proxy's counters (SPEC §7.1), with Istio's names so dashboards keep working:
 * `istio_agent_xds_proxy_requests`, `istio_agent_xds_proxy_responses`,
 * `istio_agent_istiod_connection_failures`, `istio_agent_istiod_connection_terminations{type}`,
 * `istio_agent_envoy_connection_terminations{type}` (`type` = `cancelled` | `error`, Istio's values).
 */
import { Counter, type Registry } from 'prom-client';

export type TerminationType = 'cancelled' | 'error';

export interface XdsProxyMetrics {
  requests: Counter;
  responses: Counter;
  istiodConnectionFailures: Counter;
  istiodTerminations: Counter<'type'>;
  envoyTerminations: Counter<'type'>;
}

export function createXdsProxyMetrics(registry: Registry, prefix = 'istio_agent_'): XdsProxyMetrics {
  const registers = [registry];
  const m: XdsProxyMetrics = {
    requests: new Counter({ name: `${prefix}xds_proxy_requests`, help: 'The total number of Xds Proxy Requests', registers }),
    responses: new Counter({ name: `${prefix}xds_proxy_responses`, help: 'The total number of Xds Proxy Responses', registers }),
    istiodConnectionFailures: new Counter({ name: `${prefix}istiod_connection_failures`, help: 'The total number of connection failures to Istiod', registers }),
    istiodTerminations: new Counter({
      name: `${prefix}istiod_connection_terminations`,
      help: 'The total number of connection errors to Istiod',
      labelNames: ['type'] as const,
      registers,
    }),
    envoyTerminations: new Counter({
      name: `${prefix}envoy_connection_terminations`,
      help: 'The total number of connection errors from envoy',
      labelNames: ['type'] as const,
      registers,
    }),
  };
  for (const t of ['cancelled', 'error'] satisfies TerminationType[]) {
    m.istiodTerminations.labels(t).inc(0);
    m.envoyTerminations.labels(t).inc(0);
  }
  return m;
}
