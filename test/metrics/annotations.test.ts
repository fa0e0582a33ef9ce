import { describe, expect, test } from '@jest/globals';
import { parsePrometheusAnnotations } from '../../src/metrics/annotations.js';
import { metricsEndpointOptions } from '../../src/status/stats.js';
import { createAgentMetrics } from '../../src/metrics/registry.js';
import { ConfigError } from '../../src/errors.js';
import { seedConfig } from '../support/config.js';

describe('ISTIO_PROMETHEUS_ANNOTATIONS (SPEC §6.2)', () => {
  test.each<[string, string | undefined, { path: string; port: number } | undefined]>([
    ['unset: no app scrape', undefined, undefined],
    ['injector output', '{"scrape":"true","path":"/stats","port":"8080"}', { path: '/stats', port: 8080 }],
    ['defaults: /metrics on 80', '{"scrape":"true"}', { path: '/metrics', port: 80 }],
    ['empty object', '{}', { path: '/metrics', port: 80 }],
    ['scrape false disables', '{"scrape":"false","port":"15020"}', undefined],
    ['unknown keys such as targets are ignored', '{"scrape":"true","port":"9090","targets":["x"]}', { path: '/metrics', port: 9090 }],
    ['a path without a leading slash gets one', '{"path":"prom"}', { path: '/prom', port: 80 }],
    ['an integer port is accepted', '{"port":9100}', { path: '/metrics', port: 9100 }],
  ])('%s', (_name, raw, expected) => {
    expect(parsePrometheusAnnotations(raw, 15020)).toEqual(expected);
  });

  test.each<[string, string, RegExp]>([
    ['set but empty is invalid JSON', '', /^ISTIO_PROMETHEUS_ANNOTATIONS: invalid JSON/],
    ['not JSON', '{scrape: true', /^ISTIO_PROMETHEUS_ANNOTATIONS: invalid JSON/],
    ['not an object', '["x"]', /^ISTIO_PROMETHEUS_ANNOTATIONS: expected a JSON object/],
    ['port is the status port', '{"scrape":"true","port":"15020"}', /^ISTIO_PROMETHEUS_ANNOTATIONS\.port: the application port is the agent's status port 15020/],
    ['port not a number', '{"port":"http"}', /^ISTIO_PROMETHEUS_ANNOTATIONS\.port: expected a port 1-65535, got "http"/],
    ['port out of range', '{"port":"70000"}', /^ISTIO_PROMETHEUS_ANNOTATIONS\.port/],
    ['scrape of the wrong type', '{"scrape":true}', /^ISTIO_PROMETHEUS_ANNOTATIONS\.scrape: expected a string/],
  ])('%s → ConfigError naming the variable', (_name, raw, message) => {
    let caught: unknown;
    try {
      parsePrometheusAnnotations(raw, 15020);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(message);
  });

  test('from the config: sidecars only, Envoy on ENVOY_PROMETHEUS_PORT', () => {
    const metrics = createAgentMetrics({ defaultMetrics: false });
    const sidecar = seedConfig({ extraEnv: { ISTIO_PROMETHEUS_ANNOTATIONS: '{"scrape":"true","port":"8080"}', ENVOY_PROMETHEUS_PORT: '15091' } });
    // The registry is compared by identity: a diff of it (circular) would break Jest's --json output.
    const options = (config: typeof sidecar, localhost: string) => {
      const { metrics: m, ...rest } = metricsEndpointOptions(config, { metrics, localhost });
      expect(m).toBe(metrics);
      return rest;
    };
    expect(options(sidecar, '127.0.0.1')).toEqual({
      localhost: '127.0.0.1',
      envoyPort: 15091,
      app: { path: '/metrics', port: 8080 },
      mergeConcurrency: 2,
      mergeQueue: 32,
    });
    const router = seedConfig({ extraArgs: [], argv: ['router'], extraEnv: { ISTIO_PROMETHEUS_ANNOTATIONS: '{"port":"15020"}' } });
    expect(metricsEndpointOptions(router, { metrics, localhost: '::1' }).app).toBeUndefined();
    const selfLoop = seedConfig({ extraEnv: { ISTIO_PROMETHEUS_ANNOTATIONS: '{"port":"15020"}' } });
    expect(() => metricsEndpointOptions(selfLoop, { metrics, localhost: '127.0.0.1' })).toThrow(ConfigError);
    const seed = seedConfig();
    expect(options(seed, '127.0.0.1')).toEqual({ localhost: '127.0.0.1', envoyPort: 15090, mergeConcurrency: 2, mergeQueue: 32 });
  });
});
