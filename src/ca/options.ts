/**
 * PURE: the workload-certificate options (SPEC §7.3) derived from the frozen AgentConfig —
 * where the CA is and how to reach it, which token to present, the identity to request, the
 * key to generate, and when to rotate. `certOptionsFromConfig` throws a ConfigError naming the
 * variable for values that can never work (an RSA key under 2048 bits, an unknown
 * ECC_SIGNATURE_ALGORITHM, a SECRET_TTL under 1s) and returns warnings, with the default used,
 * for typed values it could not parse (SPEC §2).
 */
import path from 'node:path';
import type { AgentConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';

/** Istio's minimum RSA workload key size (`pkiutil.MinimumRsaKeySize`). */
export const MIN_RSA_KEY_BITS = 2048;
export const THIRD_PARTY_JWT_PATH = './var/run/secrets/tokens/istio-token';
export const FIRST_PARTY_JWT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';
export const DEFAULT_CA_ROOT_PATH = './var/run/secrets/istio/root-cert.pem';
export const CUSTOM_PROVIDER_ROOT_PATH = './etc/certs/root-cert.pem';
/** `CA_ROOT_CA=SYSTEM`: trust the system's public roots (an ACME/public CA). */
export const SYSTEM_ROOTS = 'SYSTEM';
/** The only port that means plaintext to the CA (istiod's insecure gRPC port). */
export const PLAINTEXT_CA_PORT_SUFFIX = ':15010';

export type KeySpec = { type: 'rsa'; bits: number } | { type: 'ecdsa'; curve: 'P-256' | 'P-384' };

export interface CaTlsOptions {
  /** Absolute path of the PEM root bundle, or SYSTEM for the system roots. */
  rootCertPath: string;
  /** Which setting chose the root (for error messages). */
  rootCertSource: string;
  /** TLS ServerName, also the DNS SAN the CA's certificate must carry. */
  serverName: string;
}

export interface CaClientOptions {
  /** `host:port` of the CA: CA_ADDR, else the discovery address. */
  address: string;
  /** Which setting chose the address (for error messages). */
  addressSource: 'CA_ADDR' | 'discoveryAddress';
  /** TLS settings; false = plaintext (CA_ADDR ends in :15010). */
  tls: CaTlsOptions | false;
  /** Absolute path of the bearer token file, re-read per request; undefined = send none. */
  tokenPath: string | undefined;
  jwtPolicy: string;
  /** `ClusterID` request metadata (ISTIO_META_CLUSTER_ID). */
  clusterId: string;
  /** The SPIFFE identity the CSR asks for. */
  identity: string;
  /** `validity_duration` of the request, whole seconds (SECRET_TTL). */
  ttlSeconds: number;
  key: KeySpec;
  /** PKCS#8 private key encoding (PKCS8_KEY) instead of PKCS#1 / SEC 1. */
  pkcs8: boolean;
}

export interface RotationOptions {
  /** SECRET_GRACE_PERIOD_RATIO: renew when this fraction of the lifetime remains. */
  graceRatio: number;
  /** SECRET_GRACE_PERIOD_RATIO_JITTER: ± random spread added to the ratio. */
  graceJitter: number;
}

export interface CertOptions {
  ca: CaClientOptions;
  rotation: RotationOptions;
  warnings: string[];
}

/** `spiffe://<trust domain>/ns/<namespace>/sa/<service account>` (Istio's spiffe.Identity). */
export function spiffeIdentity(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** The token file per JWT_POLICY (SPEC §7.1, 1.6 mapping); undefined = no token. */
export function tokenPathFor(jwtPolicy: string, cwd: string): string | undefined {
  if (jwtPolicy === 'third-party-jwt') return path.resolve(cwd, THIRD_PARTY_JWT_PATH);
  if (jwtPolicy === 'first-party-jwt') return FIRST_PARTY_JWT_PATH;
  return undefined;
}

/** The host part of `host:port` (`[v6]:port` unbracketed). */
export function hostOf(address: string): string {
  const m = /^(?:\[([^\]]+)\]|(.*)):\d+$/.exec(address);
  return m ? (m[1] ?? m[2] ?? '') : address;
}

/**
 * TLS ServerName / expected SAN, as Istio's gRPC client computes it: the host of the address;
 * any name containing `localhost` becomes `istiod.istio-system.svc` (port-forward debugging);
 * ISTIOD_SAN overrides it only when CA_ADDR is unset (the CA is then istiod itself).
 */
export function caServerName(address: string, addressFromCaAddr: boolean, istiodSan: string): string {
  let name = hostOf(address);
  if (name.includes('localhost')) name = 'istiod.istio-system.svc';
  if (!addressFromCaAddr && istiodSan !== '') name = istiodSan;
  return name;
}

export function certOptionsFromConfig(config: AgentConfig): CertOptions {
  const env = config.env;
  const warnings: string[] = [];

  const caAddr = env.CA_ADDR;
  const address = caAddr !== '' ? caAddr : config.discoveryAddress;
  const addressSource = caAddr !== '' ? 'CA_ADDR' : 'discoveryAddress';

  let tls: CaTlsOptions | false = false;
  if (!address.endsWith(PLAINTEXT_CA_PORT_SUFFIX)) {
    const caRoot = env.CA_ROOT_CA;
    let rootCertPath: string;
    let rootCertSource: string;
    if (caRoot === SYSTEM_ROOTS) {
      rootCertPath = SYSTEM_ROOTS;
      rootCertSource = 'CA_ROOT_CA=SYSTEM';
    } else if (caRoot !== '') {
      rootCertPath = path.resolve(config.cwd, caRoot);
      rootCertSource = 'CA_ROOT_CA';
    } else if (env.PILOT_CERT_PROVIDER === 'custom') {
      rootCertPath = path.resolve(config.cwd, CUSTOM_PROVIDER_ROOT_PATH);
      rootCertSource = 'PILOT_CERT_PROVIDER=custom';
    } else {
      rootCertPath = path.resolve(config.cwd, DEFAULT_CA_ROOT_PATH);
      rootCertSource = 'the default CA root';
    }
    tls = { rootCertPath, rootCertSource, serverName: caServerName(address, caAddr !== '', env.ISTIOD_SAN) };
  }

  const ttlMs = env.SECRET_TTL;
  if (!(ttlMs >= 1000)) throw new ConfigError(`SECRET_TTL: must be at least 1s, got ${ttlMs}ms`);

  let key: KeySpec;
  const ecc = env.ECC_SIGNATURE_ALGORITHM;
  if (ecc === '') {
    const bits = env.WORKLOAD_RSA_KEY_SIZE;
    if (!(bits >= MIN_RSA_KEY_BITS)) {
      throw new ConfigError(`WORKLOAD_RSA_KEY_SIZE: requested key size does not meet the minimum required size of ${MIN_RSA_KEY_BITS}, got ${bits}`);
    }
    key = { type: 'rsa', bits };
  } else if (ecc === 'ECDSA') {
    const curve = env.ECC_CURVE;
    if (curve !== 'P256' && curve !== 'P384') warnings.push(`invalid value for env ECC_CURVE: ${JSON.stringify(curve)} (expected P256 or P384); using P256`);
    key = { type: 'ecdsa', curve: curve === 'P384' ? 'P-384' : 'P-256' };
  } else {
    throw new ConfigError(`ECC_SIGNATURE_ALGORITHM: unsupported EC signature algorithm ${JSON.stringify(ecc)} (expected ECDSA, or unset for RSA)`);
  }

  const identity = spiffeIdentity(env.TRUST_DOMAIN, config.pod.namespace, config.pod.serviceAccount);
  if (config.pod.namespace === '' || config.pod.serviceAccount === '') {
    warnings.push(`POD_NAMESPACE or SERVICE_ACCOUNT is empty: the workload identity ${identity} is unlikely to be accepted by the CA`);
  }

  const jwtPolicy = env.JWT_POLICY;
  return {
    ca: {
      address,
      addressSource,
      tls,
      tokenPath: tokenPathFor(jwtPolicy, config.cwd),
      jwtPolicy,
      clusterId: config.prefixedEnv.ISTIO_META_CLUSTER_ID ?? '',
      identity,
      ttlSeconds: Math.floor(ttlMs / 1000),
      key,
      pkcs8: env.PKCS8_KEY,
    },
    rotation: {
      graceRatio: ratio(env.SECRET_GRACE_PERIOD_RATIO, 'SECRET_GRACE_PERIOD_RATIO', 0.5, (r) => r > 0 && r < 1, 'a number between 0 and 1 (exclusive)', warnings),
      graceJitter: ratio(env.SECRET_GRACE_PERIOD_RATIO_JITTER, 'SECRET_GRACE_PERIOD_RATIO_JITTER', 0.01, (r) => r >= 0 && r < 0.5, 'a number in [0, 0.5)', warnings),
    },
    warnings,
  };
}

/** `CA istiod.istio-system.svc:15012 (TLS, SAN istiod.istio-system.svc)`, for logs. */
export function describeCa(o: CaClientOptions): string {
  return `CA ${o.address} (${o.tls ? `TLS, SAN ${o.tls.serverName}` : 'plaintext'})`;
}

function ratio(raw: string, name: string, dflt: number, ok: (r: number) => boolean, expected: string, warnings: string[]): number {
  if (raw.trim() === '') return dflt;
  const r = Number(raw);
  if (Number.isFinite(r) && ok(r)) return r;
  warnings.push(`invalid value for env ${name}: ${JSON.stringify(raw)} (expected ${expected}); using default ${dflt}`);
  return dflt;
}
