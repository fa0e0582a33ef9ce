import { afterAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BootstrapWriter, chooseSdsSocket, readBootstrapOverride } from '../../src/bootstrap/bootstrap.js';
import { computeIdentity } from '../../src/bootstrap/node.js';
import { AgentError } from '../../src/errors.js';
import { assertValidBootstrap } from '../support/bootstrap-validator.js';
import { POD_INTERFACES, POD_INTERFACES_V6, seedConfig } from '../support/config.js';
import { expectGolden } from '../support/golden.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-test-'));
afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }));

function render(over: Parameters<typeof seedConfig>[0] = {}, interfaces = POD_INTERFACES): { text: string; json: Json } {
  const config = seedConfig({ cwd, ...over });
  const identity = computeIdentity(config, { interfaces });
  const writer = new BootstrapWriter(config);
  const text = writer.render(identity, config.pod.annotations);
  return { text, json: JSON.parse(text) as Json };
}

const listener = (b: Json, port: number) => (b.static_resources.listeners as Json[]).find((l) => l.address.socket_address.port_value === port) as Json;
const cluster = (b: Json, name: string) => (b.static_resources.clusters as Json[]).find((c) => c.name === name) as Json;
const endpoint = (c: Json) => c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address;

describe('bootstrap for the seed pod (SPEC §4)', () => {
  const { text, json: b } = render();

  test('golden', () => expectGolden('bootstrap/seed.json', text));

  test("validates against Envoy's v3 Bootstrap proto (strict)", () => {
    expect(() => assertValidBootstrap(b)).not.toThrow();
  });

  test('node', () => {
    expect(b.node.id).toBe('sidecar~10.244.1.7~jiuxi-7d9c8-abcde.jiuxi-ns~jiuxi-ns.svc.cluster.local');
    expect(b.node.cluster).toBe('jiuxi.jiuxi-ns');
    expect(b.node.metadata.POD_PORTS).toBe('[\n    {"containerPort":80}\n]');
    expect(b.node.locality).toEqual({});
  });

  test('admin on 127.0.0.1:15000', () => {
    expect(b.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 15000 });
    expect(b.admin.profile_path).toBe('/var/lib/istio/data/envoy.prof');
  });

  test('listeners 15090 and 15021 route to prometheus_stats and agent', () => {
    const prom = listener(b, 15090);
    expect(prom.name).toBe('0.0.0.0_15090');
    expect(prom.ignore_global_conn_limit).toBe(true);
    expect(prom.bypass_overload_manager).toBe(true);
    const promHcm = prom.filter_chains[0].filters[0].typed_config;
    expect(promHcm.stat_prefix).toBe('stats');
    expect(promHcm.route_config.virtual_hosts[0].routes).toEqual([{ match: { prefix: '/stats/prometheus' }, route: { cluster: 'prometheus_stats' } }]);
    const ready = listener(b, 15021);
    expect(ready.name).toBe('0.0.0.0_15021');
    const readyHcm = ready.filter_chains[0].filters[0].typed_config;
    expect(readyHcm.stat_prefix).toBe('agent');
    expect(readyHcm.route_config.virtual_hosts[0].routes).toEqual([{ match: { prefix: '/healthz/ready' }, route: { cluster: 'agent' } }]);
  });

  test('static clusters', () => {
    expect(endpoint(cluster(b, 'prometheus_stats')).socket_address).toMatchObject({ address: '127.0.0.1', port_value: 15000 });
    expect(endpoint(cluster(b, 'agent')).socket_address).toMatchObject({ address: '127.0.0.1', port_value: 15020 });
    expect(cluster(b, 'agent').connect_timeout).toBe('0.250s');
    expect(cluster(b, 'agent').alt_stat_name).toBe('agent;');
    const xds = cluster(b, 'xds-grpc');
    expect(endpoint(xds).pipe.path).toBe('./etc/istio/proxy/XDS');
    expect(xds.connect_timeout).toBe('1s');
    expect(xds.max_requests_per_connection).toBe(1);
    expect(xds.upstream_connection_options.tcp_keepalive.keepalive_time).toBe(300);
    expect(xds.circuit_breakers.thresholds).toHaveLength(2);
    expect(endpoint(cluster(b, 'sds-grpc')).pipe.path).toBe('./etc/istio/proxy/SDS');
  });

  test('dynamic resources: Delta ADS, node on first message only', () => {
    expect(b.dynamic_resources.ads_config).toMatchObject({ api_type: 'DELTA_GRPC', set_node_on_first_message_only: true, transport_api_version: 'V3' });
    expect(b.dynamic_resources.lds_config).toEqual({ ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' });
    expect(b.dynamic_resources.cds_config).toEqual({ ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' });
  });

  test('stats tags order and inclusion patterns', () => {
    const names = (b.stats_config.stats_tags as Json[]).map((t) => t.tag_name);
    expect(names).toEqual([
      'cluster_name',
      'http_conn_manager_prefix',
      'thread_name',
      'tcp_prefix',
      'response_code',
      'response_code_class',
      'http_conn_manager_listener_prefix',
      'listener_address',
      'mongo_prefix',
      'cache',
      'component',
      'tag',
      'wasm_filter',
      'authz_enforce_result',
      'authz_dry_run_action',
      'authz_dry_run_result',
    ]);
    expect(b.stats_config.stats_matcher.inclusion_list.patterns).toEqual([
      { prefix: 'reporter=' },
      { prefix: 'cluster_manager' },
      { prefix: 'listener_manager' },
      { prefix: 'server' },
      { prefix: 'cluster.xds-grpc' },
      { prefix: 'wasm' },
      { suffix: 'rbac.allowed' },
      { suffix: 'rbac.denied' },
      { suffix: 'shadow_allowed' },
      { suffix: 'shadow_denied' },
      { safe_regex: { regex: 'vhost\\..*\\.route\\..*' } },
      { prefix: 'component' },
      { prefix: 'istio' },
    ]);
  });

  test('the stats tag regexes extract what Istio’s do', () => {
    const tag = (name: string) => new RegExp(((b.stats_config.stats_tags as Json[]).find((t) => t.tag_name === name) as Json).regex);
    expect('cluster.outbound|80||jiuxi.jiuxi-ns.svc.cluster.local;.upstream_rq_total'.match(tag('cluster_name'))?.[2]).toBe(
      'outbound|80||jiuxi.jiuxi-ns.svc.cluster.local',
    );
    expect('listener.10.244.1.7_80.downstream_cx_total'.match(tag('listener_address'))?.[2]).toBe('10.244.1.7_80');
    expect('listener.[__1]_80.downstream_cx_total'.match(tag('listener_address'))?.[2]).toBe('[__1]_80');
    expect('http.inbound_0.0.0.0_8080;.downstream_rq_total'.match(tag('http_conn_manager_prefix'))?.[2]).toBe('inbound_0.0.0.0_8080');
    expect('cluster.x.upstream_rq_503'.match(tag('response_code'))?.[2]).toBe('503');
  });

  test('overload manager and runtime', () => {
    expect(b.overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections).toBe(2147483647);
    expect(b.layered_runtime.layers.map((l: Json) => l.name)).toEqual(['global config', 'admin']);
    expect(b.bootstrap_extensions[0].typed_config.value).toEqual({ buffer_size_kb: 64 });
    expect(b.application_log_config.log_format.text_format).toBe('%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t');
  });
});

describe('standalone bootstrap', () => {
  const { text, json: b } = render({ extraArgs: ['--standalone'] });
  test('golden', () => expectGolden('bootstrap/standalone.json', text));
  test('validates', () => expect(() => assertValidBootstrap(b)).not.toThrow());
  test('no dynamic_resources, no xds-grpc; sds-grpc stays', () => {
    expect(b.dynamic_resources).toBeUndefined();
    expect(cluster(b, 'xds-grpc')).toBeUndefined();
    expect(cluster(b, 'sds-grpc')).toBeDefined();
    expect(b.node.metadata.PILOT_SAN).toBeUndefined();
  });
});

describe('bootstrap variants', () => {
  test('IPv6 pod: ::1 and :: everywhere, listener names included', () => {
    const { json: b } = render({ extraEnv: { INSTANCE_IP: 'fd00:10:244::7' } }, POD_INTERFACES_V6);
    expect(b.admin.address.socket_address.address).toBe('::1');
    expect(listener(b, 15090).name).toBe('::_15090');
    expect(listener(b, 15021).address.socket_address.address).toBe('::');
    expect(endpoint(cluster(b, 'agent')).socket_address.address).toBe('::1');
    expect(() => assertValidBootstrap(b)).not.toThrow();
  });

  test('METRICS_LOCALHOST_ACCESS_ONLY (env or proxyMetadata) binds 15090 to 127.0.0.1', () => {
    const variants: Array<Record<string, string>> = [{ METRICS_LOCALHOST_ACCESS_ONLY: 'true' }, { PROXY_CONFIG: 'proxyMetadata: {METRICS_LOCALHOST_ACCESS_ONLY: "true"}' }];
    for (const extraEnv of variants) {
      const over = { extraEnv };
      const { json: b } = render(over);
      expect(listener(b, 15090).name).toBe('127.0.0.1_15090');
      expect(listener(b, 15090).address.socket_address.address).toBe('127.0.0.1');
      expect(listener(b, 15021).address.socket_address.address).toBe('0.0.0.0');
    }
  });

  test('stats annotations, extra stat tags, {pod_ip}, exit-on-zero suffix, ISTIO_DELTA_XDS=false, outlier log, locality, JSON logs', () => {
    const { json: b } = render({
      extraArgs: ['--outlierLogPath', '/dev/stdout', '--log_as_json'],
      extraEnv: {
        EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true',
        ISTIO_DELTA_XDS: 'false',
        PROXY_CONFIG: 'extraStatTags: [a, b]\nproxyStatsMatcher: {inclusionPrefixes: [fromconfig]}\nruntimeValues: {"overload.global_downstream_max_connections": "1000", "x.y": "z"}',
      },
      podLabelsText: 'app="jiuxi"\ntopology.istio.io/locality="r1.z1"',
      podAnnotationsText: 'sidecar.istio.io/statsInclusionPrefixes="upstream_cx,{pod_ip}_x"\nsidecar.istio.io/extraStatTags="b,c"',
    });
    const patterns = b.stats_config.stats_matcher.inclusion_list.patterns as Json[];
    expect(patterns.slice(0, 4)).toEqual([{ prefix: 'reporter=' }, { prefix: 'upstream_cx' }, { prefix: '10.244.1.7_x' }, { prefix: 'cluster_manager' }]);
    expect(patterns).toContainEqual({ suffix: 'downstream_cx_active' });
    expect(patterns).not.toContainEqual({ prefix: 'fromconfig' });
    const tags = (b.stats_config.stats_tags as Json[]).map((t) => t.tag_name);
    expect(tags.slice(9, 12)).toEqual(['a', 'b', 'c']);
    expect(((b.stats_config.stats_tags as Json[])[9] as Json).regex).toBe('(a=\\.=(.*?);\\.;)');
    expect(b.dynamic_resources.ads_config.api_type).toBe('GRPC');
    expect(b.cluster_manager.outlier_detection.event_log_path).toBe('/dev/stdout');
    expect(b.node.locality).toEqual({ region: 'r1', zone: 'z1' });
    expect(b.application_log_config.log_format.json_format).toEqual({
      time: '%Y-%m-%dT%T.%fZ',
      level: '%l',
      scope: 'envoy %n',
      msg: '%j',
      caller: '%g:%#',
      thread: '%t',
    });
    expect(b.overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections).toBe(1000);
    expect(b.layered_runtime.layers[0].static_layer['x.y']).toBe('z');
    expect(b.layered_runtime.layers[0].static_layer['overload.global_downstream_max_connections']).toBeUndefined();
    expect(() => assertValidBootstrap(b)).not.toThrow();
  });
});

describe('bootstrap shell', () => {
  test('SDS socket: workload-spiffe-uds when the directory exists and is writable, else <configPath>/SDS', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sds-choice-'));
    try {
      expect(chooseSdsSocket(seedConfig({ cwd: dir })).path).toBe('./etc/istio/proxy/SDS');
      fs.mkdirSync(path.join(dir, 'var/run/secrets/workload-spiffe-uds'), { recursive: true });
      const choice = chooseSdsSocket(seedConfig({ cwd: dir }));
      expect(choice.path).toBe('./var/run/secrets/workload-spiffe-uds/socket');
      expect(choice.absolute).toBe(path.join(dir, 'var/run/secrets/workload-spiffe-uds/socket'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('writes envoy-rev.json (dir 0700) and removes it; -c path is Go-cleaned', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-write-'));
    try {
      const config = seedConfig({ cwd: dir });
      const w = new BootstrapWriter(config);
      const p = w.write(computeIdentity(config, { interfaces: POD_INTERFACES }), {});
      expect(p).toBe('etc/istio/proxy/envoy-rev.json');
      expect(fs.statSync(path.join(dir, 'etc/istio/proxy')).mode & 0o777).toBe(0o700);
      expect(JSON.parse(fs.readFileSync(path.join(dir, p), 'utf8')).node.id).toContain('sidecar~');
      w.remove();
      expect(fs.existsSync(path.join(dir, p))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unwritable configPath names it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-unwritable-'));
    try {
      fs.writeFileSync(path.join(dir, 'file'), 'x');
      const config = seedConfig({ cwd: dir, extraEnv: { PROXY_CONFIG: 'configPath: ./file/proxy' } });
      const w = new BootstrapWriter(config);
      expect(() => w.write(computeIdentity(config, { interfaces: POD_INTERFACES }), {})).toThrow(
        /configPath .*\/file\/proxy: cannot write the Envoy bootstrap/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('custom templates: --templateFile, ISTIO_BOOTSTRAP wins; YAML template → envoy-rev.yaml', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-custom-'));
    try {
      fs.writeFileSync(path.join(dir, 'a.json'), '{"node": {"id": {{ toJSON .nodeID }}}, "admin": {"address": {"socket_address": {"address": "{{ .localhost }}", "port_value": {{ .config.ProxyAdminPort }}}}}}');
      fs.writeFileSync(path.join(dir, 'b.yaml.tmpl'), 'node:\n  id: {{ .nodeID }}\n');
      const a = seedConfig({ cwd: dir, extraArgs: ['--templateFile', 'a.json'] });
      const wa = new BootstrapWriter(a);
      expect(wa.template?.source).toBe('--templateFile');
      expect(JSON.parse(wa.render(computeIdentity(a, { interfaces: POD_INTERFACES }), {})).admin.address.socket_address.port_value).toBe(15000);
      const b = seedConfig({ cwd: dir, extraArgs: ['--templateFile', 'a.json'], extraEnv: { ISTIO_BOOTSTRAP: 'b.yaml.tmpl' } });
      const wb = new BootstrapWriter(b);
      expect(wb.template?.source).toBe('ISTIO_BOOTSTRAP');
      expect(wb.envoyPath).toBe('etc/istio/proxy/envoy-rev.yaml');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a template outside the subset fails at start, naming the construct and line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-bad-'));
    try {
      fs.writeFileSync(path.join(dir, 't.json'), '{\n\n{{ with .x }}{{ end }}}');
      expect(() => new BootstrapWriter(seedConfig({ cwd: dir, extraArgs: ['--templateFile', 't.json'] }))).toThrow(AgentError);
      expect(() => new BootstrapWriter(seedConfig({ cwd: dir, extraArgs: ['--templateFile', 't.json'] }))).toThrow(/line 3.*with|with.*line 3/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ISTIO_BOOTSTRAP_OVERRIDE: $(HOST_IP) substituted (IPv6 bracketed), YAML → JSON; bad file reported', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-override-'));
    try {
      fs.writeFileSync(path.join(dir, 'o.yaml'), 'tracing:\n  http:\n    address: "$(HOST_IP):9411"\n');
      fs.writeFileSync(path.join(dir, 'bad.yaml'), 'a: [');
      expect(readBootstrapOverride(seedConfig({ cwd: dir, extraEnv: { ISTIO_BOOTSTRAP_OVERRIDE: 'o.yaml' } }))).toEqual({
        json: '{"tracing":{"http":{"address":"192.168.49.2:9411"}}}',
      });
      expect(readBootstrapOverride(seedConfig({ cwd: dir, extraEnv: { ISTIO_BOOTSTRAP_OVERRIDE: 'o.yaml', HOST_IP: 'fd00::1' } })).json).toContain('[fd00::1]:9411');
      expect(readBootstrapOverride(seedConfig({ cwd: dir, extraEnv: { ISTIO_BOOTSTRAP_OVERRIDE: 'bad.yaml' } })).error).toMatch(/ISTIO_BOOTSTRAP_OVERRIDE: .*bad.yaml: not valid YAML/);
      expect(readBootstrapOverride(seedConfig({ cwd: dir, extraEnv: { ISTIO_BOOTSTRAP_OVERRIDE: 'missing.yaml' } })).error).toMatch(/cannot read/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
