/**
 * The Envoy double's command line and bootstrap checks, against the real launcher process:
 * Envoy's TCLAP errors (exit 1), post-parse errors, --version, validate mode, and bootstrap
 * errors (exit 1 with Envoy's `error initializing configuration` line).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import {
  disposeTrackedDoubles,
  startTrackedDouble,
  minimalBootstrap,
} from '../support/envoy-double-harness.js';

afterEach(disposeTrackedDoubles);
const start = startTrackedDouble;

/** The argv pilot-agent passes (SPEC §5), with the seed's options. */
const ISTIO_ARGS = [
  '--drain-time-s', '45', '--drain-strategy', 'immediate', '--local-address-ip-version', 'v4',
  '--file-flush-interval-msec', '1000', '--disable-hot-restart', '--allow-unknown-static-fields',
  '-l', 'warning', '--component-log-level', 'misc:error', '--skip-deprecated-logs', '--concurrency', '2',
];

describe('CLI', () => {
  test('an unknown flag: TCLAP parse error on stderr, exit 1, start and exit recorded', async () => {
    const d = start({ args: [...ISTIO_ARGS, '--bogus-flag', 'x'] });
    expect(await d.waitExit()).toEqual({ code: 1, signal: null });
    expect(d.stderr).toContain('PARSE ERROR: Argument: --bogus-flag\n             Couldn\'t find match for argument\n\nBrief USAGE: \n');
    expect(d.stderr).toContain('For complete USAGE and HELP type: \n');
    expect(d.stderr).toMatch(/--bogus-flag -- Couldn't find match for argument\n$/);
    expect(d.stdout).toBe('');
    const [first, last] = d.records();
    expect(first?.argv).toEqual(expect.arrayContaining(['--bogus-flag']));
    expect(last).toMatchObject({ pid: d.pid, event: 'exit', code: 1 });
  });

  test.each([
    [['-c'], 'PARSE ERROR: Argument: (-c, --config-path)\n             Missing a value for this argument!'],
    [['--drain-time-s', 'abc'], "PARSE ERROR: Argument: --drain-time-s\n             Couldn't read argument value from string 'abc'"],
    [['-l', 'info', '-l', 'debug'], 'PARSE ERROR: Argument: (-l, --log-level)\n             Argument already set!'],
    [['--local-address-ip-version', 'v5'], "error: unknown IP address version 'v5'"],
    [['--mode', 'bogus'], "error: unknown mode 'bogus'"],
    [['--drain-strategy', 'slow'], "error: unknown drain-strategy 'slow'"],
    [['--component-log-level', 'misc'], "error: component log level not correctly specified 'misc'"],
    [['--component-log-level', 'nosuch:info'], "error: invalid component specified 'nosuch'"],
    [['-l', 'loud'], "error: invalid log level specified 'loud'"],
  ])('%j → exit 1: %s', async (args, message) => {
    const d = start({ rawArgs: args });
    expect((await d.waitExit()).code).toBe(1);
    expect(d.stderr).toContain(message);
  });

  test('--version prints Envoy\'s version line on stdout and exits 0', async () => {
    const d = start({ rawArgs: ['--version'] });
    expect((await d.waitExit()).code).toBe(0);
    expect(d.stdout).toMatch(/^\n\S*envoy {2}version: [0-9a-f]{40}\/1\.\d+\.\d+\/Clean\/RELEASE\/BoringSSL\n\n$/);
  });

  test('validate mode: the Istio argv (plus every optional flag the agent may add) is accepted', async () => {
    const d = start({
      args: [
        ...ISTIO_ARGS, '--file-flush-min-size-kb', '64', '--enable-core-dump', '--restart-epoch', '0', '--base-id', '7',
        '--parent-shutdown-time-s', '60', '--service-cluster', 'c', '--service-node', 'n', '--log-format', '%v',
        '--config-yaml', '{"node":{"id":"x"}}', '--mode', 'validate',
      ],
    });
    expect(await d.waitExit()).toEqual({ code: 0, signal: null });
    expect(d.stdout).toMatch(/^configuration '.*envoy\.json' OK\n$/);
  });
});

describe('bootstrap checks', () => {
  const admin = minimalBootstrap().admin;
  const cases: Array<[string, Record<string, unknown> | string, string]> = [
    ['malformed JSON', '{"admin": ', 'Unable to parse JSON as proto (INVALID_ARGUMENT:'],
    ['no admin address', { node: { id: 'x' } }, 'no admin.address'],
    ['admin address not an IP', { admin: { address: { socket_address: { address: 'localhost', port_value: 0 } } } }, 'malformed IP address: localhost'],
    ['admin port out of range', { admin: { address: { socket_address: { address: '127.0.0.1', port_value: 70000 } } } }, 'PortValue: value must be less than or equal to 65535'],
    ['listener without address', { admin, static_resources: { listeners: [{ name: 'l', filter_chains: [{ filters: [] }] }] } }, "error adding listener named 'l': address is necessary"],
    [
      'duplicate listener names',
      { admin, static_resources: { listeners: [1, 2].map(() => ({ name: 'dup', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [{ filters: [] }] })) } },
      "error adding listener named 'dup': duplicate listener name",
    ],
    ['duplicate cluster names', { admin, static_resources: { clusters: [{ name: 'c' }, { name: 'c' }] } }, "cluster manager: duplicate cluster 'c'"],
    [
      'endpoint without an address',
      { admin, static_resources: { clusters: [{ name: 'c', load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: {} }] }] } }] } },
      'Address must be a socket or pipe',
    ],
    [
      'route to a cluster that does not exist',
      {
        admin,
        static_resources: {
          listeners: [
            {
              name: 'l',
              address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
              filter_chains: [
                {
                  filters: [
                    {
                      name: 'envoy.filters.network.http_connection_manager',
                      typed_config: { stat_prefix: 'p', route_config: { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'nope' } }] }] } },
                    },
                  ],
                },
              ],
            },
          ],
        },
      },
      "route: unknown cluster 'nope'",
    ],
  ];

  test('invalid bootstraps exit 1 with Envoy\'s critical line and the reason', async () => {
    const runs = cases.map(([name, content, message]) => {
      const d = typeof content === 'string' ? start({ files: { 'bad.json': content }, rawArgs: ['-c', 'bad.json'] }) : start({ bootstrap: content });
      return d.waitExit().then((exit) => ({ name, d, exit, message }));
    });
    for (const { name, d, exit, message } of await Promise.all(runs)) {
      expect({ name, exit }).toEqual({ name, exit: { code: 1, signal: null } });
      expect(d.stderr).toMatch(/\[critical\]\[main\] \[\S+\] error initializing configuration '.*': /);
      expect(d.stderr).toContain(message);
    }
  });

  test('a missing file, malformed YAML, and no config at all', async () => {
    const missing = start({ rawArgs: ['-c', 'nope.json'] });
    const yaml = start({ files: { 'b.yaml': 'admin: [unclosed' }, rawArgs: ['-c', 'b.yaml'] });
    const none = start({ rawArgs: ['-l', 'info'] });
    await Promise.all([missing.waitExit(), yaml.waitExit(), none.waitExit()]);
    expect([missing.exit?.code, yaml.exit?.code, none.exit?.code]).toEqual([1, 1, 1]);
    expect(missing.stderr).toContain('Invalid path: nope.json');
    expect(yaml.stderr).toContain('Unable to convert YAML as JSON');
    expect(none.stderr).toContain('At least one of --config-path or --config-yaml');
  });

  test('--log-format together with application_log_config is rejected, as in Envoy', async () => {
    const d = start({ bootstrap: { ...minimalBootstrap(), application_log_config: { log_format: { text_format: '%v' } } }, args: ['--log-format', '%v'] });
    expect((await d.waitExit()).code).toBe(1);
    expect(d.stderr).toContain('Only one of ApplicationLogConfig.log_format or CLI option --log-format can be specified.');
  });

  test('an empty STATIC cluster is valid (Istio\'s BlackHoleCluster has no endpoints); unknown fields are accepted', async () => {
    const d = start({
      bootstrap: { ...minimalBootstrap(), not_a_bootstrap_field: { x: 1 }, static_resources: { clusters: [{ name: 'BlackHoleCluster', type: 'STATIC', connect_timeout: '10s', unknown_cluster_field: true }] } },
      args: ['--mode', 'validate'],
    });
    expect(await d.waitExit()).toEqual({ code: 0, signal: null });
  });
});
