/**
 * The agent's own metrics outside merged scraping (SPEC §12): Envoy supervision, start-up,
 * podinfo and stderr forwarding. Registered on the agent's registry (`createAgentMetrics`).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { METRIC_PREFIX } from './registry.js';
import type { SupervisorMetrics } from '../supervisor/supervisor.js';

export interface AgentRuntimeMetrics {
  supervisor: SupervisorMetrics;
  startupDuration: Gauge;
  podinfoReloads: Counter;
  podinfoErrors: Counter;
  stderrLinesDropped: Counter;
}

export function createAgentRuntimeMetrics(registry: Registry): AgentRuntimeMetrics {
  const restarts = new Counter({
    name: `${METRIC_PREFIX}envoy_restarts_total`,
    help: 'Envoy restarts: after an unexpected exit, by how it ended (exited, signaled, killed), or hot restarts for a new bootstrap (hot_restart).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const r of ['exited', 'signaled', 'killed', 'hot_restart']) restarts.labels(r).inc(0);
  const up = new Gauge({ name: `${METRIC_PREFIX}envoy_up`, help: '1 while an Envoy process is running.', registers: [registry] });
  return {
    supervisor: { restart: (reason) => restarts.labels(reason).inc(), up: (v) => up.set(v) },
    startupDuration: new Gauge({
      name: `${METRIC_PREFIX}startup_duration_seconds`,
      help: 'Time from agent start to the first readiness success.',
      registers: [registry],
    }),
    podinfoReloads: new Counter({ name: `${METRIC_PREFIX}podinfo_reloads_total`, help: 'Podinfo changes applied.', registers: [registry] }),
    podinfoErrors: new Counter({ name: `${METRIC_PREFIX}podinfo_errors_total`, help: 'Podinfo files that could not be read or parsed.', registers: [registry] }),
    stderrLinesDropped: new Counter({
      name: `${METRIC_PREFIX}envoy_stderr_lines_dropped_total`,
      help: "Envoy stderr lines dropped because the agent's stderr could not keep up.",
      registers: [registry],
    }),
  };
}
