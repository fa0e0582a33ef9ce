/**
 * PURE: the variables the bootstrap template sees (SPEC §4). Names follow Istio's
 * template variables so Istio custom templates within the supported subset render.
 */
import type { AgentConfig } from '../config/load.js';
import { proxyConfigForTemplate } from '../config/proxyconfig.js';
import type { NodeIdentity } from './node.js';

export const REQUIRED_PREFIXES = ['cluster_manager', 'listener_manager', 'server', 'cluster.xds-grpc', 'wasm'];
export const REQUIRED_SUFFIXES = ['rbac.allowed', 'rbac.denied', 'shadow_allowed', 'shadow_denied'];
export const REQUIRED_REGEXPS = ['vhost\\..*\\.route\\..*'];

/** Runtime flags every bootstrap carries (the static runtime layer), before ProxyConfig runtimeValues. */
export const BASE_RUNTIME_FLAGS: Readonly<Record<string, string | boolean>> = {
  're2.max_program_size.error_level': '32768',
  'envoy.reloadable_features.http_reject_path_with_fragment': false,
};

export interface TemplateInputs {
  config: AgentConfig;
  identity: NodeIdentity;
  /** Current pod annotations (for stats annotations). */
  annotations: Record<string, string>;
  sdsSocketPath: string;
  /** The file-credential SDS socket (Istio's `custom_file_path`), set only when an external SDS server owns `sdsSocketPath`. */
  fileSdsSocketPath?: string;
}

function splitList(s: string | undefined): string[] | undefined {
  if (s === undefined) return undefined;
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

function expandPodIp(patterns: string[], ips: string[]): string[] {
  const out: string[] = [];
  for (const p of patterns) {
    if (p.includes('{pod_ip}')) for (const ip of ips) out.push(p.split('{pod_ip}').join(ip));
    else out.push(p);
  }
  return out;
}

export function statsInclusions(config: AgentConfig, annotations: Record<string, string>, ips: string[]) {
  const m = config.proxy.proxyStatsMatcher;
  const pick = (ann: string, fromConfig: string[] | undefined) => splitList(annotations[ann]) ?? fromConfig ?? [];
  const suffixes = [...REQUIRED_SUFFIXES];
  if (config.env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS) suffixes.push('downstream_cx_active');
  return {
    inclusionPrefix: expandPodIp([...pick('sidecar.istio.io/statsInclusionPrefixes', m.inclusionPrefixes), ...REQUIRED_PREFIXES], ips),
    inclusionSuffix: expandPodIp([...pick('sidecar.istio.io/statsInclusionSuffixes', m.inclusionSuffixes), ...suffixes], ips),
    inclusionRegexps: expandPodIp([...pick('sidecar.istio.io/statsInclusionRegexps', m.inclusionRegexps), ...REQUIRED_REGEXPS], ips),
  };
}

export function extraStatTags(config: AgentConfig, annotations: Record<string, string>): string[] {
  const tags = [...config.proxy.extraStatTags, ...(splitList(annotations['sidecar.istio.io/extraStatTags']) ?? [])];
  return [...new Set(tags)];
}

/** `METRICS_LOCALHOST_ACCESS_ONLY` from env or proxyMetadata (SPEC §2 decision). */
export function metricsLocalhostOnly(config: AgentConfig): boolean {
  return config.env.METRICS_LOCALHOST_ACCESS_ONLY || config.proxy.proxyMetadata.METRICS_LOCALHOST_ACCESS_ONLY === 'true';
}

export function maxDownstreamConnections(config: AgentConfig): number {
  const fromRuntime = config.proxy.runtimeValues['overload.global_downstream_max_connections'];
  const fromMeta = config.proxy.proxyMetadata.ISTIO_META_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS;
  for (const v of [fromRuntime, fromMeta]) {
    if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  }
  return 2147483647;
}

export function runtimeFlags(config: AgentConfig): Record<string, string | boolean> {
  const flags: Record<string, string | boolean> = { ...BASE_RUNTIME_FLAGS };
  for (const [k, v] of Object.entries(config.proxy.runtimeValues)) {
    if (k === 'overload.global_downstream_max_connections') continue; // becomes the overload monitor's limit
    flags[k] = v;
  }
  return Object.fromEntries(Object.entries(flags).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function templateData(inputs: TemplateInputs): Record<string, unknown> {
  const { config, identity, annotations } = inputs;
  const localhostOnly = metricsLocalhostOnly(config);
  return {
    nodeID: identity.id,
    cluster: identity.cluster,
    region: identity.locality.region ?? '',
    zone: identity.locality.zone ?? '',
    sub_zone: identity.locality.sub_zone ?? '',
    meta_json_str: JSON.stringify(identity.metadata),
    runtime_flags: JSON.stringify(runtimeFlags(config)),
    localhost: identity.localhost,
    wildcard: identity.wildcard,
    prometheus_listener_address: localhostOnly ? identity.localhost : identity.wildcard,
    metrics_localhost_access_only: localhostOnly,
    xds_type: config.env.ISTIO_DELTA_XDS ? 'DELTA_GRPC' : 'GRPC',
    envoy_status_port: config.env.ENVOY_STATUS_PORT,
    envoy_prometheus_port: config.env.ENVOY_PROMETHEUS_PORT,
    workload_identity_socket_file: 'socket',
    sds_socket_path: inputs.sdsSocketPath,
    custom_file_path: inputs.fileSdsSocketPath ?? '',
    extraStatTags: extraStatTags(config, annotations),
    ...statsInclusions(config, annotations, identity.ips),
    outlier_log_path: config.outlierLogPath,
    log_json: config.logging.asJson,
    standalone: config.standalone,
    global_downstream_max_connections: maxDownstreamConnections(config),
    config: proxyConfigForTemplate(config.proxy),
  };
}
