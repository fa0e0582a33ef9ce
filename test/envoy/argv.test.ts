import { describe, expect, test } from '@jest/globals';
import { envoyArgv } from '../../src/envoy/argv.js';
import { seedConfig } from '../support/config.js';

const base = ['-c', 'etc/istio/proxy/envoy-rev.json', '--drain-time-s', '45', '--drain-strategy', 'immediate'];
const tail = ['--file-flush-interval-msec', '1000', '--disable-hot-restart', '--allow-unknown-static-fields'];

describe('Envoy argv (SPEC §5)', () => {
  test("the seed's args", () => {
    expect(envoyArgv({ config: seedConfig(), bootstrapPath: 'etc/istio/proxy/envoy-rev.json', ipv6: false })).toEqual([
      ...base,
      '--local-address-ip-version',
      'v4',
      ...tail,
      '-l',
      'warning',
      '--component-log-level',
      'misc:error',
      '--skip-deprecated-logs',
      '--concurrency',
      '2',
    ]);
  });

  test('--proxyLogLevel=info,misc:error', () => {
    const config = seedConfig({ argv: ['sidecar', '--proxyLogLevel=info,misc:error'] });
    expect(envoyArgv({ config, bootstrapPath: 'etc/istio/proxy/envoy-rev.json', ipv6: false })).toEqual([
      ...base,
      '--local-address-ip-version',
      'v4',
      ...tail,
      '-l',
      'info',
      '--component-log-level',
      'misc:error',
      '--skip-deprecated-logs',
    ]);
  });

  test('IPv6', () => {
    const args = envoyArgv({ config: seedConfig(), bootstrapPath: 'etc/istio/proxy/envoy-rev.json', ipv6: true });
    expect(args.slice(6, 8)).toEqual(['--local-address-ip-version', 'v6']);
  });

  test('override file, flush settings, core dump, no skip-deprecated-logs', () => {
    const config = seedConfig({
      extraEnv: {
        PROXY_CONFIG: 'fileFlushInterval: 250ms\nfileFlushMinSizeKb: 64\ndrainDuration: 1m30s',
        ENVOY_SKIP_DEPRECATED_LOGS: 'false',
        ISTIO_ENVOY_ENABLE_CORE_DUMP: 'true',
      },
    });
    const args = envoyArgv({ config, bootstrapPath: 'b.json', ipv6: false, configYaml: '{"a":1}' });
    expect(args).toEqual([
      '-c',
      'b.json',
      '--drain-time-s',
      '90',
      '--drain-strategy',
      'immediate',
      '--local-address-ip-version',
      'v4',
      '--file-flush-interval-msec',
      '250',
      '--disable-hot-restart',
      '--allow-unknown-static-fields',
      '--file-flush-min-size-kb',
      '64',
      '-l',
      'warning',
      '--component-log-level',
      'misc:error',
      '--enable-core-dump',
      '--config-yaml',
      '{"a":1}',
      '--concurrency',
      '2',
    ]);
  });

  test('hot restart replaces --disable-hot-restart', () => {
    const args = envoyArgv({ config: seedConfig(), bootstrapPath: 'b.json', ipv6: false, hotRestart: { epoch: 3, baseId: 7 } });
    expect(args).toContain('--restart-epoch');
    expect(args).not.toContain('--disable-hot-restart');
    expect(args.slice(args.indexOf('--restart-epoch'), args.indexOf('--restart-epoch') + 6)).toEqual([
      '--restart-epoch',
      '3',
      '--parent-shutdown-time-s',
      '60',
      '--base-id',
      '7',
    ]);
  });
});
