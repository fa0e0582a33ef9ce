/**
 * ProxyConfig (Istio's `meshconfig.ProxyConfig`): the schema of the fields we know,
 * a lenient layer parser (YAML or JSON, camelCase or snake_case, Go durations,
 * quoted integers, enums by name or number) and layer merging (SPEC §2). PURE.
 */
import { parseJsonOrYaml } from './json-or-yaml.js';
import { ConfigError } from '../errors.js';
import { formatProtoDuration, parseGoDuration } from '../go/duration.js';

export interface StatsMatcher {
  inclusionPrefixes?: string[];
  inclusionSuffixes?: string[];
  inclusionRegexps?: string[];
}

/** The effective ProxyConfig. Durations are milliseconds. */
export interface ProxyConfig {
  configPath: string;
  binaryPath: string;
  serviceCluster: string;
  tracingServiceName: string;
  drainDuration: number;
  parentShutdownDuration: number;
  terminationDrainDuration: number;
  discoveryAddress: string;
  proxyAdminPort: number;
  statusPort: number;
  controlPlaneAuthPolicy: string;
  customConfigFile: string;
  proxyBootstrapTemplatePath: string;
  statNameLength: number;
  /** 0 = unset. */
  concurrency: number;
  fileFlushInterval: number;
  fileFlushMinSizeKb: number;
  proxyMetadata: Record<string, string>;
  runtimeValues: Record<string, string>;
  extraStatTags: string[];
  proxyStatsMatcher: StatsMatcher;
  interceptionMode: string;
  meshId: string;
  holdApplicationUntilProxyStarts: boolean;
  /** `istio.networking.v1alpha3.ReadinessProbe`, validated by the health prober (SPEC §7.2). */
  readinessProbe?: Record<string, unknown>;
  /** Known fields we carry but do not interpret (tracing, …), kept for PROXY_CONFIG metadata. */
  passthrough: Record<string, unknown>;
}

type Kind =
  | 'string'
  | 'int'
  | 'duration'
  | 'bool'
  | 'stringMap'
  | 'stringList'
  | 'statsMatcher'
  | 'object'
  | { enum: Record<string, number> };

const ENUMS = {
  controlPlaneAuthPolicy: { NONE: 0, MUTUAL_TLS: 1, INHERIT: 1000 },
  tracingServiceName: { APP_LABEL_AND_NAMESPACE: 0, CANONICAL_NAME_ONLY: 1, CANONICAL_NAME_AND_NAMESPACE: 2 },
  interceptionMode: { REDIRECT: 0, TPROXY: 1, NONE: 2 },
};

/** Fields whose values we interpret, with their kinds. */
const FIELDS: Record<string, Kind> = {
  configPath: 'string',
  binaryPath: 'string',
  serviceCluster: 'string',
  tracingServiceName: { enum: ENUMS.tracingServiceName },
  drainDuration: 'duration',
  parentShutdownDuration: 'duration',
  terminationDrainDuration: 'duration',
  discoveryAddress: 'string',
  proxyAdminPort: 'int',
  statusPort: 'int',
  controlPlaneAuthPolicy: { enum: ENUMS.controlPlaneAuthPolicy },
  customConfigFile: 'string',
  proxyBootstrapTemplatePath: 'string',
  statNameLength: 'int',
  concurrency: 'int',
  fileFlushInterval: 'duration',
  fileFlushMinSizeKb: 'int',
  proxyMetadata: 'stringMap',
  runtimeValues: 'stringMap',
  extraStatTags: 'stringList',
  proxyStatsMatcher: 'statsMatcher',
  interceptionMode: { enum: ENUMS.interceptionMode },
  meshId: 'string',
  holdApplicationUntilProxyStarts: 'bool',
  readinessProbe: 'object',
};

/** Known ProxyConfig fields that the agent does not interpret: accepted silently, kept as given. */
const PASSTHROUGH = new Set([
  'discoveryRefreshDelay',
  'zipkinAddress',
  'statsdUdpAddress',
  'envoyMetricsServiceAddress',
  'availabilityZone',
  'tracing',
  'envoyAccessLogService',
  'envoyMetricsService',
  'sds',
  'gatewayTopology',
  'caCertificatesPem',
  'image',
  'privateKeyProvider',
  'proxyHeaders',
  'envoyAccessLogServiceAddress',
]);

export const PROXY_CONFIG_DEFAULTS: Readonly<ProxyConfig> = Object.freeze({
  configPath: './etc/istio/proxy',
  binaryPath: '/usr/local/bin/envoy',
  serviceCluster: 'istio-proxy',
  tracingServiceName: 'APP_LABEL_AND_NAMESPACE',
  drainDuration: 45_000,
  parentShutdownDuration: 60_000,
  terminationDrainDuration: 5_000,
  discoveryAddress: 'istiod.istio-system.svc:15012',
  proxyAdminPort: 15000,
  statusPort: 15020,
  controlPlaneAuthPolicy: 'MUTUAL_TLS',
  customConfigFile: '',
  proxyBootstrapTemplatePath: '',
  statNameLength: 189,
  concurrency: 0,
  fileFlushInterval: 0,
  fileFlushMinSizeKb: 0,
  proxyMetadata: {},
  runtimeValues: {},
  extraStatTags: [],
  proxyStatsMatcher: {},
  interceptionMode: 'REDIRECT',
  meshId: '',
  holdApplicationUntilProxyStarts: false,
  passthrough: {},
});

/** One parsed layer: only the fields it set. */
export type ProxyConfigLayer = Partial<ProxyConfig>;

export interface LayerResult {
  layer: ProxyConfigLayer;
  /** Field names (as written) that ProxyConfig does not have. */
  unknownFields: string[];
}

export function snakeToCamel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/**
 * Parses one ProxyConfig layer from YAML/JSON text. `source` names the input in errors
 * (`PROXY_CONFIG`, `mesh config /etc/istio/config/mesh defaultConfig`, …).
 */
export function parseProxyConfigText(text: string, source: string): LayerResult {
  let doc: unknown;
  try {
    doc = parseJsonOrYaml(text, { schema: 'core', uniqueKeys: false });
  } catch (err) {
    throw new ConfigError(`${source}: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  if (doc === null || doc === undefined) return { layer: {}, unknownFields: [] };
  return parseProxyConfigObject(doc, source);
}

export function parseProxyConfigObject(doc: unknown, source: string): LayerResult {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ConfigError(`${source}: expected a ProxyConfig object, got ${describeValue(doc)}`);
  }
  const layer: ProxyConfigLayer = {};
  const passthrough: Record<string, unknown> = {};
  const unknownFields: string[] = [];
  for (const [rawKey, value] of Object.entries(doc as Record<string, unknown>)) {
    const key = snakeToCamel(rawKey);
    const kind = FIELDS[key];
    const path = `${source}.${rawKey}`;
    if (kind === undefined) {
      if (PASSTHROUGH.has(key)) passthrough[key] = value;
      else unknownFields.push(rawKey);
      continue;
    }
    if (value === null) continue; // an explicit null leaves the field unset, like protojson
    (layer as Record<string, unknown>)[key] = convert(kind, value, path);
  }
  if (Object.keys(passthrough).length > 0) layer.passthrough = passthrough;
  return { layer, unknownFields };
}

function convert(kind: Kind, value: unknown, path: string): unknown {
  const fail = (expected: string): never => {
    throw new ConfigError(`${path}: expected ${expected}, got ${describeValue(value)}`);
  };
  if (typeof kind === 'object') {
    const names = Object.keys(kind.enum);
    if (typeof value === 'string' && names.includes(value)) return value;
    const num = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
    const byNum = names.find((n) => kind.enum[n] === num);
    if (byNum !== undefined) return byNum;
    return fail(`one of ${names.join(', ')}`);
  }
  switch (kind) {
    case 'string':
      if (typeof value === 'string') return value;
      return fail('a string');
    case 'int': {
      if (typeof value === 'number' && Number.isInteger(value)) return value;
      if (typeof value === 'string' && /^[+-]?\d+$/.test(value.trim())) return Number(value.trim());
      // Int32Value wrappers may be written as {"value": N}.
      if (typeof value === 'object' && value !== null && 'value' in value) return convert('int', (value as { value: unknown }).value, `${path}.value`);
      return fail('an integer');
    }
    case 'duration': {
      if (typeof value === 'string') {
        const ms = parseGoDuration(value.trim());
        if (ms !== undefined && ms >= 0) return ms;
      }
      return fail('a duration like "45s"');
    }
    case 'bool': {
      if (typeof value === 'boolean') return value;
      if (typeof value === 'object' && value !== null && 'value' in value) return convert('bool', (value as { value: unknown }).value, `${path}.value`);
      return fail('a boolean');
    }
    case 'stringMap': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('a map of strings');
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(value)) {
        if (typeof v === 'string') out[k] = v;
        else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
        else throw new ConfigError(`${path}.${k}: expected a string, got ${describeValue(v)}`);
      }
      return out;
    }
    case 'stringList': {
      if (!Array.isArray(value)) return fail('a list of strings');
      return value.map((v, i) => {
        if (typeof v !== 'string') throw new ConfigError(`${path}[${i}]: expected a string, got ${describeValue(v)}`);
        return v;
      });
    }
    case 'statsMatcher': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('an object');
      const out: StatsMatcher = {};
      for (const [rawK, v] of Object.entries(value)) {
        const k = snakeToCamel(rawK);
        if (k !== 'inclusionPrefixes' && k !== 'inclusionSuffixes' && k !== 'inclusionRegexps') {
          throw new ConfigError(`${path}.${rawK}: unknown field (expected inclusionPrefixes, inclusionSuffixes or inclusionRegexps)`);
        }
        out[k] = convert('stringList', v, `${path}.${rawK}`) as string[];
      }
      return out;
    }
    case 'object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('an object');
      return value;
  }
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return JSON.stringify(v);
}

/**
 * Applies layers in order (later wins field by field; lists and messages are replaced
 * whole; `proxyMetadata` is merged key by key).
 */
export function mergeProxyConfig(base: ProxyConfig, ...layers: ProxyConfigLayer[]): ProxyConfig {
  const out: ProxyConfig = { ...base, proxyMetadata: { ...base.proxyMetadata }, passthrough: { ...base.passthrough } };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (k === 'proxyMetadata') Object.assign(out.proxyMetadata, v as Record<string, string>);
      else if (k === 'passthrough') Object.assign(out.passthrough, v as Record<string, unknown>);
      else (out as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/**
 * The protobuf-JSON form of a ProxyConfig (camelCase, durations as `45s`, enums by name,
 * zero values omitted as protojson does). Used for the `PROXY_CONFIG` node metadata.
 */
export function proxyConfigToJson(pc: ProxyConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const entries = Object.entries(pc).filter(([k]) => k !== 'passthrough');
  for (const [k, v] of entries) {
    const kind = FIELDS[k];
    if (kind === undefined || v === undefined) continue;
    if (typeof kind === 'object') {
      if (kind.enum[v as string] !== 0) out[k] = v;
    } else if (kind === 'duration') {
      if (v !== 0) out[k] = formatProtoDuration(v as number);
    } else if (kind === 'stringMap') {
      if (Object.keys(v as object).length > 0) out[k] = v;
    } else if (kind === 'stringList') {
      if ((v as string[]).length > 0) out[k] = v;
    } else if (kind === 'statsMatcher') {
      if (Object.keys(v as object).length > 0) out[k] = v;
    } else if (v !== '' && v !== 0 && v !== false) {
      out[k] = v;
    }
  }
  Object.assign(out, pc.passthrough);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Go field name for the template's `.config.X` (`proxyAdminPort` → `ProxyAdminPort`). */
export function proxyConfigForTemplate(pc: ProxyConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(pc)) {
    if (k === 'passthrough') continue;
    out[k.charAt(0).toUpperCase() + k.slice(1)] = FIELDS[k] === 'duration' ? formatProtoDuration(v as number) : v;
  }
  return out;
}
