/**
 * The agent's one call for SPEC §7.3 and issue 14: from the frozen config and the certificate
 * mode (mode.ts), start what serves Envoy's secrets before Envoy starts:
 * - `ca`: CaClient → SecretManager → SdsServer on the bootstrap's SDS socket;
 * - `mounted`: no CA client, no CSR: `default`/`ROOTCA` are read from the mounted files and
 *   watched; same socket;
 * in both, every new `default` is also written to OUTPUT_CERTS when set (output-certs.ts);
 * - `external`: another SDS server owns the workload socket; the agent runs no CA client and
 *   serves only file secrets on `filesSocketPath` (Istio's file-credential socket).
 * File secrets (`file-root:*`, `file-cert:*`) are served in every mode.
 * `startWorkloadCertificates` resolves once the socket is listening (the first certificate is
 * requested in the background). It throws a ConfigError for impossible settings and an
 * AgentError `SDS_LISTEN_FAILED` when the socket cannot be served; CA problems never throw.
 * `snapshot()` (for the status page): mode, sockets, OUTPUT_CERTS, each name's state — facts
 * only, never a key or certificate body. `close()` / dispose stops the server, the manager,
 * the file watchers.
 *
 * Start-up cost: the CA client (and its X.509 library) is imported by the first certificate
 * request, off the path to Envoy's spawn.
 */
import path from 'node:path';
import type { Registry } from 'prom-client';
import type { CheckedChain } from '../ca/chain.js';
import type { CaClient } from '../ca/client.js';
import { NO_CA_METRICS, registerCaMetrics, type CaMetrics } from '../ca/metrics.js';
import { certOptionsFromConfig, describeCa, type CaClientOptions } from '../ca/options.js';
import type { AgentConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import { SecretCatalog, type WorkloadMode } from './catalog.js';
import { FileSecretStore, NO_FILE_METRICS } from './file-secrets.js';
import { registerFileSecretMetrics } from './metrics.js';
import { chooseCertificateMode, type CertificateMode } from './mode.js';
import { ROOT_SECRET, WORKLOAD_SECRET } from './names.js';
import { writeOutputCerts } from './output-certs.js';
import { SecretManager, type CertificateSource } from './secret-manager.js';
import { SdsServer, type SdsServerSnapshot } from './server.js';

export interface WorkloadCertificatesOptions {
  config: AgentConfig;
  /** Absolute path of the SDS socket the agent binds (`BootstrapWriter.sds.absolute`, or the files socket in `external` mode). */
  socketPath: string;
  log: Logger;
  /** Decided by the caller (agent: after the external-SDS check); default: `chooseCertificateMode(config, undefined)`. */
  mode?: CertificateMode;
  /** The agent's registry: the CSR, certificate-expiry and file-secret metrics are registered on it. */
  registry?: Registry;
}

export interface WorkloadCertificatesSnapshot {
  mode: CertificateMode['kind'];
  /** Why `mounted` was chosen. */
  reason?: string;
  /** The socket an external SDS server serves default/ROOTCA on. */
  externalSocket?: string;
  outputCerts?: string;
  /** CA mode: the manager's state (idle, issuing, valid, renewing, expired, closed). */
  caState?: string;
  sds: SdsServerSnapshot;
}

export interface WorkloadCertificates extends AsyncDisposable {
  /** Present in `ca` mode. */
  readonly manager: SecretManager | undefined;
  readonly server: SdsServer;
  readonly mode: CertificateMode;
  snapshot(): WorkloadCertificatesSnapshot;
  /** The names Envoy asked for that cannot be served, with why (for the readiness reason); undefined when none. */
  unservable(): string | undefined;
  close(): Promise<void>;
}

/** A CaClient created on first use. */
class DeferredCaClient implements CertificateSource {
  private client: Promise<CaClient> | undefined;

  constructor(
    private readonly options: CaClientOptions,
    private readonly metrics: CaMetrics,
  ) {}

  describe(): string {
    return describeCa(this.options);
  }

  async issue(signal?: AbortSignal): Promise<CheckedChain> {
    this.client ??= import('../ca/client.js').then((m) => new m.CaClient(this.options, { metrics: this.metrics }));
    return (await this.client).issue(signal);
  }
}

export async function startWorkloadCertificates(o: WorkloadCertificatesOptions): Promise<WorkloadCertificates> {
  const mode = o.mode ?? chooseCertificateMode(o.config, undefined);
  const caLog = o.log.child({ scope: 'ca' });
  const caMetrics = o.registry ? registerCaMetrics(o.registry) : NO_CA_METRICS;
  const files = new FileSecretStore({
    cwd: o.config.cwd,
    log: o.log.child({ scope: 'sds-files' }),
    metrics: o.registry ? registerFileSecretMetrics(o.registry) : NO_FILE_METRICS,
    debounceMs: o.config.env.FILE_DEBOUNCE_DURATION,
    // `istio_agent_cert_expiry_seconds{resource_name}` for every certificate chain served from files
    // (mounted `default`, `file-cert:` names) and a mounted ROOTCA; Istio exports it for the CA-issued one only.
    onEntry: (e) => {
      if (e.spec.kind === 'keypair' || e.name === ROOT_SECRET) caMetrics.certExpiry(e.name, () => e.loaded?.notAfter);
    },
  });
  const outputDir = o.config.env.OUTPUT_CERTS === '' ? undefined : path.resolve(o.config.cwd, o.config.env.OUTPUT_CERTS);

  let manager: SecretManager | undefined;
  let workload: WorkloadMode;
  if (mode.kind === 'ca') {
    const opts = certOptionsFromConfig(o.config);
    for (const w of opts.warnings) caLog.warn(w);
    const source = new DeferredCaClient(opts.ca, caMetrics);
    caLog.info(
      `workload identity ${opts.ca.identity}; ${source.describe()}, token ${opts.ca.tokenPath ?? '(none)'} (JWT_POLICY=${opts.ca.jwtPolicy}), ` +
        `TTL ${opts.ca.ttlSeconds}s, ${opts.ca.key.type === 'rsa' ? `RSA ${opts.ca.key.bits}` : `ECDSA ${opts.ca.key.curve}`} keys`,
    );
    manager = new SecretManager({ source, log: o.log.child({ scope: 'cache' }), rotation: opts.rotation, metrics: caMetrics });
    if (outputDir) {
      const dir = outputDir;
      const outLog = o.log.child({ scope: 'cache' });
      manager.onUpdate((cert) => void writeOutputCerts(dir, cert, outLog));
    }
    workload = { kind: 'ca', manager };
  } else if (mode.kind === 'mounted') {
    caLog.info(`workload certificates from files (${mode.reason}): ${mode.certPath}, ${mode.keyPath}, ${mode.rootPath}; no CA client, no CSR`);
    workload = mode;
  } else {
    caLog.info(`an external SDS server serves ${WORKLOAD_SECRET} and ${ROOT_SECRET} on ${mode.socketPath}; no CA client; this agent serves file secrets only`);
    workload = mode;
  }
  const catalog = new SecretCatalog({ workload, files });
  if (mode.kind === 'mounted' && outputDir) {
    const dir = outputDir;
    const outLog = o.log.child({ scope: 'cache' });
    const output = (): void => {
      const pair = files.get(WORKLOAD_SECRET)?.loaded;
      const root = files.get(ROOT_SECRET)?.loaded;
      if (pair?.kind !== 'keypair' || root?.kind !== 'root') return;
      writeOutputCerts(dir, { certChainPem: pair.certChainPem, privateKeyPem: pair.privateKeyPem, rootCertPem: root.pem, serialNumber: pair.serialNumber }, outLog);
    };
    files.onChange((name) => {
      if (name === WORKLOAD_SECRET || name === ROOT_SECRET) output();
    });
    output();
  }

  let server: SdsServer;
  try {
    server = await SdsServer.start({ socketPath: o.socketPath, catalog, log: o.log.child({ scope: 'sds' }) });
  } catch (err) {
    catalog.close();
    await files.close();
    await manager?.close();
    throw err;
  }
  manager?.start();
  const close = async (): Promise<void> => {
    await server.close();
    catalog.close();
    await manager?.close();
    await files.close();
  };
  const snapshot = (): WorkloadCertificatesSnapshot => ({
    mode: mode.kind,
    ...(mode.kind === 'mounted' ? { reason: mode.reason } : {}),
    ...(mode.kind === 'external' ? { externalSocket: mode.socketPath } : {}),
    ...(outputDir ? { outputCerts: outputDir } : {}),
    ...(manager ? { caState: manager.currentState } : {}),
    sds: server.snapshot(),
  });
  const unservable = (): string | undefined => {
    const bad = server.snapshot().names.filter((n) => n.state === 'error' && n.streams > 0);
    if (bad.length === 0) return undefined;
    return `SDS cannot serve ${bad.map((n) => `${JSON.stringify(n.name)} (${n.error ?? 'error'})`).join(', ')}`;
  };
  return { manager, server, mode, snapshot, unservable, close, [Symbol.asyncDispose]: close };
}
