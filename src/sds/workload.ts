/**
 * The agent's one call for SPEC §7.3: from the frozen config, start the workload-certificate
 * chain — CaClient → SecretManager → SdsServer on the SDS socket the bootstrap names — before
 * Envoy starts. `startWorkloadCertificates` resolves once the SDS socket is listening; the first
 * certificate is requested in the background (Envoy's requests wait for it). It throws a
 * ConfigError for impossible settings (e.g. WORKLOAD_RSA_KEY_SIZE=1024) and an AgentError
 * `SDS_LISTEN_FAILED` when the socket cannot be served; CA problems never throw (they are
 * retried and logged). `close()` / dispose stops the SDS server, then the manager.
 *
 * Start-up cost: the CA client (and its X.509 library, ~100 ms to load) is imported by the first
 * certificate request, off the path to Envoy's spawn. Import this module itself only when not
 * standalone.
 */
import type { Registry } from 'prom-client';
import type { CheckedChain } from '../ca/chain.js';
import type { CaClient } from '../ca/client.js';
import { NO_CA_METRICS, registerCaMetrics, type CaMetrics } from '../ca/metrics.js';
import { certOptionsFromConfig, describeCa, type CaClientOptions } from '../ca/options.js';
import type { AgentConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import { SecretManager, type CertificateSource } from './secret-manager.js';
import { SdsServer } from './server.js';

export interface WorkloadCertificatesOptions {
  config: AgentConfig;
  /** Absolute path of the SDS socket (`BootstrapWriter.sds.absolute`). */
  socketPath: string;
  log: Logger;
  /** The agent's registry: the CSR and certificate-expiry metrics are registered on it. */
  registry?: Registry;
}

export interface WorkloadCertificates extends AsyncDisposable {
  readonly manager: SecretManager;
  readonly server: SdsServer;
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
  const opts = certOptionsFromConfig(o.config);
  const caLog = o.log.child({ scope: 'ca' });
  for (const w of opts.warnings) caLog.warn(w);
  const metrics = o.registry ? registerCaMetrics(o.registry) : NO_CA_METRICS;
  const source = new DeferredCaClient(opts.ca, metrics);
  caLog.info(
    `workload identity ${opts.ca.identity}; ${source.describe()}, token ${opts.ca.tokenPath ?? '(none)'} (JWT_POLICY=${opts.ca.jwtPolicy}), ` +
      `TTL ${opts.ca.ttlSeconds}s, ${opts.ca.key.type === 'rsa' ? `RSA ${opts.ca.key.bits}` : `ECDSA ${opts.ca.key.curve}`} keys`,
  );
  const manager = new SecretManager({ source, log: o.log.child({ scope: 'cache' }), rotation: opts.rotation, metrics });
  let server: SdsServer;
  try {
    server = await SdsServer.start({ socketPath: o.socketPath, manager, log: o.log.child({ scope: 'sds' }) });
  } catch (err) {
    await manager.close();
    throw err;
  }
  manager.start();
  const close = async (): Promise<void> => {
    await server.close();
    await manager.close();
  };
  return { manager, server, close, [Symbol.asyncDispose]: close };
}
