import { describe, expect, test } from '@jest/globals';
import { Counter } from 'prom-client';
import { createAgentMetrics } from '../../src/metrics/registry.js';
import { parseExposition } from '../support/metrics-parse.js';

describe('agent registry (SPEC §12)', () => {
  test("Istio's counter names, zero series for every source, default metrics under istio_agent_", async () => {
    const { registry } = createAgentMetrics();
    const text = await registry.metrics();
    expect(text).toContain('# TYPE istio_agent_scrapes_total counter\nistio_agent_scrapes_total 0');
    for (const type of ['agent', 'envoy', 'application']) expect(text).toContain(`istio_agent_scrape_failures_total{type="${type}"} 0`);
    expect(text).toContain('istio_agent_scrape_duplicate_families_total{type="application"} 0');
    expect(text).toContain('istio_agent_process_cpu_seconds_total');
    expect(text).toContain('istio_agent_nodejs_heap_size_total_bytes');
    const names = [...parseExposition(text, false).families.keys()];
    expect(names.filter((n) => !n.startsWith('istio_agent_'))).toEqual([]);
  });

  test('one registry per agent: no shared state, others can register on it', async () => {
    const a = createAgentMetrics({ defaultMetrics: false });
    const b = createAgentMetrics({ defaultMetrics: false });
    a.scrapes.inc();
    new Counter({ name: 'istio_agent_envoy_restarts_total', help: 'x', labelNames: ['reason'], registers: [a.registry] }).labels('crash').inc();
    expect(await a.registry.getSingleMetricAsString('istio_agent_scrapes_total')).toContain('istio_agent_scrapes_total 1');
    expect(await b.registry.getSingleMetricAsString('istio_agent_scrapes_total')).toContain('istio_agent_scrapes_total 0');
    expect(await a.registry.metrics()).toContain('istio_agent_envoy_restarts_total{reason="crash"} 1');
    expect(await b.registry.metrics()).not.toContain('envoy_restarts');
  });
});
