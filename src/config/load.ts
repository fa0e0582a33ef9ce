/**
 * Builds the one frozen AgentConfig for `proxy` from argv, env and files (SPEC §1–§2).
 * Precedence (later wins): defaults → mesh config `defaultConfig` → PROXY_CONFIG →
 * annotation `proxy.istio.io/config` → ISTIO_CPU_LIMIT → flags → validation →
 * annotations `sidecar.istio.io/discoveryAddress`, `status.sidecar.istio.io/port`.
 * `readConfigInputs` does the I/O; `buildConfig` is pure.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isIP } from 'node:net';
import { parseJsonOrYaml } from './json-or-yaml.js';
import { AgentError, ConfigError } from '../errors.js';
import { parseGoDuration } from '../go/duration.js';
import { parseFlags, parseGoBool } from './flags.js';
import { PROXY_ENV, PROXY_FLAGS, type EnvSpec, type EnvValues } from './options.js';
import {
  PROXY_CONFIG_DEFAULTS,
  mergeProxyConfig,
  parseProxyConfigObject,
  parseProxyConfigText,
  type ProxyConfig,
  type ProxyConfigLayer,
} from './proxyconfig.js';
import { parsePodInfoFile } from '../podinfo/parse.js';

export type ProxyType = 'sidecar' | 'router';

export interface EnvoyLogLevels {
  /** `-l` value, '' = none. */
  level: string;
  /** `--component-log-level` items. */
  components: string[];
}

export interface AgentConfig {
  proxyType: ProxyType;
  cwd: string;
  domain: string;
  standalone: boolean;
  envoyLog: EnvoyLogLevels;
  templateFile: string;
  outlierLogPath: string;
  stsPort: number;
  logging: { outputLevel: string; asJson: boolean };
  /** The effective ProxyConfig (annotations not applied: see statusPort/discoveryAddress). */
  proxy: ProxyConfig;
  /** After the `status.sidecar.istio.io/port` annotation (0 = no status server). */
  statusPort: number;
  /** After the `sidecar.istio.io/discoveryAddress` annotation. */
  discoveryAddress: string;
  pod: {
    name: string;
    namespace: string;
    instanceIp: string;
    serviceAccount: string;
    hostIp: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  /** Typed values of the env table (after defaulting). */
  env: EnvValues;
  /** Raw env entries with prefix ISTIO_META_, ISTIO_METAJSON_, XDS_HEADER_ (for metadata and headers). */
  prefixedEnv: Record<string, string>;
  /** Paths resolved against cwd. */
  paths: { podInfoDir: string; meshConfig: string };
}

export type { EnvValues } from './options.js';

export interface ConfigInputs {
  argv: string[];
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Mesh config file text, if the file exists. */
  meshConfigText?: string;
  meshConfigPath: string;
  /** Podinfo files' text, if they exist. */
  podLabelsText?: string;
  podAnnotationsText?: string;
}

export interface ConfigResult {
  config: AgentConfig;
  warnings: string[];
  /** Set when --help was asked for. */
  help?: boolean;
}

export const PODINFO_DIR = './etc/istio/pod';

/** Reads the files the config depends on, then builds it. */
export function loadConfig(argv: string[], env: Readonly<Record<string, string | undefined>>, cwd: string): ConfigResult {
  const parsed = parseFlags(argv, PROXY_FLAGS, { allowUnknown: true });
  const meshConfigPath = path.resolve(cwd, parsed.values.get('meshConfig') ?? './etc/istio/config/mesh');
  const podDir = path.resolve(cwd, PODINFO_DIR);
  const inputs: ConfigInputs = { argv, env, cwd, meshConfigPath };
  const meshText = readIfExists(meshConfigPath, '--meshConfig');
  if (meshText !== undefined) inputs.meshConfigText = meshText;
  const labels = readIfExists(path.join(podDir, 'labels'), 'podinfo labels');
  if (labels !== undefined) inputs.podLabelsText = labels;
  const annotations = readIfExists(path.join(podDir, 'annotations'), 'podinfo annotations');
  if (annotations !== undefined) inputs.podAnnotationsText = annotations;
  return buildConfig(inputs);
}

function readIfExists(file: string, what: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ConfigError(`${what}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export function buildConfig(inputs: ConfigInputs): ConfigResult {
  const warnings: string[] = [];
  const parsed = parseFlags(inputs.argv, PROXY_FLAGS, { allowUnknown: true });
  const flag = (name: string): string | undefined => parsed.values.get(name);
  if (flag('help') === 'true') {
    return { config: undefined as unknown as AgentConfig, warnings, help: true };
  }

  // Positional: proxy type.
  if (parsed.positionals.length > 1) {
    throw new AgentError('AGENT_USAGE', `proxy: expected at most one argument (sidecar|router), got ${parsed.positionals.join(' ')}`);
  }
  const typeArg = parsed.positionals[0] ?? 'sidecar';
  if (typeArg !== 'sidecar' && typeArg !== 'router') {
    throw new AgentError('AGENT_USAGE', `proxy: invalid proxy type "${typeArg}": expected "sidecar" or "router"`);
  }
  if (parsed.unknown.length > 0) warnings.push(`ignoring unknown flags: ${parsed.unknown.join(' ')}`);

  const env = readEnv(inputs.env, warnings);
  const prefixedEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(inputs.env)) {
    if (v !== undefined && /^(ISTIO_META_|ISTIO_METAJSON_|XDS_HEADER_)/.test(k)) prefixedEnv[k] = v;
  }

  // Podinfo (SPEC §8): a bad file warns and counts as empty.
  const labels = podInfo(inputs.podLabelsText, 'labels', warnings);
  const annotations = podInfo(inputs.podAnnotationsText, 'annotations', warnings);

  // ProxyConfig layers.
  const layers: ProxyConfigLayer[] = [];
  const noteUnknown = (source: string, unknown: string[]) => {
    if (unknown.length > 0) warnings.push(`${source}: ignoring unknown ProxyConfig fields: ${unknown.join(', ')}`);
  };
  if (inputs.meshConfigText !== undefined) {
    const source = `mesh config ${inputs.meshConfigPath}`;
    let mesh: unknown;
    try {
      mesh = parseJsonOrYaml(inputs.meshConfigText);
    } catch (err) {
      throw new ConfigError(`${source}: not valid YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
    if (mesh !== null && mesh !== undefined) {
      if (typeof mesh !== 'object' || Array.isArray(mesh)) throw new ConfigError(`${source}: expected a MeshConfig object`);
      const dc = (mesh as Record<string, unknown>).defaultConfig ?? (mesh as Record<string, unknown>).default_config;
      if (dc !== undefined && dc !== null) {
        const r = parseProxyConfigObject(dc, `${source}: defaultConfig`);
        noteUnknown(`${source}: defaultConfig`, r.unknownFields);
        layers.push(r.layer);
      }
    }
  }
  const proxyConfigEnv = inputs.env.PROXY_CONFIG;
  if (proxyConfigEnv !== undefined && proxyConfigEnv.trim() !== '') {
    const r = parseProxyConfigText(proxyConfigEnv, 'PROXY_CONFIG');
    noteUnknown('PROXY_CONFIG', r.unknownFields);
    layers.push(r.layer);
  }
  const annotationConfig = annotations['proxy.istio.io/config'];
  if (annotationConfig !== undefined && annotationConfig.trim() !== '') {
    const src = 'annotation proxy.istio.io/config';
    const r = parseProxyConfigText(annotationConfig, src);
    noteUnknown(src, r.unknownFields);
    layers.push(r.layer);
  }
  let proxy = mergeProxyConfig(structuredClone(PROXY_CONFIG_DEFAULTS) as ProxyConfig, ...layers);

  const terminationSetByLayer = layers.some((l) => l.terminationDrainDuration !== undefined);
  const legacyDrain = env.TERMINATION_DRAIN_DURATION_SECONDS;
  if (!terminationSetByLayer && typeof legacyDrain === 'number' && legacyDrain > 0) {
    proxy.terminationDrainDuration = legacyDrain * 1000;
  }
  const cpuLimit = env.ISTIO_CPU_LIMIT;
  if (proxy.concurrency === 0 && cpuLimit > 0) proxy.concurrency = cpuLimit;

  const flagConcurrency = flag('concurrency');
  if (flagConcurrency !== undefined && Number(flagConcurrency) !== 0) {
    warnings.push(`legacy --concurrency=${flagConcurrency} flag detected; prefer to use ProxyConfig`);
    proxy.concurrency = Number(flagConcurrency);
  }
  const flagCluster = flag('serviceCluster');
  if (flagCluster !== undefined && proxy.serviceCluster === '') proxy.serviceCluster = flagCluster;

  validateProxyConfig(proxy);

  // Annotations applied after validation (SPEC §2), but validated by us.
  let discoveryAddress = proxy.discoveryAddress;
  const annDiscovery = annotations['sidecar.istio.io/discoveryAddress'];
  if (annDiscovery !== undefined && annDiscovery !== '') {
    const err = hostPortError(annDiscovery);
    if (err) throw new ConfigError(`annotation sidecar.istio.io/discoveryAddress: ${err}, got ${JSON.stringify(annDiscovery)}`);
    discoveryAddress = annDiscovery;
  }
  let statusPort = proxy.statusPort;
  const annStatus = annotations['status.sidecar.istio.io/port'];
  if (annStatus !== undefined) {
    if (!/^\d+$/.test(annStatus) || Number(annStatus) > 65535) {
      throw new ConfigError(`annotation status.sidecar.istio.io/port: expected an integer port 0-65535, got ${JSON.stringify(annStatus)}`);
    }
    statusPort = Number(annStatus);
  }

  const namespace = env.POD_NAMESPACE;
  const standalone = flag('standalone') === 'true' || env.PILOT_AGENT_STANDALONE === true;

  const config: AgentConfig = {
    proxyType: typeArg,
    cwd: inputs.cwd,
    domain: flag('domain') || `${namespace}.svc.cluster.local`,
    standalone,
    envoyLog: parseProxyLogLevel(flag('proxyLogLevel') ?? 'warning', flag('proxyComponentLogLevel') ?? '', warnings),
    templateFile: flag('templateFile') ?? '',
    outlierLogPath: flag('outlierLogPath') ?? '',
    stsPort: Number(flag('stsPort') ?? 0),
    logging: { outputLevel: flag('log_output_level') ?? 'default:info', asJson: flag('log_as_json') === 'true' },
    proxy,
    statusPort,
    discoveryAddress,
    pod: {
      name: env.POD_NAME,
      namespace,
      instanceIp: env.INSTANCE_IP,
      serviceAccount: env.SERVICE_ACCOUNT,
      hostIp: env.HOST_IP,
      labels,
      annotations,
    },
    env,
    prefixedEnv,
    paths: { podInfoDir: path.resolve(inputs.cwd, PODINFO_DIR), meshConfig: inputs.meshConfigPath },
  };
  return { config: deepFreeze(config), warnings };
}

/** Typed env values; a bad typed value warns and uses the default (Istio's behaviour). */
function readEnv(raw: Readonly<Record<string, string | undefined>>, warnings: string[]): EnvValues {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const spec of PROXY_ENV) {
    const value = raw[spec.name];
    const useDefault = () => (spec.default === '' && spec.type !== 'string' ? undefined : (convertEnv(spec, spec.default) ?? undefined));
    if (value === undefined) {
      out[spec.name] = useDefault();
      continue;
    }
    const converted = convertEnv(spec, value);
    if (converted === null) {
      warnings.push(`invalid value for env ${spec.name}: ${JSON.stringify(value)} (expected ${expectedForm(spec)}); using default ${JSON.stringify(spec.default)}`);
      out[spec.name] = useDefault();
    } else {
      const min = (spec as EnvSpec).min;
      if (typeof converted === 'number' && min !== undefined && converted < min) {
        throw new ConfigError(`${spec.name}: expected an integer >= ${min}, got ${JSON.stringify(value)}`);
      }
      out[spec.name] = converted ?? undefined;
    }
  }
  // Each field's type follows from its spec's `type` and `default`, which convertEnv implements.
  return out as EnvValues;
}

function expectedForm(spec: EnvSpec): string {
  switch (spec.type) {
    case 'bool':
      return 'a boolean: true/false/1/0';
    case 'int':
      return 'a base-10 integer';
    case 'duration':
      return 'a duration like "5s"';
    default:
      return 'a string';
  }
}

/** null = invalid; undefined = unset. */
function convertEnv(spec: EnvSpec, value: string): string | number | boolean | undefined | null {
  // Structured (json) values are kept verbatim, '' included: set-but-empty is their parsers' error to report.
  if (spec.type === 'string' || spec.type === 'json') return value;
  if (value === '') return spec.default === '' ? undefined : convertEnv(spec, spec.default);
  switch (spec.type) {
    case 'bool': {
      const b = parseGoBool(value);
      return b === undefined ? null : b;
    }
    case 'int':
      return /^[+-]?\d+$/.test(value) ? Number(value) : null;
    case 'duration': {
      const d = parseGoDuration(value);
      return d === undefined ? null : d;
    }
  }
}

function podInfo(text: string | undefined, what: string, warnings: string[]): Record<string, string> {
  if (text === undefined) return {};
  const r = parsePodInfoFile(text);
  if (!r.ok) {
    warnings.push(`podinfo ${what}: ignoring malformed file: ${r.error}`);
    return {};
  }
  return Object.fromEntries(r.values);
}

/** SPEC §1: `info,misc:error` → `-l info --component-log-level misc:error`. */
export function parseProxyLogLevel(level: string, componentLevel: string, warnings: string[]): EnvoyLogLevels {
  let main = '';
  const components: string[] = [];
  for (const item of level.split(',')) {
    if (item === '') continue;
    const colons = item.split(':').length - 1;
    if (colons === 0) main = item;
    else if (colons === 1) components.push(item);
    else warnings.push(`dropping invalid --proxyLogLevel item ${JSON.stringify(item)}: expected level or component:level`);
  }
  if (components.length === 0 && componentLevel !== '') components.push(...componentLevel.split(',').filter((s) => s !== ''));
  return { level: main, components };
}

export function hostPortError(addr: string): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr);
  if (!m) return 'expected host:port';
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return 'port must be 1-65535';
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined && isIP(host) !== 6) return 'bracketed host must be an IPv6 address';
  if (m[2] !== undefined && !/^[A-Za-z0-9.-]+$/.test(host)) return 'invalid host';
  return undefined;
}

/** Istio's ValidateMeshConfigProxyConfig, with errors naming the field. */
export function validateProxyConfig(pc: ProxyConfig): void {
  const errs: string[] = [];
  if (pc.configPath === '') errs.push('configPath: must be set');
  if (pc.binaryPath === '') errs.push('binaryPath: must be set');
  if (pc.discoveryAddress === '') errs.push('discoveryAddress: must be set (use --standalone to run without a control plane)');
  else {
    const e = hostPortError(pc.discoveryAddress);
    if (e) errs.push(`discoveryAddress: ${e}, got ${JSON.stringify(pc.discoveryAddress)}`);
  }
  for (const f of ['drainDuration', 'parentShutdownDuration'] as const) {
    if (!(pc[f] >= 1)) errs.push(`${f}: must be at least 1ms`);
  }
  for (const f of ['proxyAdminPort', 'statusPort'] as const) {
    if (!(pc[f] >= 1 && pc[f] <= 65535)) errs.push(`${f}: must be a port 1-65535, got ${pc[f]}`);
  }
  if (pc.statNameLength < 0) errs.push('statNameLength: must be >= 0');
  if (pc.concurrency < 0) errs.push('concurrency: must be >= 0');
  if (pc.fileFlushMinSizeKb < 0) errs.push('fileFlushMinSizeKb: must be >= 0');
  if (errs.length > 0) throw new ConfigError(`invalid ProxyConfig: ${errs.join('; ')}`);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
