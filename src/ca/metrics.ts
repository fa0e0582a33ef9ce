/**
 * The certificate metrics (Istio's names, SPEC §12), registered on the agent's registry:
 * - `istio_agent_num_outgoing_requests{request_type="csr"}`: CSRs sent (counted before sending);
 * - `istio_agent_num_failed_outgoing_requests{request_type="csr"}`: CSRs that failed, for any cause;
 * - `istio_agent_outgoing_latency{request_type="csr"}`: total CSR latency in milliseconds (a sum,
 *   as Istio's; divide by the request count for the mean);
 * - `istio_agent_num_outgoing_retries{request_type="csr"}`: retries after a failed CSR;
 * - `istio_agent_cert_expiry_seconds{resource_name}`: seconds until the served certificate
 *   expires (negative once expired), computed at scrape time.
 * Istio exports its counters without a `_total` suffix; so do we.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface CaMetrics {
  csrSent(): void;
  csrFailed(): void;
  csrRetried(): void;
  csrLatency(ms: number): void;
  /** Reports `cert_expiry_seconds{resource_name}` from `expiresAt()` (ms epoch; undefined = no series). */
  certExpiry(resourceName: string, expiresAt: () => number | undefined): void;
}

/** Metrics that go nowhere (components built without a registry). */
export const NO_CA_METRICS: CaMetrics = {
  csrSent() {},
  csrFailed() {},
  csrRetried() {},
  csrLatency() {},
  certExpiry() {},
};

export function registerCaMetrics(registry: Registry, now: () => number = Date.now): CaMetrics {
  const requestType = { request_type: 'csr' };
  const sent = new Counter({ name: 'istio_agent_num_outgoing_requests', help: 'Number of total outgoing requests (e.g. to a token exchange server, CA, etc.)', labelNames: ['request_type'] as const, registers: [registry] });
  const failed = new Counter({ name: 'istio_agent_num_failed_outgoing_requests', help: 'Number of failed outgoing requests (e.g. to a token exchange server, CA, etc.)', labelNames: ['request_type'] as const, registers: [registry] });
  const retries = new Counter({ name: 'istio_agent_num_outgoing_retries', help: 'Number of outgoing retry requests (e.g. to a token exchange server, CA, etc.)', labelNames: ['request_type'] as const, registers: [registry] });
  const latency = new Counter({ name: 'istio_agent_outgoing_latency', help: 'The latency of outgoing requests (e.g. to a token exchange server, CA, etc.) in milliseconds.', labelNames: ['request_type'] as const, registers: [registry] });
  for (const c of [sent, failed, retries, latency]) c.inc(requestType, 0);
  const sources = new Map<string, () => number | undefined>();
  new Gauge({
    name: 'istio_agent_cert_expiry_seconds',
    help: 'The time remaining, in seconds, before the certificate chain will expire. A negative value indicates the cert is expired.',
    labelNames: ['resource_name'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [resourceName, expiresAt] of sources) {
        const at = expiresAt();
        if (at !== undefined) this.set({ resource_name: resourceName }, (at - now()) / 1000);
      }
    },
  });
  return {
    csrSent: () => sent.inc(requestType),
    csrFailed: () => failed.inc(requestType),
    csrRetried: () => retries.inc(requestType),
    csrLatency: (ms) => latency.inc(requestType, ms),
    certExpiry: (resourceName, expiresAt) => void sources.set(resourceName, expiresAt),
  };
}
