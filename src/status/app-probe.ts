/**
 * App probe rewrite (SPEC §6.3): `/app-health/<c>/(livez|readyz|startupz)` and
 * `/app-lifecycle/<c>/(prestopz|poststartz)` run the container's original kubelet probe
 * (httpGet, tcpSocket or grpc) from inside the pod.
 *
 * `parseAppProbers` validates ISTIO_KUBE_APP_PROBERS once at start (ConfigError naming the
 * variable and the key). `AppProbers` answers only the configured paths (400 otherwise):
 * the destination is always the pod's own address (INSTANCE_IP, or localhost) and the
 * configured port; nothing from the request or the prober's `host` chooses where a probe
 * goes, so the endpoint can never become an open proxy. The probes are the shared probers of
 * `src/probe/`, from 127.0.0.6 / ::6 when bindable (gRPC: see its limitation there).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { AgentConfig } from '../config/load.js';
import { ConfigError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { sendText } from './respond.js';
import { PROBE_SOURCE_ADDRESSES, ProbeNetwork } from '../probe/network.js';
import { probeTcp } from '../probe/tcp.js';
import type { GrpcHealthOutcome } from '../probe/grpc-health.js';
import { probeHttpGet } from './app-probe-http.js';

/** grpc-js and protobufjs load on the first gRPC probe: pods without one never pay for them. */
let grpcHealth: Promise<typeof import('../probe/grpc-health.js')> | undefined;
const loadGrpcHealth = () => (grpcHealth ??= import('../probe/grpc-health.js'));

export const APP_PROBERS_ENV = 'ISTIO_KUBE_APP_PROBERS';
export const APP_PROBER_PATTERN = /^\/(app-health|app-lifecycle)\/[^/]+\/(livez|readyz|startupz|prestopz|poststartz)$/;
/** Kubernetes' default probe timeout, used when timeoutSeconds is 0 or absent (SPEC decision). */
export const DEFAULT_PROBE_TIMEOUT_MS = 1000;

export interface HttpGetProber {
  kind: 'httpGet';
  /** Always starts with `/` (may carry a query). */
  path: string;
  port: number;
  scheme: 'http' | 'https';
  timeoutMs: number;
}
export interface TcpSocketProber {
  kind: 'tcpSocket';
  port: number;
  timeoutMs: number;
}
export interface GrpcProber {
  kind: 'grpc';
  port: number;
  service: string;
  timeoutMs: number;
}
export type Prober = HttpGetProber | TcpSocketProber | GrpcProber;

/** Parses and validates the env value; undefined or '' = no probers (Istio's behaviour). */
export function parseAppProbers(raw: string | undefined): Map<string, Prober> {
  const probers = new Map<string, Prober>();
  if (raw === undefined || raw === '') return probers;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`${APP_PROBERS_ENV}: invalid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${APP_PROBERS_ENV}: expected a JSON object mapping probe paths to probers`);
  }
  for (const [path, spec] of Object.entries(value as Record<string, unknown>)) {
    const where = `${APP_PROBERS_ENV}[${JSON.stringify(path)}]`;
    if (!APP_PROBER_PATTERN.test(path)) {
      throw new ConfigError(`${where}: invalid path, must match ${APP_PROBER_PATTERN.source}`);
    }
    probers.set(path, parseProber(spec, where));
  }
  return probers;
}

function parseProber(spec: unknown, where: string): Prober {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new ConfigError(`${where}: expected a prober object`);
  const o = spec as Record<string, unknown>;
  const kinds = (['httpGet', 'tcpSocket', 'grpc'] as const).filter((k) => o[k] !== undefined && o[k] !== null);
  if (kinds.length !== 1) {
    throw new ConfigError(`${where}: invalid prober type, must be exactly one of httpGet, tcpSocket or grpc${kinds.length ? ` (got ${kinds.join(', ')})` : ''}`);
  }
  const kind = kinds[0] as 'httpGet' | 'tcpSocket' | 'grpc';
  let timeoutMs = DEFAULT_PROBE_TIMEOUT_MS;
  if (o.timeoutSeconds !== undefined && o.timeoutSeconds !== null) {
    if (typeof o.timeoutSeconds !== 'number' || !Number.isInteger(o.timeoutSeconds) || o.timeoutSeconds < 0) {
      throw new ConfigError(`${where}.timeoutSeconds: expected a non-negative integer, got ${JSON.stringify(o.timeoutSeconds)}`);
    }
    if (o.timeoutSeconds > 0) timeoutMs = o.timeoutSeconds * 1000;
  }
  const body = o[kind];
  if (typeof body !== 'object' || Array.isArray(body) || body === null) throw new ConfigError(`${where}.${kind}: expected an object`);
  const b = body as Record<string, unknown>;
  const port = (field: string): number => {
    const p = b.port;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
      throw new ConfigError(`${where}.${field}.port: the port must be an integer 1-65535, got ${JSON.stringify(p)}`);
    }
    return p;
  };
  switch (kind) {
    case 'httpGet': {
      const rawPath = b.path ?? '';
      if (typeof rawPath !== 'string') throw new ConfigError(`${where}.httpGet.path: expected a string, got ${JSON.stringify(rawPath)}`);
      if (/[\s#]/.test(rawPath)) throw new ConfigError(`${where}.httpGet.path: invalid path ${JSON.stringify(rawPath)}`);
      const scheme = b.scheme ?? 'HTTP';
      if (typeof scheme !== 'string') throw new ConfigError(`${where}.httpGet.scheme: expected "HTTP" or "HTTPS", got ${JSON.stringify(scheme)}`);
      return {
        kind,
        path: rawPath.startsWith('/') ? rawPath : `/${rawPath}`,
        port: port('httpGet'),
        scheme: scheme.toUpperCase() === 'HTTPS' ? 'https' : 'http',
        timeoutMs,
      };
    }
    case 'tcpSocket':
      return { kind, port: port('tcpSocket'), timeoutMs };
    case 'grpc': {
      const service = b.service ?? '';
      if (typeof service !== 'string') throw new ConfigError(`${where}.grpc.service: expected a string, got ${JSON.stringify(service)}`);
      return { kind, port: port('grpc'), service, timeoutMs };
    }
  }
}

export interface AppProbersOptions {
  probers: ReadonlyMap<string, Prober>;
  /** Where probes go: the pod IP, or `localhost`. */
  destination: string;
  /** IPv6 pod: source `::6`, and `localhost` resolves to IPv6 first. */
  ipv6: boolean;
  /** HTTP/2 over ALPN for HTTPS probes (ISTIO_ENABLE_HTTP2_PROBING). */
  http2: boolean;
  log: Logger;
  /** Source addresses to bind (default 127.0.0.6 / ::6, each only when bindable); null = never bind. */
  sourceAddresses?: { v4: string; v6: string } | null;
}

export interface ProbeContext {
  /** The status server's actual port (for the Host rewrite). */
  statusPort: number;
}

export class AppProbers {
  private readonly net: ProbeNetwork;

  constructor(private readonly options: AppProbersOptions) {
    this.net = ProbeNetwork.forPod(options.ipv6, options.sourceAddresses === undefined ? PROBE_SOURCE_ADDRESSES : options.sourceAddresses);
  }

  /** From the config: ISTIO_KUBE_APP_PROBERS, INSTANCE_IP, REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION, ISTIO_ENABLE_HTTP2_PROBING. */
  static fromConfig(config: AgentConfig, deps: { ipv6: boolean; log: Logger }): AppProbers {
    const raw = config.env.ISTIO_KUBE_APP_PROBERS;
    const probers = parseAppProbers(typeof raw === 'string' ? raw : undefined);
    const ip = config.pod.instanceIp;
    const legacy = config.env.REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION === true;
    const destination = ip === '' || legacy ? 'localhost' : ip;
    const podIpV6 = isIP(ip) === 6 && !/^fe[89ab]/i.test(ip);
    return new AppProbers({
      probers,
      destination,
      ipv6: deps.ipv6 || podIpV6,
      http2: config.env.ISTIO_ENABLE_HTTP2_PROBING !== false,
      log: deps.log,
    });
  }

  /** The effective settings (for logs and tests). */
  get settings(): { destination: string; ipv6: boolean; http2: boolean } {
    return { destination: this.options.destination, ipv6: this.options.ipv6, http2: this.options.http2 };
  }

  get paths(): string[] {
    return [...this.options.probers.keys()];
  }

  /** Is `path` an app-probe route (configured or not)? */
  static matches(path: string): boolean {
    return path.startsWith('/app-health/') || path.startsWith('/app-lifecycle/');
  }

  /** Runs the configured probe for the request's path; 400 when the path is not configured. */
  async handle(req: IncomingMessage, res: ServerResponse, ctx: ProbeContext): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const prober = this.options.probers.get(path);
    if (!prober) {
      this.options.log.warn(`prober does not exist for ${path}`);
      sendText(req, res, 400, `app prober config does not exists for ${path}`);
      return;
    }
    const { log } = this.options;
    const dest = this.options.destination;
    switch (prober.kind) {
      case 'httpGet': {
        const result = await probeHttpGet({ prober, destination: dest, incoming: req, statusPort: ctx.statusPort, http2: this.options.http2, net: this.net });
        if (result.error) log.warn(`request to probe app failed: ${result.error}, original URL path = ${path}, app URL path = ${prober.path}`);
        sendText(req, res, result.status, result.body, {});
        return;
      }
      case 'tcpSocket': {
        const outcome = await probeTcp({ host: dest, port: prober.port, timeoutMs: prober.timeoutMs, network: this.net });
        if (!outcome.ok) log.warn(`tcp probe ${path} to port ${prober.port} failed: ${describeError(outcome.error)}`);
        sendText(req, res, outcome.ok ? 200 : 500, '');
        return;
      }
      case 'grpc': {
        const userAgent = req.headers['user-agent'];
        const { probeGrpcHealth } = await loadGrpcHealth();
        const outcome = await probeGrpcHealth({
          host: dest,
          port: prober.port,
          service: prober.service,
          timeoutMs: prober.timeoutMs,
          ...(userAgent ? { userAgent } : {}),
          network: this.net,
        });
        const error = grpcProbeMessage(outcome);
        if (error) log.warn(`grpc probe ${path} failed: ${error}`);
        sendText(req, res, outcome.ok ? 200 : 500, '');
        return;
      }
    }
  }
}

/** PURE: the log reason of a failed grpc app probe (the kubelet's wording). */
export function grpcProbeMessage(o: GrpcHealthOutcome): string | undefined {
  if (o.ok) return undefined;
  switch (o.kind) {
    case 'status':
      return `health check status ${o.statusName}`;
    case 'resolve':
      return `cannot resolve: ${describeError(o.error)}`;
    case 'rpc':
      if (o.code === 'UNIMPLEMENTED') return `server does not implement the grpc health protocol (grpc.health.v1.Health): ${o.details}`;
      if (o.code === 'DEADLINE_EXCEEDED') return `grpc request not finished within timeout: ${o.details}`;
      return `grpc probe failed: ${o.message}`;
  }
}
