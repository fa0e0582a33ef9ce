/**
 * Loads and checks an Envoy v3 bootstrap the way Envoy does at startup, for the parts the
 * double acts on (admin, static listeners and clusters, HCM routes, dynamic_resources,
 * stats_config, application_log_config).
 *
 * Contract: `loadBootstrap` resolves with a `Bootstrap` or rejects with a `BootstrapError`
 * whose message is Envoy-like (the text Envoy logs after `error initializing configuration`).
 * Unknown fields are accepted everywhere (the agent passes `--allow-unknown-static-fields`;
 * the strict proto check lives in the agent's own tests, SPEC §4). Checked: parse errors, a
 * missing/invalid admin address, invalid socket addresses and ports, listeners without an
 * address or filter chains, duplicate listener names/addresses, duplicate or unnamed clusters,
 * endpoints without an address, HCMs without `stat_prefix`, and routes to unknown clusters.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { re2ToJs } from './regex.js';

export class BootstrapError extends Error {
  override name = 'BootstrapError';
}

export type Address =
  | { kind: 'tcp'; host: string; port: number; family: 4 | 6; ipv4Compat: boolean }
  | { kind: 'pipe'; path: string; mode?: number };

export interface RouteSpec {
  match: { prefix?: string; path?: string; regex?: RegExp; caseSensitive: boolean };
  action:
    | { kind: 'cluster'; cluster: string; prefixRewrite?: string; timeoutMs: number }
    | { kind: 'direct'; status: number; body: string }
    | { kind: 'unsupported' };
}

export interface VirtualHostSpec {
  name: string;
  domains: string[];
  routes: RouteSpec[];
}

export type FilterSpec =
  | { kind: 'http'; statPrefix: string; virtualHosts: VirtualHostSpec[]; rds: boolean }
  | { kind: 'tcp'; statPrefix: string; cluster: string }
  | { kind: 'none' };

export interface ListenerSpec {
  name: string;
  /** Null for internal listeners (not bound). */
  address: Address | null;
  direction: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
  /** Listener `stat_prefix`, when set (replaces the address in `listener.<x>.` stat names). */
  statPrefix: string;
  filter: FilterSpec;
}

export interface ClusterSpec {
  name: string;
  /** `alt_stat_name` when set, else the name: the `cluster.<x>.` stats scope. */
  statName: string;
  type: string;
  connectTimeoutMs: number;
  endpoints: Address[];
  http2: boolean;
}

export interface XdsSpec {
  apiType: string;
  cds: boolean;
  lds: boolean;
  /** Per-resource initial fetch timeout, ms (0 = wait forever, as Istio sets). */
  cdsInitialFetchTimeoutMs: number;
  ldsInitialFetchTimeoutMs: number;
}

export interface Bootstrap {
  raw: Record<string, unknown>;
  admin: Address;
  listeners: ListenerSpec[];
  clusters: Map<string, ClusterSpec>;
  xds: XdsSpec | null;
  statsConfig: Record<string, unknown> | undefined;
  statsFlushIntervalMs: number;
  logFormat?: { text?: string; json?: Record<string, unknown> };
  node: Record<string, unknown>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const objAt = (o: Obj | undefined, k: string): Obj | undefined => (o && isObj(o[k]) ? (o[k] as Obj) : undefined);
const arrAt = (o: Obj | undefined, k: string): unknown[] => (o && Array.isArray(o[k]) ? (o[k] as unknown[]) : []);

function validationError(chain: string[], message: string): BootstrapError {
  return new BootstrapError(`Proto constraint validation failed (${chain.join(': embedded message failed validation | caused by ')}: ${message})`);
}

/** Protobuf JSON Duration: `"1.5s"` or `{seconds, nanos}` → ms. */
export function durationMs(v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'string') {
    const m = /^(-?\d+(?:\.\d+)?)s$/.exec(v.trim());
    if (!m) throw new BootstrapError(`Unable to parse JSON as proto (INVALID_ARGUMENT:invalid duration: ${JSON.stringify(v)})`);
    return Math.round(Number(m[1]) * 1000);
  }
  if (isObj(v)) return Number(v.seconds ?? 0) * 1000 + Math.round(Number(v.nanos ?? 0) / 1e6);
  throw new BootstrapError(`Unable to parse JSON as proto (INVALID_ARGUMENT:invalid duration: ${JSON.stringify(v)})`);
}

export function addressString(a: Address): string {
  if (a.kind === 'pipe') return a.path;
  return a.family === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Envoy's `Network::Address::resolveProtoAddress` (socket_address with a literal IP, or pipe). */
function parseAddress(v: unknown, where: string[], cwd: string, allowHostname = false): Address {
  const a = isObj(v) ? v : {};
  const sa = objAt(a, 'socket_address');
  const pipe = objAt(a, 'pipe');
  if (sa) {
    const host = String(sa.address ?? '');
    const portRaw = sa.port_value ?? 0;
    const port = typeof portRaw === 'string' && /^\d+$/.test(portRaw) ? Number(portRaw) : portRaw;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0) {
      throw new BootstrapError(`Unable to parse JSON as proto (INVALID_ARGUMENT:${where.join('.')}.socket_address.port_value: invalid value ${JSON.stringify(portRaw)} for type TYPE_UINT32)`);
    }
    if (port > 65535) throw validationError([...where, 'SocketAddressValidationError.PortValue'], 'value must be less than or equal to 65535');
    if (host === '') throw validationError([...where, 'SocketAddressValidationError.Address'], 'value length must be at least 1 characters');
    const family = net.isIP(host);
    if (family === 0 && !allowHostname) throw new BootstrapError(`malformed IP address: ${host}`);
    return { kind: 'tcp', host, port, family: family === 6 ? 6 : 4, ipv4Compat: sa.ipv4_compat === true };
  }
  if (pipe) {
    const p = String(pipe.path ?? '');
    if (p === '') throw validationError([...where, 'PipeValidationError.Path'], 'value length must be at least 1 characters');
    return { kind: 'pipe', path: path.resolve(cwd, p), ...(typeof pipe.mode === 'number' ? { mode: pipe.mode } : {}) };
  }
  throw new BootstrapError(`Address must be a socket or pipe: ${JSON.stringify(v ?? {})}`);
}

/** Protobuf MergeFrom on JSON: messages merge recursively, repeated fields append, scalars replace. */
export function mergeProto(into: Obj, from: Obj): Obj {
  for (const [k, v] of Object.entries(from)) {
    const cur = into[k];
    if (Array.isArray(cur) && Array.isArray(v)) into[k] = [...cur, ...v];
    else if (isObj(cur) && isObj(v)) into[k] = mergeProto({ ...cur }, v);
    else into[k] = v;
  }
  return into;
}

async function parseText(text: string, yaml: boolean, what: string): Promise<Obj> {
  let value: unknown;
  if (yaml) {
    const { parse } = await import('yaml');
    try {
      value = parse(text, { uniqueKeys: false });
    } catch (err) {
      throw new BootstrapError(`Unable to convert YAML as JSON: ${(err as Error).message}`);
    }
    if (value === null || value === undefined) value = {};
  } else {
    try {
      value = JSON.parse(text);
    } catch (err) {
      const shown = text.length > 200 ? `${text.slice(0, 200)}…` : text;
      throw new BootstrapError(`Unable to parse JSON as proto (INVALID_ARGUMENT:${(err as Error).message}): ${shown}`);
    }
  }
  if (!isObj(value)) {
    throw new BootstrapError(`Unable to parse JSON as proto (INVALID_ARGUMENT:${what}: expected an object): ${JSON.stringify(value)}`);
  }
  return value;
}

export async function loadBootstrap(o: { configPath: string; configYaml: string; cwd: string; logFormatSet: boolean }): Promise<Bootstrap> {
  if (o.configPath === '' && o.configYaml === '') {
    throw new BootstrapError('At least one of --config-path or --config-yaml or Options::configProto() should be non-empty');
  }
  let raw: Obj = {};
  if (o.configPath !== '') {
    const file = path.resolve(o.cwd, o.configPath);
    if (/\.pb(_text)?$/.test(file)) throw new BootstrapError(`envoy double: binary/text proto bootstraps are not supported: ${o.configPath}`);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      throw new BootstrapError(`Invalid path: ${o.configPath}`);
    }
    raw = await parseText(text, /\.ya?ml$/.test(file), o.configPath);
  }
  if (o.configYaml !== '') raw = mergeProto(raw, await parseText(o.configYaml, true, '--config-yaml'));
  return checkBootstrap(raw, o.cwd, o.logFormatSet);
}

export function checkBootstrap(raw: Obj, cwd: string, logFormatSet = false): Bootstrap {
  const adminRaw = objAt(raw, 'admin');
  if (!adminRaw || !isObj(adminRaw.address)) {
    // Envoy itself starts without an admin listener here; the double needs its admin API.
    throw new BootstrapError('envoy double: the bootstrap has no admin.address (the double serves its API there)');
  }
  const admin = parseAddress(adminRaw.address, ['BootstrapValidationError.Admin', 'AdminValidationError.Address', 'AddressValidationError.SocketAddress'], cwd);

  const sr = objAt(raw, 'static_resources');
  const clusters = new Map<string, ClusterSpec>();
  arrAt(sr, 'clusters').forEach((c, i) => {
    const cl = isObj(c) ? c : {};
    const name = typeof cl.name === 'string' ? cl.name : '';
    const chain = ['BootstrapValidationError.StaticResources', `StaticResourcesValidationError.Clusters[${i}]`];
    if (name === '') throw validationError([...chain, 'ClusterValidationError.Name'], 'value length must be at least 1 characters');
    if (clusters.has(name)) throw new BootstrapError(`cluster manager: duplicate cluster '${name}'`);
    const type = typeof cl.type === 'string' ? cl.type : isObj(cl.cluster_type) ? 'CUSTOM' : 'STATIC';
    const la = objAt(cl, 'load_assignment');
    if (la && (typeof la.cluster_name !== 'string' || la.cluster_name === '')) {
      throw validationError([...chain, 'ClusterValidationError.LoadAssignment', 'ClusterLoadAssignmentValidationError.ClusterName'], 'value length must be at least 1 characters');
    }
    const endpoints: Address[] = [];
    for (const locality of arrAt(la, 'endpoints')) {
      for (const lb of arrAt(isObj(locality) ? locality : undefined, 'lb_endpoints')) {
        const ep = objAt(isObj(lb) ? lb : undefined, 'endpoint');
        endpoints.push(parseAddress(ep?.address, [...chain, 'ClusterValidationError.LoadAssignment'], cwd, type === 'STRICT_DNS' || type === 'LOGICAL_DNS'));
      }
    }
    const opts = objAt(objAt(cl, 'typed_extension_protocol_options'), 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
    const http2 = Boolean(objAt(objAt(opts, 'explicit_http_config'), 'http2_protocol_options')) || isObj(cl.http2_protocol_options);
    clusters.set(name, {
      name,
      statName: typeof cl.alt_stat_name === 'string' && cl.alt_stat_name !== '' ? cl.alt_stat_name : name,
      type,
      connectTimeoutMs: durationMs(cl.connect_timeout, 5000),
      endpoints,
      http2,
    });
  });

  const listeners: ListenerSpec[] = [];
  const names = new Set<string>();
  const addrs = new Map<string, string>();
  arrAt(sr, 'listeners').forEach((l, i) => {
    const li = isObj(l) ? l : {};
    const name = typeof li.name === 'string' && li.name !== '' ? li.name : `listener_${i}`;
    if (names.has(name)) throw new BootstrapError(`error adding listener named '${name}': duplicate listener name`);
    names.add(name);
    let address: Address | null = null;
    if (isObj(li.address)) {
      address = parseAddress(li.address, ['BootstrapValidationError.StaticResources', `StaticResourcesValidationError.Listeners[${i}]`, 'ListenerValidationError.Address'], cwd);
      const key = addressString(address);
      const other = addrs.get(key);
      if (other !== undefined && !(address.kind === 'tcp' && address.port === 0)) {
        throw new BootstrapError(`error adding listener: '${name}' has duplicate address '${key}' as existing listener`);
      }
      addrs.set(key, name);
    } else if (!isObj(li.internal_listener) && !isObj(li.api_listener)) {
      throw new BootstrapError(`error adding listener named '${name}': address is necessary`);
    }
    const chains = arrAt(li, 'filter_chains');
    if (chains.length === 0 && !isObj(li.default_filter_chain) && !isObj(li.api_listener)) {
      throw new BootstrapError(`error adding listener '${address ? addressString(address) : name}': no filter chains specified`);
    }
    const firstChain = (chains[0] ?? li.default_filter_chain) as Obj | undefined;
    const filter = parseFilter(arrAt(firstChain, 'filters'), name, clusters);
    const direction = li.traffic_direction === 'INBOUND' || li.traffic_direction === 'OUTBOUND' ? li.traffic_direction : 'UNSPECIFIED';
    listeners.push({ name, address, direction, statPrefix: typeof li.stat_prefix === 'string' ? li.stat_prefix : '', filter });
  });

  const dr = objAt(raw, 'dynamic_resources');
  let xds: XdsSpec | null = null;
  if (dr && (isObj(dr.cds_config) || isObj(dr.lds_config))) {
    const ads = objAt(dr, 'ads_config');
    xds = {
      apiType: typeof ads?.api_type === 'string' ? ads.api_type : 'GRPC',
      cds: isObj(dr.cds_config),
      lds: isObj(dr.lds_config),
      cdsInitialFetchTimeoutMs: durationMs(objAt(dr, 'cds_config')?.initial_fetch_timeout, 15000),
      ldsInitialFetchTimeoutMs: durationMs(objAt(dr, 'lds_config')?.initial_fetch_timeout, 15000),
    };
  }

  const lf = objAt(objAt(raw, 'application_log_config'), 'log_format');
  if (lf && logFormatSet) {
    throw new BootstrapError('Only one of ApplicationLogConfig.log_format or CLI option --log-format can be specified.');
  }
  const logFormat = lf
    ? typeof lf.text_format === 'string'
      ? { text: lf.text_format }
      : isObj(lf.json_format)
        ? { json: lf.json_format }
        : undefined
    : undefined;

  const statsConfig = objAt(raw, 'stats_config');
  return {
    raw,
    admin,
    listeners,
    clusters,
    xds,
    statsConfig,
    statsFlushIntervalMs: durationMs(raw.stats_flush_interval, 5000),
    ...(logFormat ? { logFormat } : {}),
    node: objAt(raw, 'node') ?? {},
  };
}

const HCM = 'envoy.filters.network.http_connection_manager';
const TCP = 'envoy.filters.network.tcp_proxy';

function filterKind(f: Obj): string {
  const type = String(objAt(f, 'typed_config')?.['@type'] ?? '');
  if (type.endsWith('.HttpConnectionManager') || f.name === HCM) return 'http';
  if (type.endsWith('.TcpProxy') || f.name === TCP) return 'tcp';
  return 'other';
}

function parseFilter(filters: unknown[], listener: string, clusters: Map<string, ClusterSpec>): FilterSpec {
  for (const f of filters) {
    if (!isObj(f)) continue;
    const kind = filterKind(f);
    const tc = objAt(f, 'typed_config') ?? {};
    if (kind === 'http') {
      const statPrefix = typeof tc.stat_prefix === 'string' ? tc.stat_prefix : '';
      if (statPrefix === '') {
        throw validationError([`HttpConnectionManagerValidationError.StatPrefix (listener '${listener}')`], 'value length must be at least 1 characters');
      }
      const rc = objAt(tc, 'route_config');
      const validate = rc?.validate_clusters !== false;
      const virtualHosts = arrAt(rc, 'virtual_hosts').map((vh) => parseVirtualHost(isObj(vh) ? vh : {}, validate ? clusters : undefined));
      return { kind: 'http', statPrefix, virtualHosts, rds: isObj(tc.rds) };
    }
    if (kind === 'tcp') {
      const cluster = typeof tc.cluster === 'string' ? tc.cluster : '';
      if (cluster !== '' && !clusters.has(cluster)) throw new BootstrapError(`tcp proxy: unknown cluster '${cluster}'`);
      return { kind: 'tcp', statPrefix: String(tc.stat_prefix ?? ''), cluster };
    }
  }
  return { kind: 'none' };
}

function parseVirtualHost(vh: Obj, clusters: Map<string, ClusterSpec> | undefined): VirtualHostSpec {
  const routes: RouteSpec[] = arrAt(vh, 'routes').map((r) => {
    const route = isObj(r) ? r : {};
    const m = objAt(route, 'match') ?? {};
    const caseSensitive = m.case_sensitive !== false;
    const match: RouteSpec['match'] = { caseSensitive };
    if (typeof m.prefix === 'string') match.prefix = m.prefix;
    else if (typeof m.path === 'string') match.path = m.path;
    else if (typeof m.path_separated_prefix === 'string') match.prefix = m.path_separated_prefix;
    else if (isObj(m.safe_regex) && typeof m.safe_regex.regex === 'string') match.regex = re2ToJs(`^(?:${m.safe_regex.regex})$`, caseSensitive ? '' : 'i');
    else match.prefix = '';
    const ra = objAt(route, 'route');
    const dr = objAt(route, 'direct_response');
    let action: RouteSpec['action'] = { kind: 'unsupported' };
    if (ra) {
      const weighted = arrAt(objAt(ra, 'weighted_clusters'), 'clusters').map((c) => String((c as Obj).name ?? ''));
      const cluster = typeof ra.cluster === 'string' ? ra.cluster : (weighted[0] ?? '');
      for (const c of typeof ra.cluster === 'string' ? [ra.cluster] : weighted) {
        if (clusters && !clusters.has(c)) throw new BootstrapError(`route: unknown cluster '${c}'`);
      }
      action = {
        kind: 'cluster',
        cluster,
        ...(typeof ra.prefix_rewrite === 'string' ? { prefixRewrite: ra.prefix_rewrite } : {}),
        timeoutMs: durationMs(ra.timeout, 15000),
      };
    } else if (dr) {
      action = { kind: 'direct', status: Number(dr.status ?? 200), body: String(objAt(dr, 'body')?.inline_string ?? '') };
    }
    return { match, action };
  });
  const domains = arrAt(vh, 'domains').map(String);
  return { name: String(vh.name ?? ''), domains: domains.length ? domains : ['*'], routes };
}
