/**
 * Where `default` and `ROOTCA` come from (Istio's `SetupSecurityOptions`, `initSdsServer` and
 * `generateFileSecret`), decided once at start, first match wins:
 * 1. a healthy external SDS server on the workload socket (external.ts) → `external`: the
 *    agent serves only file secrets, on Istio's file-credential socket;
 * 2. `CA_PROVIDER=GkeWorkloadCertificate` → GKE's files in the workload-spiffe-credentials
 *    directory (`certificates.pem`, `private_key.pem`, `ca_certificates.pem`); missing files are
 *    a ConfigError, as in Istio;
 * 3. `./var/run/secrets/workload-spiffe-credentials/{cert-chain,key,root-cert}.pem` all exist
 *    (unless OUTPUT_CERTS is that directory);
 * 4. `FILE_MOUNTED_CERTS=true` → `./etc/certs/{cert-chain,key,root-cert}.pem` (Istio 1.6's
 *    location), whether or not they exist yet (they are watched);
 * 5. those three `./etc/certs` files exist and are not empty (Istio serves them before asking
 *    its CA), unless OUTPUT_CERTS is that directory (its own output is never read back);
 * 6. otherwise `ca`: the CA client and SecretManager.
 * PURE apart from reading the file system.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AgentConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';

export const WORKLOAD_IDENTITY_CREDENTIALS_DIR = './var/run/secrets/workload-spiffe-credentials';
export const LEGACY_CERTS_DIR = './etc/certs';
/** Istio's `FileCredentialNameSocketPath`: the file-secret SDS socket when an external SDS server owns the workload socket. */
export const FILE_CREDENTIAL_SOCKET = './var/run/secrets/credential-uds/files-socket';
export const GKE_PROVIDER = 'GkeWorkloadCertificate';

export type CertificateMode =
  | { kind: 'ca' }
  | { kind: 'mounted'; certPath: string; keyPath: string; rootPath: string; reason: string }
  | { kind: 'external'; socketPath: string };

function nonEmptyFile(p: string): boolean {
  try {
    const st = fs.statSync(p);
    return st.isFile() && st.size > 0;
  } catch {
    return false;
  }
}

function triple(config: AgentConfig, dir: string, chain: string, key: string, root: string): { certPath: string; keyPath: string; rootPath: string } {
  const abs = (f: string): string => path.resolve(config.cwd, dir, f);
  return { certPath: abs(chain), keyPath: abs(key), rootPath: abs(root) };
}

export function chooseCertificateMode(config: AgentConfig, external: { socketPath: string } | undefined): CertificateMode {
  if (external) return { kind: 'external', socketPath: external.socketPath };
  const env = config.env;
  if (env.CA_PROVIDER === GKE_PROVIDER) {
    const t = triple(config, WORKLOAD_IDENTITY_CREDENTIALS_DIR, 'certificates.pem', 'private_key.pem', 'ca_certificates.pem');
    const missing = [t.certPath, t.keyPath, t.rootPath].filter((p) => !fs.existsSync(p));
    if (missing.length > 0) throw new ConfigError(`CA_PROVIDER=${GKE_PROVIDER}: the GKE workload certificate files are not present: ${missing.join(', ')}`);
    return { kind: 'mounted', ...t, reason: `CA_PROVIDER=${GKE_PROVIDER}` };
  }
  const output = env.OUTPUT_CERTS;
  const isOutput = (dir: string): boolean => output !== '' && path.resolve(config.cwd, output) === path.resolve(config.cwd, dir);
  const spiffe = triple(config, WORKLOAD_IDENTITY_CREDENTIALS_DIR, 'cert-chain.pem', 'key.pem', 'root-cert.pem');
  if (!isOutput(WORKLOAD_IDENTITY_CREDENTIALS_DIR) && [spiffe.certPath, spiffe.keyPath, spiffe.rootPath].every((p) => fs.existsSync(p))) {
    return { kind: 'mounted', ...spiffe, reason: `workload certificate files in ${WORKLOAD_IDENTITY_CREDENTIALS_DIR}` };
  }
  const legacy = triple(config, LEGACY_CERTS_DIR, 'cert-chain.pem', 'key.pem', 'root-cert.pem');
  if (env.FILE_MOUNTED_CERTS) return { kind: 'mounted', ...legacy, reason: 'FILE_MOUNTED_CERTS=true' };
  if (!isOutput(LEGACY_CERTS_DIR) && [legacy.certPath, legacy.keyPath, legacy.rootPath].every(nonEmptyFile)) {
    return { kind: 'mounted', ...legacy, reason: `certificate files in ${LEGACY_CERTS_DIR}` };
  }
  return { kind: 'ca' };
}
