import { describe, expect, test } from '@jest/globals';
import { buildConfig, parseProxyLogLevel, type ConfigInputs } from '../../src/config/load.js';
import { AgentError, ConfigError } from '../../src/errors.js';
import { PROXY_ENV } from '../../src/config/options.js';
import { SEED_ARGS, SEED_ENV } from '../support/seed.js';

function inputs(over: Partial<ConfigInputs> = {}): ConfigInputs {
  return { argv: [...SEED_ARGS], env: SEED_ENV, cwd: '/tmp/x', meshConfigPath: '/tmp/x/etc/istio/config/mesh', ...over };
}

describe('config: the seed pod', () => {
  const { config, warnings } = buildConfig(inputs());

  test('flags and env', () => {
    expect(config.proxyType).toBe('sidecar');
    expect(config.domain).toBe('jiuxi-ns.svc.cluster.local');
    expect(config.envoyLog).toEqual({ level: 'warning', components: ['misc:error'] });
    expect(config.proxy.concurrency).toBe(2);
    expect(config.pod).toMatchObject({ name: 'jiuxi-7d9c8-abcde', namespace: 'jiuxi-ns', instanceIp: '10.244.1.7' });
    expect(config.env.JWT_POLICY).toBe('first-party-jwt');
  });

  test('defaults (SPEC §2)', () => {
    expect(config.proxy).toMatchObject({
      configPath: './etc/istio/proxy',
      binaryPath: '/usr/local/bin/envoy',
      serviceCluster: 'istio-proxy',
      drainDuration: 45_000,
      terminationDrainDuration: 5_000,
      discoveryAddress: 'istiod.istio-system.svc:15012',
      proxyAdminPort: 15000,
      statusPort: 15020,
      controlPlaneAuthPolicy: 'MUTUAL_TLS',
      statNameLength: 189,
    });
    expect(config.statusPort).toBe(15020);
    expect(config.env.ENVOY_STATUS_PORT).toBe(15021);
    expect(config.env.MINIMUM_DRAIN_DURATION).toBe(5000);
    expect(config.env.ISTIO_DELTA_XDS).toBe(true);
  });

  test('--serviceCluster does not override the default serviceCluster; unknown --trust-domain is tolerated', () => {
    expect(config.proxy.serviceCluster).toBe('istio-proxy');
    expect(warnings.join('\n')).toContain('ignoring unknown flags: --trust-domain=cluster.local');
    expect(warnings.join('\n')).toContain('legacy --concurrency=2 flag detected; prefer to use ProxyConfig');
  });

  test('PROXY_CONFIG proxyMetadata is merged', () => {
    expect(config.proxy.proxyMetadata).toEqual({ DNS_AGENT: '' });
  });

  test('frozen', () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.proxy.proxyMetadata)).toBe(true);
  });
});

describe('config: layers and precedence', () => {
  test('mesh defaultConfig < PROXY_CONFIG < annotation; proxyMetadata merged key by key', () => {
    const { config } = buildConfig(
      inputs({
        meshConfigText: 'defaultConfig:\n  drainDuration: 10s\n  proxy_admin_port: 15001\n  proxyMetadata: {A: mesh, B: mesh}\n  extraStatTags: [x]\n',
        env: { ...SEED_ENV, PROXY_CONFIG: 'drain_duration: 1m30s\nproxyMetadata:\n  B: env\nextraStatTags: [y, z]\n' },
        podAnnotationsText: 'proxy.istio.io/config="proxyMetadata:\\n  C: ann\\nconcurrency: \\"4\\"\\n"',
      }),
    );
    expect(config.proxy.drainDuration).toBe(90_000);
    expect(config.proxy.proxyAdminPort).toBe(15001);
    expect(config.proxy.proxyMetadata).toEqual({ A: 'mesh', B: 'env', C: 'ann' });
    expect(config.proxy.extraStatTags).toEqual(['y', 'z']);
    // --concurrency 2 (non-zero flag) wins over the annotation's 4.
    expect(config.proxy.concurrency).toBe(2);
  });

  test('ISTIO_CPU_LIMIT fills an unset concurrency; a flag of 0 does not override', () => {
    const argv = SEED_ARGS.filter((a, i) => a !== '--concurrency' && SEED_ARGS[i - 1] !== '--concurrency');
    expect(buildConfig(inputs({ argv, env: { ...SEED_ENV, ISTIO_CPU_LIMIT: '3' } })).config.proxy.concurrency).toBe(3);
    expect(buildConfig(inputs({ argv: [...argv, '--concurrency', '0'], env: { ...SEED_ENV, ISTIO_CPU_LIMIT: '3' } })).config.proxy.concurrency).toBe(3);
    expect(
      buildConfig(inputs({ argv, env: { ...SEED_ENV, ISTIO_CPU_LIMIT: '3', PROXY_CONFIG: 'concurrency: 1' } })).config.proxy.concurrency,
    ).toBe(1);
  });

  test('TERMINATION_DRAIN_DURATION_SECONDS only when no layer sets terminationDrainDuration', () => {
    const env = { ...SEED_ENV, TERMINATION_DRAIN_DURATION_SECONDS: '30' };
    expect(buildConfig(inputs({ env })).config.proxy.terminationDrainDuration).toBe(30_000);
    const env2 = { ...env, PROXY_CONFIG: 'terminationDrainDuration: 7s' };
    expect(buildConfig(inputs({ env: env2 })).config.proxy.terminationDrainDuration).toBe(7000);
  });

  test('--serviceCluster fills an empty serviceCluster', () => {
    const env = { ...SEED_ENV, PROXY_CONFIG: 'serviceCluster: ""' };
    expect(buildConfig(inputs({ env })).config.proxy.serviceCluster).toBe('jiuxi.jiuxi-ns');
  });

  test('enums by name or number, quoted integers', () => {
    const env = { ...SEED_ENV, PROXY_CONFIG: '{"controlPlaneAuthPolicy": 0, "statusPort": "15030", "tracingServiceName": "CANONICAL_NAME_ONLY"}' };
    const { config } = buildConfig(inputs({ env }));
    expect(config.proxy.controlPlaneAuthPolicy).toBe('NONE');
    expect(config.proxy.statusPort).toBe(15030);
    expect(config.proxy.tracingServiceName).toBe('CANONICAL_NAME_ONLY');
  });

  test('annotations discoveryAddress and status port apply after validation', () => {
    const { config } = buildConfig(
      inputs({ podAnnotationsText: 'sidecar.istio.io/discoveryAddress="istiod-canary.istio-system.svc:15012"\nstatus.sidecar.istio.io/port="0"' }),
    );
    expect(config.discoveryAddress).toBe('istiod-canary.istio-system.svc:15012');
    expect(config.statusPort).toBe(0);
  });

  test('standalone from flag or env', () => {
    expect(buildConfig(inputs({ argv: [...SEED_ARGS, '--standalone'] })).config.standalone).toBe(true);
    expect(buildConfig(inputs({ env: { ...SEED_ENV, PILOT_AGENT_STANDALONE: 'true' } })).config.standalone).toBe(true);
    expect(buildConfig(inputs()).config.standalone).toBe(false);
  });
});

describe('config: bad input names its source', () => {
  const expectConfigError = (over: Partial<ConfigInputs>, message: string | RegExp) => {
    let caught: unknown;
    try {
      buildConfig(inputs(over));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AgentError);
    expect((caught as AgentError).exitCode).toBe(255);
    expect((caught as Error).message).toMatch(message);
  };

  test('unparsable PROXY_CONFIG', () => {
    expectConfigError({ env: { ...SEED_ENV, PROXY_CONFIG: '{"drainDuration": ' } }, /^PROXY_CONFIG: not valid YAML or JSON/);
  });

  test('a wrong type in PROXY_CONFIG names the JSON path and the expected form', () => {
    expectConfigError({ env: { ...SEED_ENV, PROXY_CONFIG: '{"drainDuration": 45}' } }, 'PROXY_CONFIG.drainDuration: expected a duration like "45s", got 45');
    expectConfigError({ env: { ...SEED_ENV, PROXY_CONFIG: 'concurrency: x' } }, 'PROXY_CONFIG.concurrency: expected an integer, got "x"');
    expectConfigError({ env: { ...SEED_ENV, PROXY_CONFIG: 'proxyMetadata: {A: [1]}' } }, 'PROXY_CONFIG.proxyMetadata.A: expected a string');
    expectConfigError({ env: { ...SEED_ENV, PROXY_CONFIG: 'controlPlaneAuthPolicy: MAYBE' } }, /controlPlaneAuthPolicy: expected one of NONE, MUTUAL_TLS/);
  });

  test('an unknown field in PROXY_CONFIG is a warning, not an error', () => {
    const { warnings, config } = buildConfig(inputs({ env: { ...SEED_ENV, PROXY_CONFIG: '{"drainDuration":"3s","fooBar":1}' } }));
    expect(warnings).toContain('PROXY_CONFIG: ignoring unknown ProxyConfig fields: fooBar');
    expect(config.proxy.drainDuration).toBe(3000);
  });

  test('proxy foo', () => {
    expectConfigError({ argv: ['foo'] }, 'proxy: invalid proxy type "foo": expected "sidecar" or "router"');
  });

  test('unparsable status.sidecar.istio.io/port annotation', () => {
    expectConfigError({ podAnnotationsText: 'status.sidecar.istio.io/port="abc"' }, 'annotation status.sidecar.istio.io/port: expected an integer port 0-65535, got "abc"');
    expectConfigError({ podAnnotationsText: 'status.sidecar.istio.io/port="70000"' }, /status\.sidecar\.istio\.io\/port/);
  });

  test('a bad discoveryAddress annotation', () => {
    expectConfigError({ podAnnotationsText: 'sidecar.istio.io/discoveryAddress="nohostport"' }, /annotation sidecar.istio.io\/discoveryAddress: expected host:port/);
  });

  test('validation: empty discoveryAddress stays an error, naming --standalone', () => {
    expectConfigError({ env: { ...SEED_ENV, PROXY_CONFIG: 'discoveryAddress: ""' } }, /discoveryAddress: must be set \(use --standalone/);
  });

  test('a bad typed env value warns and uses the default', () => {
    const { config, warnings } = buildConfig(inputs({ env: { ...SEED_ENV, ENVOY_STATUS_PORT: 'abc', EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'yes', MINIMUM_DRAIN_DURATION: '5' } }));
    expect(config.env.ENVOY_STATUS_PORT).toBe(15021);
    expect(config.env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS).toBe(false);
    expect(config.env.MINIMUM_DRAIN_DURATION).toBe(5000);
    expect(warnings).toContain('invalid value for env ENVOY_STATUS_PORT: "abc" (expected a base-10 integer); using default "15021"');
    expect(warnings.join('\n')).toContain('invalid value for env EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "yes"');
    expect(warnings.join('\n')).toContain('invalid value for env MINIMUM_DRAIN_DURATION: "5" (expected a duration like "5s")');
  });

  test('an integer below its row\'s minimum is a start-up error naming the variable; the minimum itself is fine', () => {
    expectConfigError({ env: { ...SEED_ENV, DNS_CACHE_SIZE: '-1' } }, /^DNS_CACHE_SIZE: expected an integer >= 0, got "-1"$/);
    expectConfigError({ env: { ...SEED_ENV, METRICS_MERGE_CONCURRENCY: '-2' } }, /^METRICS_MERGE_CONCURRENCY: expected an integer >= 0, got "-2"$/);
    expect(buildConfig(inputs({ env: { ...SEED_ENV, DNS_CACHE_SIZE: '0' } })).config.env.DNS_CACHE_SIZE).toBe(0);
  });

  test('a malformed podinfo file warns and counts as empty', () => {
    const { config, warnings } = buildConfig(inputs({ podLabelsText: 'app="jiuxi"\nversion=v1' }));
    expect(config.pod.labels).toEqual({});
    expect(warnings.join('\n')).toMatch(/podinfo labels: ignoring malformed file: line 2/);
  });

  test('a bad mesh config names the file', () => {
    expectConfigError({ meshConfigText: 'defaultConfig: [' }, /^mesh config \/tmp\/x\/etc\/istio\/config\/mesh: not valid YAML/);
  });

  test('errors are ConfigErrors', () => {
    expect(() => buildConfig(inputs({ env: { ...SEED_ENV, PROXY_CONFIG: '[1]' } }))).toThrow(ConfigError);
  });
});

describe('--proxyLogLevel (SPEC §1)', () => {
  test('info,misc:error', () => {
    expect(parseProxyLogLevel('info,misc:error', '', [])).toEqual({ level: 'info', components: ['misc:error'] });
  });
  test('last plain level wins; a:b:c dropped with a warning; --proxyComponentLogLevel only without components', () => {
    const w: string[] = [];
    expect(parseProxyLogLevel('debug,info,a:b:c', 'misc:error', w)).toEqual({ level: 'info', components: ['misc:error'] });
    expect(w[0]).toContain('"a:b:c"');
    expect(parseProxyLogLevel('warning,upstream:debug', 'misc:error', [])).toEqual({ level: 'warning', components: ['upstream:debug'] });
  });
});

describe('structured env values', () => {
  test('set-but-empty JSON env is kept as "" (its parser reports it); unset is undefined', () => {
    const { config } = buildConfig({ argv: [...SEED_ARGS], env: { ...SEED_ENV, ISTIO_PROMETHEUS_ANNOTATIONS: '' }, cwd: '/w', meshConfigPath: '/w/m' });
    expect(config.env.ISTIO_PROMETHEUS_ANNOTATIONS).toBe('');
    const { config: c2 } = buildConfig({ argv: [...SEED_ARGS], env: { ...SEED_ENV }, cwd: '/w', meshConfigPath: '/w/m' });
    expect(c2.env.ISTIO_PROMETHEUS_ANNOTATIONS).toBeUndefined();
    expect(c2.env.DRAIN_DEADLINE).toBeUndefined();
    expect(c2.env.TRUST_DOMAIN).toBe('cluster.local');
  });
});

describe('typed env record (derived from PROXY_ENV)', () => {
  const { config } = buildConfig(inputs());

  test('one field per variable of the table, each of its declared type', () => {
    expect(Object.keys(config.env).sort()).toEqual(PROXY_ENV.map((e) => e.name).sort());
    for (const spec of PROXY_ENV) {
      const v = config.env[spec.name];
      const expected = spec.type === 'bool' ? 'boolean' : spec.type === 'int' || spec.type === 'duration' ? 'number' : 'string';
      if (v === undefined) expect(spec.type !== 'string' && spec.default === '').toBe(true);
      else expect(`${spec.name}: ${typeof v}`).toBe(`${spec.name}: ${expected}`);
    }
  });

  test('field types follow the table at compile time (tsc checks these lines)', () => {
    const port: number = config.env.ENVOY_STATUS_PORT;
    const delta: boolean = config.env.ISTIO_DELTA_XDS;
    const policy: string = config.env.JWT_POLICY;
    const deadline: number | undefined = config.env.DRAIN_DEADLINE;
    // @ts-expect-error a misspelt variable name does not compile
    const typo = config.env.ENVOY_STATUS_PROT;
    // @ts-expect-error a duration without default may be unset: not a plain number
    const unchecked: number = config.env.DRAIN_DEADLINE;
    expect([port, delta, policy, deadline, typo, unchecked]).toEqual([15021, true, 'first-party-jwt', undefined, undefined, undefined]);
  });
});
