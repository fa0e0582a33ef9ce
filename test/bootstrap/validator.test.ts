/**
 * The strict Envoy v3 Bootstrap validator (test/support/bootstrap-validator.ts) against
 * Envoy's real protos from @grpc/grpc-js-xds/deps: Istio's real golden bootstrap passes, and
 * mutated copies are rejected at the right JSON path.
 */
import { describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assertValidBootstrap,
  loadEnvoyProtos,
  protoLoadReport,
  validateBootstrap,
  validateMessage,
  type BootstrapValidationError,
} from '../support/bootstrap-validator.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const GOLDEN_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'bootstrap', 'istio-default_golden.json');
const GOLDEN = JSON.parse(fs.readFileSync(GOLDEN_FILE, 'utf8')) as Json;

/** A deep copy of Istio's golden bootstrap, changed by `mutate`. */
function mutated(mutate: (b: Json) => void): Json {
  const b = structuredClone(GOLDEN);
  mutate(b);
  return b;
}

const paths = (errors: BootstrapValidationError[]) => errors.map((e) => e.path);
const cluster = (b: Json, name: string) => (b.static_resources.clusters as Json[]).find((c) => c.name === name) as Json;
const hcm = (b: Json, listener: number) => b.static_resources.listeners[listener].filter_chains[0].filters[0].typed_config as Json;
const HCM_PATH = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';

describe("Envoy's protos", () => {
  test('load once from @grpc/grpc-js-xds/deps; only files with imports missing from the snapshot are skipped', () => {
    const root = loadEnvoyProtos();
    expect(loadEnvoyProtos()).toBe(root); // cached
    const report = protoLoadReport();
    expect(report.depsDir).toMatch(/@grpc[/\\]grpc-js-xds[/\\]deps$/);
    expect(report.loaded).toBeGreaterThan(400);
    // Every skipped file really imports something the snapshot lacks (e.g. envoy/api/v2, opencensus).
    for (const rel of report.skipped) {
      const file = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate']
        .map((r) => path.join(report.depsDir, r, rel))
        .find((p) => fs.existsSync(p)) as string;
      expect(file).toBeDefined();
    }
    expect(report.skipped.some((s) => s.startsWith('envoy/config/bootstrap/v3/'))).toBe(false);
    for (const name of [
      'envoy.config.bootstrap.v3.Bootstrap',
      'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      'envoy.extensions.filters.http.router.v3.Router',
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      'envoy.extensions.bootstrap.internal_listener.v3.InternalListener',
      'envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
      'envoy.extensions.access_loggers.file.v3.FileAccessLog',
      'udpa.type.v1.TypedStruct',
      'xds.type.v3.TypedStruct',
    ]) {
      expect(root.lookupType(name).fullName).toBe(`.${name}`);
    }
  });
});

describe("Istio's real golden bootstrap", () => {
  test('validates with no errors', () => {
    expect(validateBootstrap(GOLDEN)).toEqual([]);
    expect(() => assertValidBootstrap(GOLDEN)).not.toThrow();
  });

  test('it really exercises Any, TypedStruct, maps, wrappers and durations (so the pass means something)', () => {
    expect(hcm(GOLDEN, 0)['@type']).toMatch(/HttpConnectionManager$/);
    expect(GOLDEN.bootstrap_extensions[0].typed_config['@type']).toBe('type.googleapis.com/udpa.type.v1.TypedStruct');
    expect(Object.keys(cluster(GOLDEN, 'xds-grpc').typed_extension_protocol_options)).toEqual(['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']);
    expect(cluster(GOLDEN, 'xds-grpc').connect_timeout).toBe('1s');
  });
});

describe('mutated copies are rejected at the right path', () => {
  test('an unknown top-level field', () => {
    const errors = validateBootstrap(mutated((b) => (b.not_a_field = true)));
    expect(errors).toEqual([{ path: 'not_a_field', message: 'unknown field "not_a_field" in envoy.config.bootstrap.v3.Bootstrap' }]);
  });

  test('an unknown field in a list element: static_resources.clusters[2].foo', () => {
    const errors = validateBootstrap(mutated((b) => (b.static_resources.clusters[2].foo = 'bar')));
    expect(errors).toEqual([{ path: 'static_resources.clusters[2].foo', message: 'unknown field "foo" in envoy.config.cluster.v3.Cluster' }]);
  });

  test('an unknown nested field inside an Any-typed config (HttpConnectionManager)', () => {
    const errors = validateBootstrap(
      mutated((b) => {
        hcm(b, 0).route_config.virtual_hosts[0].routes[0].route.clustr = 'typo';
      }),
    );
    expect(paths(errors)).toEqual([`${HCM_PATH}.route_config.virtual_hosts[0].routes[0].route.clustr`]);
    expect(errors[0]?.message).toBe('unknown field "clustr" in envoy.config.route.v3.RouteAction');
  });

  test('an unknown field inside a TypedStruct value is checked against its type_url', () => {
    const errors = validateBootstrap(mutated((b) => (b.bootstrap_extensions[0].typed_config.value.buffer_size = 64)));
    expect(errors).toEqual([
      {
        path: 'bootstrap_extensions[0].typed_config.value.buffer_size',
        message: 'unknown field "buffer_size" in envoy.extensions.bootstrap.internal_listener.v3.InternalListener',
      },
    ]);
    // A TypedStruct for a type this proto snapshot does not have (an Istio extension) is accepted.
    const istioExt = mutated((b) => (b.bootstrap_extensions[0].typed_config.type_url = 'type.googleapis.com/istio.workload.BootstrapExtension'));
    expect(validateBootstrap(istioExt)).toEqual([]);
  });

  test('wrong types: non-numeric string for an int, string for a message, string for a bool, bad enum', () => {
    const errors = validateBootstrap(
      mutated((b) => {
        b.admin.address.socket_address.port_value = 'fifteen';
        b.dynamic_resources.lds_config = 'ads';
        b.stats_config.use_all_default_tags = 'false';
        cluster(b, 'agent').lb_policy = 'ROUND_ROBBIN';
      }),
    );
    // Errors come in the document's key order (Istio's golden has stats_config before admin).
    expect(errors).toEqual([
      { path: 'stats_config.use_all_default_tags', message: 'expected bool (true or false), got string "false"' },
      { path: 'admin.address.socket_address.port_value', message: 'expected uint32 (an integer in range, as a number or a decimal string), got string "fifteen"' },
      { path: 'dynamic_resources.lds_config', message: 'expected an object (envoy.config.core.v3.ConfigSource), got string "ads"' },
      expect.objectContaining({ path: 'static_resources.clusters[1].lb_policy', message: expect.stringMatching(/^"ROUND_ROBBIN" is not a value of enum envoy\.config\.cluster\.v3\.Cluster\.LbPolicy/) }),
    ]);
  });

  test('ints: numbers and decimal strings within range pass; fractions and out-of-range fail', () => {
    const ok = mutated((b) => (b.admin.address.socket_address.port_value = '15000'));
    expect(validateBootstrap(ok)).toEqual([]);
    const bad = validateBootstrap(
      mutated((b) => {
        b.admin.address.socket_address.port_value = 1.5;
        cluster(b, 'agent').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 2 ** 32;
      }),
    );
    expect(paths(bad)).toEqual(['admin.address.socket_address.port_value', 'static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value']);
  });

  test('bad google.protobuf.Duration strings', () => {
    for (const d of ['5', '5 s', '1m', '0.1234567890s', 5]) {
      const errors = validateBootstrap(mutated((b) => (cluster(b, 'xds-grpc').connect_timeout = d)));
      expect(errors).toEqual([{ path: 'static_resources.clusters[3].connect_timeout', message: `expected a Duration string like "1s" or "0.250s", got ${typeof d === 'string' ? `string "${d}"` : 'number 5'}` }]);
    }
    for (const d of ['0s', '0.250s', '-1.5s', '315576000000s']) {
      expect(validateBootstrap(mutated((b) => (cluster(b, 'xds-grpc').connect_timeout = d)))).toEqual([]);
    }
  });

  test('an unknown @type', () => {
    const errors = validateBootstrap(mutated((b) => (hcm(b, 1)['@type'] = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr')));
    expect(errors).toEqual([
      {
        path: 'static_resources.listeners[1].filter_chains[0].filters[0].typed_config["@type"]',
        message: 'unknown type "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr" (no such message in Envoy\'s protos)',
      },
    ]);
  });

  test('an Any validates its fields against its @type (types of values; fields of another type are unknown)', () => {
    const errors = validateBootstrap(
      mutated((b) => {
        const filters = hcm(b, 0).http_filters as Json[];
        const router = (filters[filters.length - 1] as Json).typed_config;
        router.dynamic_stats = 'yes'; // a BoolValue
        router.stat_prefix = 'x'; // an HttpConnectionManager field, not a Router one
      }),
    );
    const routerIndex = (hcm(GOLDEN, 0).http_filters as Json[]).length - 1;
    expect(hcm(GOLDEN, 0).http_filters[routerIndex].name).toBe('envoy.filters.http.router');
    expect(errors).toEqual([
      { path: `${HCM_PATH}.http_filters[${routerIndex}].typed_config.dynamic_stats`, message: 'expected bool (true or false), got string "yes"' },
      { path: `${HCM_PATH}.http_filters[${routerIndex}].typed_config.stat_prefix`, message: 'unknown field "stat_prefix" in envoy.extensions.filters.http.router.v3.Router' },
    ]);
  });

  test('two members of the same oneof', () => {
    const errors = validateBootstrap(
      mutated((b) => {
        b.admin.address.socket_address.named_port = 'admin';
        cluster(b, 'agent').cluster_type = { name: 'envoy.clusters.aggregate' };
      }),
    );
    expect(errors).toEqual([
      {
        path: 'admin.address.socket_address.named_port',
        message: '"named_port" and "port_value" are both set, but only one member of oneof port_specifier of envoy.config.core.v3.SocketAddress may be',
      },
      {
        path: 'static_resources.clusters[1].cluster_type',
        message: '"cluster_type" and "type" are both set, but only one member of oneof cluster_discovery_type of envoy.config.cluster.v3.Cluster may be',
      },
    ]);
  });

  test('assertValidBootstrap lists every error', () => {
    const bad = mutated((b) => {
      b.foo = 1;
      b.static_resources.clusters[0].connect_timeout = '5';
    });
    expect(() => assertValidBootstrap(bad)).toThrow(
      'not a valid envoy.config.bootstrap.v3.Bootstrap (2 errors):\n' +
        '  static_resources.clusters[0].connect_timeout: expected a Duration string like "1s" or "0.250s", got string "5"\n' +
        '  foo: unknown field "foo" in envoy.config.bootstrap.v3.Bootstrap',
    );
  });
});

describe('proto3 JSON mapping details', () => {
  test('lowerCamel JSON names are accepted; the same field under both names is an error', () => {
    const camel = mutated((b) => {
      b.staticResources = b.static_resources;
      delete b.static_resources;
      b.staticResources.clusters[0].connectTimeout = b.staticResources.clusters[0].connect_timeout;
      delete b.staticResources.clusters[0].connect_timeout;
    });
    expect(validateBootstrap(camel)).toEqual([]);
    const both = validateBootstrap(mutated((b) => (b.statsConfig = { useAllDefaultTags: true })));
    expect(both).toEqual([{ path: 'statsConfig', message: 'field stats_config of envoy.config.bootstrap.v3.Bootstrap is given twice ("stats_config" and "statsConfig")' }]);
  });

  test('wrappers are bare scalars: UInt32Value 64 passes, {"value": 64} and "64x" fail', () => {
    const type = 'envoy.extensions.bootstrap.internal_listener.v3.InternalListener';
    expect(validateMessage(type, { buffer_size_kb: 64 })).toEqual([]);
    expect(validateMessage(type, { buffer_size_kb: '64' })).toEqual([]);
    expect(paths(validateMessage(type, { buffer_size_kb: { value: 64 } }))).toEqual(['buffer_size_kb']);
    expect(paths(validateMessage(type, { buffer_size_kb: '64x' }))).toEqual(['buffer_size_kb']);
    expect(paths(validateMessage(type, { buffer_size_kb: -1 }))).toEqual(['buffer_size_kb']);
  });

  test('Struct / Value are free-form; repeated needs an array; null means unset but not inside a list', () => {
    expect(validateBootstrap(mutated((b) => (b.node.metadata = { anything: [1, { deep: null }], x: 'y' })))).toEqual([]);
    expect(paths(validateBootstrap(mutated((b) => (b.node.metadata = 'str'))))).toEqual(['node.metadata']);
    expect(validateBootstrap(mutated((b) => (b.layered_runtime.layers[0].static_layer = { k: null, l: [true, 1] })))).toEqual([]);
    expect(validateBootstrap(mutated((b) => (b.admin.profile_path = null)))).toEqual([]);
    expect(paths(validateBootstrap(mutated((b) => (b.static_resources.clusters = { name: 'x' }))))).toEqual(['static_resources.clusters']);
    expect(paths(validateBootstrap(mutated((b) => b.static_resources.listeners.push(null))))).toEqual(['static_resources.listeners[2]']);
  });

  test('map keys and values: typed_extension_protocol_options is map<string, Any>', () => {
    const errors = validateBootstrap(
      mutated((b) => {
        const opts = cluster(b, 'sds-grpc').typed_extension_protocol_options;
        opts['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http3_protocol_optionz = {};
      }),
    );
    expect(paths(errors)).toEqual([
      'static_resources.clusters[2].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http3_protocol_optionz',
    ]);
  });

  test('an Any holding a well-known type uses {"@type", "value"}; an Any without @type is an error', () => {
    const dur = { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '1.5s' };
    expect(validateMessage('google.protobuf.Any', dur)).toEqual([]);
    expect(paths(validateMessage('google.protobuf.Any', { ...dur, value: '1.5' }))).toEqual(['value']);
    expect(paths(validateMessage('google.protobuf.Any', { path: '/dev/null' }))).toEqual(['']);
    expect(validateMessage('google.protobuf.Any', {})).toEqual([]);
  });

  test('enums accept integers; int64 accepts decimal strings; bytes must be base64', () => {
    expect(validateBootstrap(mutated((b) => (cluster(b, 'agent').lb_policy = 0)))).toEqual([]);
    expect(validateMessage('google.protobuf.Int64Value', '-9223372036854775808')).toEqual([]);
    expect(paths(validateMessage('google.protobuf.Int64Value', '9223372036854775808'))).toEqual(['']);
    expect(validateMessage('google.protobuf.BytesValue', 'aGVsbG8=')).toEqual([]);
    expect(paths(validateMessage('google.protobuf.BytesValue', 'not base64!'))).toEqual(['']);
  });
});
