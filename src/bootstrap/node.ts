/**
 * PURE: node identity and metadata (SPEC §3). Given the config and the host's network
 * interfaces, computes the node IPs, IP mode, node ID, node cluster, locality and the
 * metadata map Envoy sends to the control plane.
 */
import { isIP } from 'node:net';
import type { NetworkInterfaceInfo } from 'node:os';
import type { AgentConfig } from '../config/load.js';
import { proxyConfigToJson } from '../config/proxyconfig.js';
import { ISTIO_COMPAT_VERSION } from '../version.js';

export interface Locality {
  region?: string;
  zone?: string;
  sub_zone?: string;
}

export interface NodeIdentity {
  ips: string[];
  ipv6: boolean;
  /** `127.0.0.1` or `::1`. */
  localhost: string;
  /** `0.0.0.0` or `::`. */
  wildcard: string;
  id: string;
  cluster: string;
  locality: Locality;
  /** Sorted keys; values JSON-ready. */
  metadata: Record<string, unknown>;
  /** Warnings found while computing (bad ISTIO_METAJSON_*). */
  warnings: string[];
}

export type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

/** The SAN istiod presents: ISTIOD_SAN, else the discovery host (`localhost` → istiod.istio-system.svc). */
export function pilotSan(config: AgentConfig): string {
  const explicit = config.env.ISTIOD_SAN;
  if (explicit !== '') return explicit;
  const host = hostOf(config.discoveryAddress);
  return host === 'localhost' ? 'istiod.istio-system.svc' : host;
}

export function hostOf(addr: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(addr);
  if (m) return m[1] as string;
  const i = addr.lastIndexOf(':');
  return i < 0 ? addr : addr.slice(0, i);
}

/** SPEC §3 node IPs: INSTANCE_IP first, then interface addresses; loopbacks when no interface address. */
export function nodeIps(instanceIp: string, interfaces: Interfaces, excludeInterfaces: string[]): string[] {
  const ips: string[] = [];
  const add = (ip: string) => {
    if (!ips.includes(ip)) ips.push(ip);
  };
  if (isIP(instanceIp) !== 0) add(instanceIp);
  const fromInterfaces: string[] = [];
  for (const [name, addrs] of Object.entries(interfaces)) {
    if (excludeInterfaces.includes(name)) continue;
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      const ip = a.address.split('%')[0] as string;
      if (isLinkLocal(ip) || ip === '0.0.0.0' || ip === '::' || isLoopback(ip)) continue;
      if (!fromInterfaces.includes(ip)) fromInterfaces.push(ip);
    }
  }
  for (const ip of fromInterfaces) add(ip);
  if (fromInterfaces.length === 0) {
    add('127.0.0.1');
    add('::1');
  }
  return ips;
}

function isLinkLocal(ip: string): boolean {
  return ip.startsWith('169.254.') || /^fe[89ab][0-9a-f]:/i.test(ip);
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

/** Canonical service name (SPEC §3). */
export function canonicalName(labels: Record<string, string>, workloadName: string): string {
  return labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app ?? (workloadName || 'istio-proxy');
}

/** `node.cluster` (SPEC §3). */
export function nodeCluster(config: AgentConfig, labels: Record<string, string>, workloadName: string): string {
  const sc = config.proxy.serviceCluster;
  const ns = config.pod.namespace;
  if (sc !== '' && sc !== 'istio-proxy') return sc;
  const mode = config.proxy.tracingServiceName;
  if (mode === 'CANONICAL_NAME_ONLY') return canonicalName(labels, workloadName);
  if (mode === 'CANONICAL_NAME_AND_NAMESPACE') return `${canonicalName(labels, workloadName)}.${ns}`;
  const app = labels.app ?? labels['app.kubernetes.io/name'] ?? labels['service.istio.io/canonical-name'];
  if (app !== undefined && ns !== '') return `${app}.${ns}`;
  if (workloadName !== '' && ns !== '') return `${workloadName}.${ns}`;
  if (ns !== '') return `istio-proxy.${ns}`;
  return 'istio-proxy';
}

export function parseLocality(value: string | undefined): Locality {
  if (!value) return {};
  const [region, zone, subZone] = value.split('/');
  const out: Locality = {};
  if (region) out.region = region;
  if (zone) out.zone = zone;
  if (subZone) out.sub_zone = subZone;
  return out;
}

export interface IdentityInputs {
  interfaces: Interfaces;
  /** Current podinfo (may differ from config.pod after a podinfo change, SPEC §8). */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** The SDS socket file name (WORKLOAD_IDENTITY_SOCKET_FILE is Istio's default name). */
  /**
   * An external SDS server owns the workload socket (issue 14): Istio's raw metadata
   * `file-credential: "true"` tells istiod to point file secrets at `sds-files-grpc`.
   */
  fileCredential?: boolean;
}

export function computeIdentity(config: AgentConfig, inputs: IdentityInputs): NodeIdentity {
  const warnings: string[] = [];
  const podLabels = inputs.labels ?? config.pod.labels;
  const annotations = inputs.annotations ?? config.pod.annotations;
  const exclude = (annotations['traffic.sidecar.istio.io/excludeInterfaces'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const ips = nodeIps(config.pod.instanceIp, inputs.interfaces, exclude);
  const ipv6 = ips.every((ip) => isIP(ip) === 6);

  // Raw metadata: proxyMetadata ISTIO_META_* (lowest), then ISTIO_META_* env, then ISTIO_METAJSON_*.
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config.proxy.proxyMetadata)) {
    if (k.startsWith('ISTIO_META_') && !k.startsWith('ISTIO_METAJSON_')) meta[k.slice('ISTIO_META_'.length)] = v;
  }
  const envEntries = Object.entries(config.prefixedEnv).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [k, v] of envEntries) {
    if (k.startsWith('ISTIO_META_')) meta[k.slice('ISTIO_META_'.length)] = v;
  }
  let staticLabels: Record<string, string> | undefined;
  for (const [k, v] of envEntries) {
    if (!k.startsWith('ISTIO_METAJSON_')) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch (err) {
      warnings.push(`env ${k}: ignoring invalid JSON: ${(err as Error).message}`);
      continue;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      warnings.push(`env ${k}: ignoring value: expected a JSON object`);
      continue;
    }
    if (k === 'ISTIO_METAJSON_LABELS') {
      staticLabels = Object.fromEntries(Object.entries(parsed).map(([lk, lv]) => [lk, String(lv)]));
    } else {
      Object.assign(meta, parsed);
    }
  }

  // LABELS = STATIC_LABELS overlaid with podinfo labels, minus pod-template-hash; locality normalised.
  const labels: Record<string, string> = { ...(staticLabels ?? {}), ...podLabels };
  delete labels['pod-template-hash'];
  const localityRaw = labels['topology.istio.io/locality'] ?? labels['istio-locality'];
  let locality: Locality = {};
  if (localityRaw !== undefined) {
    const normalised = localityRaw.replace(/\./g, '/');
    labels['istio-locality'] = normalised;
    locality = parseLocality(normalised);
  }

  const workloadName = typeof meta.WORKLOAD_NAME === 'string' ? meta.WORKLOAD_NAME : '';
  const env = config.env;
  const typed: Record<string, unknown> = {
    NAME: config.pod.name,
    NAMESPACE: config.pod.namespace,
    SERVICE_ACCOUNT: config.pod.serviceAccount,
    INSTANCE_IPS: ips.join(','),
    ISTIO_VERSION: ISTIO_COMPAT_VERSION,
    ENVOY_STATUS_PORT: env.ENVOY_STATUS_PORT,
    ENVOY_PROMETHEUS_PORT: env.ENVOY_PROMETHEUS_PORT,
    PROXY_CONFIG: proxyConfigToJson(config.proxy),
    LABELS: sortKeys(labels),
    ANNOTATIONS: sortKeys(annotations),
    WORKLOAD_IDENTITY_SOCKET_FILE: 'socket',
    METADATA_DISCOVERY: 'false',
  };
  if (!config.standalone && config.proxy.controlPlaneAuthPolicy !== 'NONE') typed.PILOT_SAN = [pilotSan(config)];
  if (env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS) typed.EXIT_ON_ZERO_ACTIVE_CONNECTIONS = 'true';
  if (env.ENVOY_SKIP_DEPRECATED_LOGS) typed.ENVOY_SKIP_DEPRECATED_LOGS = 'true';
  if (staticLabels !== undefined) typed.STATIC_LABELS = sortKeys(staticLabels);
  if (config.outlierLogPath !== '') typed.OUTLIER_LOG_PATH = config.outlierLogPath;
  if (config.stsPort > 0) typed.STS_PORT = String(config.stsPort);
  if (inputs.fileCredential) meta['file-credential'] = 'true';
  // Empty strings are omitted, as Go's omitempty does for the typed string fields.
  for (const [k, v] of Object.entries(typed)) {
    if (v === '' || v === undefined) delete meta[k];
    else meta[k] = v;
  }

  const id = `${config.proxyType}~${ips[0] ?? ''}~${config.pod.name}.${config.pod.namespace}~${config.domain}`;
  return {
    ips,
    ipv6,
    localhost: ipv6 ? '::1' : '127.0.0.1',
    wildcard: ipv6 ? '::' : '0.0.0.0',
    id,
    cluster: nodeCluster(config, podLabels, workloadName),
    locality,
    metadata: sortKeys(meta),
    warnings,
  };
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * SPEC §8: a podinfo change updates only the node metadata LABELS/ANNOTATIONS; the node ID,
 * cluster, locality and every other field stay as computed at start.
 */
export function withPodInfo(
  start: NodeIdentity,
  config: AgentConfig,
  interfaces: Interfaces,
  labels: Record<string, string>,
  annotations: Record<string, string>,
): NodeIdentity {
  const fresh = computeIdentity(config, { interfaces, labels, annotations });
  const metadata = { ...start.metadata, LABELS: fresh.metadata.LABELS, ANNOTATIONS: fresh.metadata.ANNOTATIONS };
  return { ...start, metadata, warnings: [] };
}

/** Annotations whose change only takes effect on the next container start (SPEC §2). */
export const CONFIG_BEARING_ANNOTATIONS = ['proxy.istio.io/config', 'sidecar.istio.io/discoveryAddress', 'status.sidecar.istio.io/port'];
