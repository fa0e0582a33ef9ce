/**
 * The start-up steps of `proxy` that are more than one call (the order lives in src/agent.ts).
 * Each step logs what it chose and returns a started component (AsyncDisposable) or a value;
 * none of them keeps anything running that its result does not own.
 */
import type { AgentConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import path from 'node:path';
import { BootstrapWriter, SPIFFE_UDS_DIR, readBootstrapOverride } from '../bootstrap/bootstrap.js';
import { metricsLocalhostOnly } from '../bootstrap/data.js';
import { formatGoDuration } from '../go/duration.js';
import type { AgentMetrics } from '../metrics/registry.js';
import { AppProbers } from '../status/app-probe.js';
import type { ReadinessTracker } from '../status/ready.js';
import { StatusServer } from '../status/server.js';
import { ndszHandler } from '../status/ndsz.js';
import { metricsEndpointOptions } from '../status/stats.js';
import type { EnvoySupervisor } from '../supervisor/supervisor.js';
import type { AgentXds } from '../xds/agent-xds.js';
import type { WorkloadCertificates } from '../sds/workload.js';
import type { AgentStatus } from './status.js';
import type { DnsServer } from '../dns/server.js';
import { DNS_NOT_READY_REASON, dnsEnabled } from '../dns/enabled.js';
import type { AgentNode } from './node.js';

export function logEffectiveConfig(config: AgentConfig, log: Logger): void {
  const pc = config.proxy;
  const summary = {
    proxyType: config.proxyType,
    domain: config.domain,
    standalone: config.standalone,
    discoveryAddress: config.discoveryAddress,
    statusPort: config.statusPort,
    configPath: pc.configPath,
    binaryPath: pc.binaryPath,
    drainDuration: formatGoDuration(pc.drainDuration),
    terminationDrainDuration: formatGoDuration(pc.terminationDrainDuration),
    proxyAdminPort: pc.proxyAdminPort,
    concurrency: pc.concurrency,
    controlPlaneAuthPolicy: pc.controlPlaneAuthPolicy,
    proxyMetadata: pc.proxyMetadata,
  };
  log.info({ config: summary }, 'effective config');
}

export function logIdentity(node: AgentNode, log: Logger): void {
  const identity = node.identity;
  for (const w of identity.warnings) log.warn(w);
  log.info(`node ID ${identity.id}, cluster ${identity.cluster}, IPs ${identity.ips.join(',')}${identity.ipv6 ? ' (IPv6 mode)' : ''}`);
}

export interface PreparedBootstrap {
  writer: BootstrapWriter;
  /** `--config-yaml` from ISTIO_BOOTSTRAP_OVERRIDE, when readable. */
  configYaml?: string;
}

/** Chooses the template, the SDS socket and the override; writes nothing yet (each Envoy start does). */
export function prepareBootstrap(config: AgentConfig, log: Logger, certs?: CertificatePlan): PreparedBootstrap {
  const writer = new BootstrapWriter(config, { externalSds: certs?.external !== undefined });
  if (writer.template) log.info(`bootstrap template ${writer.template.path} (${writer.template.source})`);
  else log.info(`using customConfigFile ${writer.envoyPath} unchanged`);
  log.info(`SDS socket ${writer.sds.path} (${writer.sds.reason})`);
  if (writer.filesSds) log.info(`file secrets SDS socket ${writer.filesSds.path} (${writer.filesSds.reason})`);
  if (config.standalone) log.info('standalone mode: no control plane, no xDS proxy');
  const override = readBootstrapOverride(config);
  if (override.error) log.error(`${override.error}; starting Envoy without --config-yaml`);
  return { writer, ...(override.json !== undefined ? { configYaml: override.json } : {}) };
}

export interface XdsStepOptions {
  config: AgentConfig;
  node: AgentNode;
  log: Logger;
  readiness: ReadinessTracker;
  metrics: AgentMetrics;
  /** The DNS proxy, fed the NDS name table from the xDS stream. */
  dns?: DnsServer;
}

/**
 * docs/DNS.md: the DNS proxy (ISTIO_META_DNS_CAPTURE / ISTIO_META_ENABLE_DNS_SERVER), listening
 * before Envoy starts; while it has no table, readiness is 503 with Istio's reason.
 */
export async function startDnsProxy(config: AgentConfig, log: Logger, readiness: ReadinessTracker, metrics: AgentMetrics): Promise<(DnsServer & { readinessCheck: Disposable }) | undefined> {
  if (!dnsEnabled(config)) return undefined;
  // Loaded on demand: the DNS stack is not paid for when DNS proxying is off.
  const { startAgentDns } = await import('../dns/agent-dns.js');
  const dns = await startAgentDns({ config, log, registry: metrics.registry });
  if (!dns) return undefined;
  const check = readiness.addCheck(() => (dns.ready ? undefined : DNS_NOT_READY_REASON));
  return Object.assign(dns, { readinessCheck: check });
}

/** SPEC §7.1, §7.2: the xDS proxy and health reporting, listening before Envoy starts; none in standalone mode. */
export async function startXdsProxy(o: XdsStepOptions): Promise<AgentXds | undefined> {
  if (o.config.standalone) return undefined;
  // Loaded on demand: grpc-js and protobufjs cost start-up time that standalone mode should not pay.
  const { startAgentXds, nodeFromIdentity } = await import('../xds/agent-xds.js');
  return startAgentXds({
    config: o.config,
    identity: o.node.identity,
    node: () => nodeFromIdentity(o.node.identity),
    log: o.log,
    envoyReady: () => o.readiness.current(),
    registry: o.metrics.registry,
    ...(o.dns ? { agentType: await ndsHandler(o.dns) } : {}),
  });
}

async function ndsHandler(dns: DnsServer) {
  const { NAME_TABLE_TYPE, decodeNameTable } = await import('../dns/nds.js');
  return { typeUrl: NAME_TABLE_TYPE, apply: (value: Uint8Array) => dns.updateTable(decodeNameTable(value)) };
}

export interface CertificatePlan {
  /** A healthy external SDS server on the workload socket (absolute path). */
  external?: { socketPath: string };
}

/**
 * Issue 14: before the bootstrap is chosen, is a healthy SDS server already on
 * `./var/run/secrets/workload-spiffe-uds/socket` (Istio's check: a gRPC connection within 1 s)?
 * A stale socket there is removed. Nothing to check in standalone mode.
 */
export async function planCertificates(config: AgentConfig, log: Logger): Promise<CertificatePlan> {
  if (config.standalone) return {};
  const { checkExternalSds } = await import('../sds/external.js');
  const socketPath = path.resolve(config.cwd, SPIFFE_UDS_DIR, 'socket');
  const check = await checkExternalSds(socketPath, log);
  if (check.kind === 'stale-removed') log.info(`removed the unhealthy SDS socket ${socketPath} (${check.why})`);
  if (check.kind !== 'healthy') return {};
  log.info(`existing workload SDS socket found at ${socketPath}: the agent's SDS server will only serve files`);
  return { external: { socketPath } };
}

/** SPEC §7.3, issue 14: the SDS server (and the CA client behind it, or mounted certificates, or files only); none in standalone mode. */
export async function startWorkloadCerts(
  config: AgentConfig,
  socketPath: string,
  log: Logger,
  metrics: AgentMetrics,
  plan: CertificatePlan & { filesSocketPath?: string } = {},
): Promise<WorkloadCertificates | undefined> {
  if (config.standalone) return undefined;
  // Loaded on demand: the X.509 stack costs start-up time that standalone mode should not pay.
  const [{ startWorkloadCertificates }, { chooseCertificateMode }] = await Promise.all([import('../sds/workload.js'), import('../sds/mode.js')]);
  const mode = chooseCertificateMode(config, plan.external);
  const bind = mode.kind === 'external' ? (plan.filesSocketPath ?? socketPath) : socketPath;
  return startWorkloadCertificates({ config, socketPath: bind, log, mode, registry: metrics.registry });
}

export interface StatusStepOptions {
  config: AgentConfig;
  dns?: DnsServer;
  log: Logger;
  node: AgentNode;
  readiness: ReadinessTracker;
  supervisor: EnvoySupervisor;
  metrics: AgentMetrics;
  /** The status page's providers and scrape record (issue 17). */
  status?: AgentStatus;
}

/** SPEC §6: the status server, up before Envoy so :15021 reaches it at once; none when the port is 0. */
export async function startStatusServer(o: StatusStepOptions): Promise<StatusServer | undefined> {
  const { config, supervisor } = o;
  if (config.statusPort === 0) {
    o.log.info('status server disabled (status.sidecar.istio.io/port: 0)');
    return undefined;
  }
  const log = o.log.child({ scope: 'status' });
  const localhost = o.node.identity.localhost;
  const status = await StatusServer.start({
    port: config.statusPort,
    log,
    routes: {
      ready: o.readiness.handler,
      quit: () => supervisor.quit(),
      drain: () => void supervisor.drain(),
      ...(o.dns ? { ndsz: ndszHandler(() => o.dns?.debugTable()) } : {}),
    },
    metrics: metricsEndpointOptions(config, { metrics: o.metrics, localhost }),
    appProbers: AppProbers.fromConfig(config, { ipv6: o.node.identity.ipv6, log }),
    metricsLocalhostOnly: metricsLocalhostOnly(config),
    ...(o.status ? { status: o.status.registry, scrapeHistory: o.status.scrapes } : {}),
  });
  o.log.info(`status server on port ${status.port}`);
  return status;
}
