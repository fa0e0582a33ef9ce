/**
 * The file-secret metrics (Istio's names, `security/pkg/nodeagent/cache/monitoring.go`, with the
 * agent's `istio_agent_` prefix), registered once on the agent's registry:
 * - `istio_agent_num_file_secret_failures_total`: reads of a file secret that failed (missing,
 *   a directory, unparsable, a key that does not match its certificate);
 * - `istio_agent_num_file_watcher_failures_total`: file watcher errors.
 * Istio's names already end in `_total`; nothing is appended.
 */
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import type { FileSecretMetrics } from './file-secrets.js';

export function registerFileSecretMetrics(registry: Registry): FileSecretMetrics {
  const failures = new Counter({ name: 'istio_agent_num_file_secret_failures_total', help: 'Number of times secret generation failed for files', registers: [registry] });
  const watchers = new Counter({ name: 'istio_agent_num_file_watcher_failures_total', help: 'Number of times file watcher failed to add watchers', registers: [registry] });
  failures.inc(0);
  watchers.inc(0);
  return { fileSecretFailed: () => failures.inc(), fileWatcherFailed: () => watchers.inc() };
}
