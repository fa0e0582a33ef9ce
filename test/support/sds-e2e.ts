/**
 * Shared pieces of the certificate end-to-end tests (test/e2e/certificates*.test.ts,
 * file-secrets.test.ts): the seed agent with the test CA and control plane, the double's state
 * file, PEM helpers, and atomic file replacement as a test writes certificates.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startAgent, type AgentProcess } from './agent-process.js';
import type { CaServer } from './ca-server.js';
import type { ControlPlane } from './control-plane.js';
import type { SecretRecord } from './envoy-double/sds.js';
import { SEED_ANNOTATIONS, SEED_ARGS, SEED_LABELS } from './seed.js';

export const E2E_TOKEN = 'e2e-cert-token';
/** The seed pod's identity: trust domain cluster.local, namespace jiuxi-ns, service account default. */
export const E2E_IDENTITY = 'spiffe://cluster.local/ns/jiuxi-ns/sa/default';

export interface DoubleStateFile {
  state: string;
  ads?: { cds: { accepted: number; names: string[] }; lds: { accepted: number } };
  sds?: Record<string, SecretRecord>;
  clusters?: { warming: Record<string, string[]> };
}

export function doubleState(a: AgentProcess): DoubleStateFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(a.stateFile, 'utf8')) as DoubleStateFile;
  } catch {
    return undefined; // not written yet, or mid-rename
  }
}

export function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Writes `content` to a temporary name beside `file` and renames it over `file` (a plain rename). */
export function replaceFile(file: string, content: string, mode = 0o644): void {
  const tmp = `${file}.new`;
  fs.writeFileSync(tmp, content, { mode });
  fs.renameSync(tmp, file);
}

export interface E2eAgentOptions {
  cp: ControlPlane;
  caServer: CaServer;
  rootCertPem: string;
  args?: string[];
  env?: Record<string, string>;
  files?: Record<string, string>;
  cwd?: string;
}

/** The seed sidecar (not standalone) against `cp` and the test CA over TLS. */
export async function startE2eAgent(o: E2eAgentOptions): Promise<AgentProcess> {
  return startAgent({
    standalone: false,
    args: [...SEED_ARGS, ...(o.args ?? [])],
    env: {
      JWT_POLICY: 'third-party-jwt',
      // `localhost` maps to the SAN istiod.istio-system.svc, which the CA's server certificate has.
      CA_ADDR: `localhost:${o.caServer.port}`,
      ENVOY_DOUBLE_ADS_BACKOFF_MS: '100',
      ENVOY_DOUBLE_ADS_BACKOFF_MAX_MS: '500',
      ...o.env,
    },
    proxyConfig: { discoveryAddress: o.cp.address, controlPlaneAuthPolicy: 'NONE', terminationDrainDuration: '0.1s' },
    files: {
      'etc/istio/pod/labels': SEED_LABELS,
      'etc/istio/pod/annotations': SEED_ANNOTATIONS,
      'var/run/secrets/tokens/istio-token': `${E2E_TOKEN}\n`,
      'var/run/secrets/istio/root-cert.pem': o.rootCertPem,
      ...o.files,
    },
    ...(o.cwd ? { cwd: o.cwd } : {}),
  });
}

/** Absolute path inside the agent's cwd. */
export function inCwd(a: AgentProcess, rel: string): string {
  return path.join(a.cwd, rel);
}
