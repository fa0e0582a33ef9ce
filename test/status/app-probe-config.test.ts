import { describe, expect, test } from '@jest/globals';
import { AppProbers, parseAppProbers } from '../../src/status/app-probe.js';
import { rewriteHost } from '../../src/status/app-probe-http.js';
import { ConfigError } from '../../src/errors.js';
import { seedConfig } from '../support/config.js';
import { quietLogger } from '../support/metrics-servers.js';

describe('ISTIO_KUBE_APP_PROBERS validation (SPEC §6.3)', () => {
  test('what the injector writes', () => {
    const raw = JSON.stringify({
      '/app-health/nginx/livez': { httpGet: { path: 'healthz', port: 8080, host: '10.0.0.9', scheme: 'HTTPS', httpHeaders: [{ name: 'X', value: 'y' }] }, timeoutSeconds: 3 },
      '/app-health/nginx/readyz': { tcpSocket: { port: 80 } },
      '/app-health/api/startupz': { grpc: { port: 9000, service: 'api' }, timeoutSeconds: 0 },
      '/app-lifecycle/nginx/prestopz': { httpGet: { path: '/stop?now=1', port: 8080 } },
    });
    expect(Object.fromEntries(parseAppProbers(raw))).toEqual({
      '/app-health/nginx/livez': { kind: 'httpGet', path: '/healthz', port: 8080, scheme: 'https', timeoutMs: 3000 },
      '/app-health/nginx/readyz': { kind: 'tcpSocket', port: 80, timeoutMs: 1000 },
      '/app-health/api/startupz': { kind: 'grpc', port: 9000, service: 'api', timeoutMs: 1000 },
      '/app-lifecycle/nginx/prestopz': { kind: 'httpGet', path: '/stop?now=1', port: 8080, scheme: 'http', timeoutMs: 1000 },
    });
  });

  test("unset, empty and the seed's {} mean no probers", () => {
    expect(parseAppProbers(undefined).size).toBe(0);
    expect(parseAppProbers('').size).toBe(0);
    expect(parseAppProbers('{}').size).toBe(0);
  });

  test.each<[string, unknown, RegExp]>([
    ['invalid JSON', '{', /^ISTIO_KUBE_APP_PROBERS: invalid JSON/],
    ['not a map', [1], /^ISTIO_KUBE_APP_PROBERS: expected a JSON object/],
    ['bad key', { '/app-health/x/healthz': { tcpSocket: { port: 1 } } }, /^ISTIO_KUBE_APP_PROBERS\["\/app-health\/x\/healthz"\]: invalid path, must match/],
    ['key with a slash in the container', { '/app-health/a/b/livez': { tcpSocket: { port: 1 } } }, /\["\/app-health\/a\/b\/livez"\]: invalid path/],
    ['no prober kind', { '/app-health/x/livez': { timeoutSeconds: 1 } }, /\["\/app-health\/x\/livez"\]: invalid prober type, must be exactly one of httpGet, tcpSocket or grpc$/],
    ['two kinds', { '/app-health/x/livez': { tcpSocket: { port: 1 }, grpc: { port: 2 } } }, /invalid prober type.*\(got tcpSocket, grpc\)/],
    ['string port (a named port)', { '/app-health/x/livez': { httpGet: { port: 'http' } } }, /\["\/app-health\/x\/livez"\]\.httpGet\.port: the port must be an integer 1-65535, got "http"/],
    ['tcp port out of range', { '/app-health/x/readyz': { tcpSocket: { port: 70000 } } }, /\.tcpSocket\.port: the port must be an integer/],
    ['grpc without port', { '/app-health/x/readyz': { grpc: { service: 'a' } } }, /\.grpc\.port: the port must be an integer 1-65535, got undefined/],
    ['negative timeout', { '/app-health/x/readyz': { tcpSocket: { port: 1 }, timeoutSeconds: -1 } }, /\.timeoutSeconds: expected a non-negative integer/],
    ['null prober', { '/app-health/x/readyz': null }, /expected a prober object/],
  ])('%s → ConfigError naming the variable and key', (_name, value, message) => {
    const raw = typeof value === 'string' ? value : JSON.stringify(value);
    let caught: unknown;
    try {
      parseAppProbers(raw);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(message);
  });
});

describe('from the config', () => {
  const probers = '{"/app-health/nginx/livez":{"tcpSocket":{"port":80}}}';
  test('destination is INSTANCE_IP; localhost when it is empty or the legacy flag is set', () => {
    const log = quietLogger();
    const dest = (env: Record<string, string>) => AppProbers.fromConfig(seedConfig({ extraEnv: { ISTIO_KUBE_APP_PROBERS: probers, ...env } }), { ipv6: false, log }).settings;
    expect(dest({}).destination).toBe('10.244.1.7');
    expect(dest({ INSTANCE_IP: '' }).destination).toBe('localhost');
    expect(dest({ REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION: 'true' }).destination).toBe('localhost');
    expect(dest({ INSTANCE_IP: 'fd00:10:244::7' })).toMatchObject({ destination: 'fd00:10:244::7', ipv6: true });
    expect(dest({}).http2).toBe(true);
    expect(dest({ ISTIO_ENABLE_HTTP2_PROBING: 'false' }).http2).toBe(false);
    expect(AppProbers.fromConfig(seedConfig({ extraEnv: { ISTIO_KUBE_APP_PROBERS: probers } }), { ipv6: false, log }).paths).toEqual(['/app-health/nginx/livez']);
    expect(() => AppProbers.fromConfig(seedConfig({ extraEnv: { ISTIO_KUBE_APP_PROBERS: '{"/x":{}}' } }), { ipv6: false, log })).toThrow(ConfigError);
  });
});

describe('Host rewrite (SPEC §6.3)', () => {
  test.each<[string | undefined, string | undefined]>([
    ['10.244.1.7:15020', '10.244.1.7:8080'],
    ['[fd00::7]:15020', '[fd00::7]:8080'],
    ['example.com:15020', 'example.com:8080'],
    ['10.244.1.7:9999', '10.244.1.7:9999'],
    ['example.com', 'example.com'],
    [undefined, undefined],
  ])('%s → %s', (incoming, expected) => {
    expect(rewriteHost(incoming, 15020, 8080)).toBe(expected);
  });
});
