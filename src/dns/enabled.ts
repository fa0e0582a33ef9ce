/** Whether the agent runs the DNS proxy (Istio's `isDNSServerEnabled`), without loading it. */
import type { AgentConfig } from '../config/load.js';

export const DNS_NOT_READY_REASON = 'istio DNS capture is turned ON and DNS lookup table is not ready yet';

export function dnsEnabled(config: AgentConfig): boolean {
  const meta = config.proxy.proxyMetadata;
  const capture = config.env.ISTIO_META_DNS_CAPTURE || meta.ISTIO_META_DNS_CAPTURE === 'true';
  const server = config.env.ISTIO_META_ENABLE_DNS_SERVER || meta.ISTIO_META_ENABLE_DNS_SERVER === 'true';
  return (capture && config.proxyType === 'sidecar') || server;
}

