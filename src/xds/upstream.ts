/**
 * How the xDS proxy reaches the control plane (SPEC §7.1).
 *
 * `xdsUpstreamSettings(config)` is PURE (file existence is injected): address, plaintext iff
 * ProxyConfig `controlPlaneAuthPolicy` is NONE, TLS root CA (`XDS_ROOT_CA` > `./etc/certs/root-cert.pem`
 * if it exists > `./var/run/secrets/istio/root-cert.pem`), ServerName/SAN (`ISTIOD_SAN` > host of
 * discoveryAddress, `localhost` → `istiod.istio-system.svc`), the token file `JWT_POLICY` selects,
 * and the static metadata (`ClusterID`, `XDS_HEADER_*`).
 *
 * The shell parts run once per upstream stream: `xdsHeaderSource` re-reads the token file, and
 * `upstreamDial` re-reads the root CA; each failure is an `XdsDialError` naming the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { AgentConfig } from '../config/load.js';
import { pilotSan } from '../bootstrap/node.js';
import { XdsDialError } from '../errors.js';

export const THIRD_PARTY_TOKEN_PATH = './var/run/secrets/tokens/istio-token';
export const FIRST_PARTY_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';
export const LEGACY_ROOT_CERT = './etc/certs/root-cert.pem';
export const DEFAULT_ROOT_CERT = './var/run/secrets/istio/root-cert.pem';

export interface XdsUpstreamSettings {
  /** `host:port` of the control plane (discoveryAddress after the annotation). */
  address: string;
  plaintext: boolean;
  /** TLS only: absolute path of the root CA bundle, read at every dial. */
  rootCaPath?: string;
  /** TLS only: SNI and the SAN the server certificate must carry. */
  serverName?: string;
  /** The bearer token file (absent: no authorization header, e.g. an unknown JWT_POLICY). */
  token?: { path: string; jwtPolicy: string };
  /** `ClusterID` and `XDS_HEADER_*` metadata (keys lower-cased, as gRPC sends them). */
  staticHeaders: Record<string, string>;
  /** XDS_HEADER_* entries that cannot be gRPC metadata keys (logged once by the caller). */
  invalidHeaders: string[];
}

export { XdsDialError } from '../errors.js';

const METADATA_KEY = /^[0-9a-z_.-]+$/;

export function tokenPathFor(jwtPolicy: string): string | undefined {
  if (jwtPolicy === 'third-party-jwt') return THIRD_PARTY_TOKEN_PATH;
  if (jwtPolicy === 'first-party-jwt') return FIRST_PARTY_TOKEN_PATH;
  return undefined;
}

export function xdsUpstreamSettings(config: AgentConfig, exists: (p: string) => boolean = fs.existsSync): XdsUpstreamSettings {
  const abs = (p: string) => path.resolve(config.cwd, p);
  const env = config.env;
  const plaintext = config.proxy.controlPlaneAuthPolicy === 'NONE';
  const jwtPolicy = env.JWT_POLICY;
  const tokenPath = tokenPathFor(jwtPolicy);

  const staticHeaders: Record<string, string> = { clusterid: config.prefixedEnv.ISTIO_META_CLUSTER_ID ?? '' };
  const invalidHeaders: string[] = [];
  for (const [k, v] of Object.entries(config.prefixedEnv).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!k.startsWith('XDS_HEADER_')) continue;
    const key = k.slice('XDS_HEADER_'.length).toLowerCase();
    if (!METADATA_KEY.test(key) || key.startsWith('grpc-') || key === 'authorization') invalidHeaders.push(k);
    else staticHeaders[key] = v;
  }

  const settings: XdsUpstreamSettings = {
    address: config.discoveryAddress,
    plaintext,
    staticHeaders,
    invalidHeaders,
    ...(tokenPath ? { token: { path: abs(tokenPath), jwtPolicy } } : {}),
  };
  if (!plaintext) {
    const explicit = env.XDS_ROOT_CA;
    settings.rootCaPath = explicit !== '' ? abs(explicit) : exists(abs(LEGACY_ROOT_CERT)) ? abs(LEGACY_ROOT_CERT) : abs(DEFAULT_ROOT_CERT);
    settings.serverName = pilotSan(config);
  }
  return settings;
}

/** Per-stream metadata: the static headers plus `authorization: Bearer <token>` read now. */
export function xdsHeaderSource(settings: Pick<XdsUpstreamSettings, 'token' | 'staticHeaders'>): () => Promise<Record<string, string>> {
  return async () => {
    const headers = { ...settings.staticHeaders };
    const t = settings.token;
    if (t) {
      let token: string;
      try {
        token = (await fs.promises.readFile(t.path, 'utf8')).trim();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (err as Error).message})`;
        throw new XdsDialError(`token file ${t.path} (JWT_POLICY=${t.jwtPolicy}) ${why}`, { cause: err });
      }
      if (token === '') throw new XdsDialError(`token file ${t.path} (JWT_POLICY=${t.jwtPolicy}) is empty`);
      headers.authorization = `Bearer ${token}`;
    }
    return headers;
  };
}

/** How to open the HTTP/2 session to the control plane for one upstream stream. */
export interface UpstreamDial {
  /** `http://host:port` or `https://host:port`. */
  url: string;
  /** The `:authority` of requests (the TLS server name when set, else the address). */
  authority: string;
  options: http2.SecureClientSessionOptions;
}

/** HTTP/2 window for the upstream session: a 5 MB response must not crawl through 64 KiB windows. */
export const UPSTREAM_WINDOW_BYTES = 16 * 1024 * 1024;

/** Dial options for one upstream stream; TLS reads the root CA now. */
export async function upstreamDial(settings: Pick<XdsUpstreamSettings, 'address' | 'plaintext' | 'rootCaPath' | 'serverName'>): Promise<UpstreamDial> {
  const common: http2.SecureClientSessionOptions = {
    settings: { initialWindowSize: UPSTREAM_WINDOW_BYTES, enablePush: false, maxFrameSize: 1024 * 1024 },
    maxSessionMemory: 512,
  };
  if (settings.plaintext) return { url: `http://${settings.address}`, authority: settings.address, options: common };
  const caPath = settings.rootCaPath ?? '';
  let ca: Buffer;
  try {
    ca = await fs.promises.readFile(caPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new XdsDialError(`root CA ${caPath} for the xDS connection ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (err as Error).message})`}`, { cause: err });
  }
  const serverName = settings.serverName ?? '';
  const options: http2.SecureClientSessionOptions = {
    ...common,
    ca,
    ALPNProtocols: ['h2'],
    // Verify the SAN we expect, whatever host the address names (SPEC §7.1).
    checkServerIdentity: (host, cert) => tls.checkServerIdentity(serverName || host, cert),
    ...(serverName !== '' && net.isIP(serverName) === 0 ? { servername: serverName } : {}),
  };
  return { url: `https://${settings.address}`, authority: serverName || settings.address, options };
}
