/**
 * The status page's providers (issue 17), registered in the agent's start-up order on one
 * StatusRegistry: agent, envoy (supervisor), readiness, controlPlane (xDS proxy; absent in
 * standalone mode), certificates (the CA secret manager; absent in standalone mode), pod
 * (podinfo), metrics (the merged scrapes). Each provider returns facts only: never a private
 * key, a token or a certificate body. Later components (SDS file secrets, DNS) register their
 * own `{ name, snapshot }` on the same registry; the page renders any section it has no
 * dedicated panel for generically.
 */
import { X509Certificate } from 'node:crypto';
import type { AgentConfig } from '../config/load.js';
import type { IssuedCertificate } from '../ca/chain.js';
import { certOptionsFromConfig } from '../ca/options.js';
import { AGENT_VERSION, ISTIO_COMPAT_VERSION } from '../version.js';
import { StatusRegistry, isoTime } from '../status/registry.js';
import type { ReadinessTracker } from '../status/ready.js';
import { ScrapeHistory } from '../status/scrape-history.js';
import type { EnvoySupervisor } from '../supervisor/supervisor.js';
import type { SecretManager } from '../sds/secret-manager.js';
import type { XdsProxy } from '../xds/proxy.js';
import type { AgentNode } from './node.js';

/** The podinfo facts: labels and annotations in use, reloads. Fed by the podinfo reaction. */
export class PodStatus {
  private labels: Record<string, string>;
  private annotations: Record<string, string>;
  private reloads = 0;
  private lastReloadAt: number | undefined;

  constructor(
    initial: { labels: Record<string, string>; annotations: Record<string, string> },
    private readonly dir: string,
  ) {
    this.labels = initial.labels;
    this.annotations = initial.annotations;
  }

  reloaded(info: { labels: Record<string, string>; annotations: Record<string, string> }): void {
    this.labels = info.labels;
    this.annotations = info.annotations;
    this.reloads++;
    this.lastReloadAt = Date.now();
  }

  snapshot(): Record<string, unknown> {
    return { podInfoDir: this.dir, labels: { ...this.labels }, annotations: { ...this.annotations }, reloads: this.reloads, lastReloadAt: isoTime(this.lastReloadAt) };
  }
}

export interface AgentStatus {
  registry: StatusRegistry;
  scrapes: ScrapeHistory;
  pod: PodStatus;
}

export interface AgentStatusOptions {
  config: AgentConfig;
  node: AgentNode;
  supervisor: EnvoySupervisor;
  readiness: ReadinessTracker;
  xds?: XdsProxy;
  certificates?: SecretManager;
  /** SDS: default/ROOTCA source and every name served (issue 14). */
  sds?: { snapshot(): object };
  /** The DNS proxy (issue 15). */
  dns?: { snapshot(): object };
}

export function createAgentStatus(o: AgentStatusOptions): AgentStatus {
  const { config, node } = o;
  const registry = new StatusRegistry();
  const scrapes = new ScrapeHistory();
  const pod = new PodStatus({ labels: config.pod.labels, annotations: config.pod.annotations }, config.paths.podInfoDir);
  const startedAt = Date.now();
  registry.register({
    name: 'agent',
    snapshot: () => ({
      version: AGENT_VERSION,
      istioVersion: ISTIO_COMPAT_VERSION,
      pid: process.pid,
      startedAt: isoTime(startedAt),
      uptimeSeconds: (Date.now() - startedAt) / 1000,
      nodeId: node.identity.id,
      cluster: node.identity.cluster,
      proxyType: config.proxyType,
      standalone: config.standalone,
      statusPort: config.statusPort,
      adminPort: config.proxy.proxyAdminPort,
      binaryPath: config.proxy.binaryPath,
    }),
  });
  registry.register({ name: 'envoy', snapshot: () => o.supervisor.snapshot() });
  registry.register({ name: 'readiness', snapshot: () => o.readiness.snapshot() });
  const xds = o.xds;
  registry.register({
    name: 'controlPlane',
    snapshot: () => (xds ? { enabled: true, ...xds.snapshot() } : { enabled: false, reason: 'standalone mode: no control plane' }),
  });
  registry.register({ name: 'certificates', snapshot: certificatesProvider(config, o.certificates) });
  const sds = o.sds;
  if (sds) registry.register({ name: 'sds', snapshot: () => ({ ...sds.snapshot() }) });
  const dns = o.dns;
  if (dns) registry.register({ name: 'dns', snapshot: () => ({ ...dns.snapshot() }) });
  registry.register({ name: 'pod', snapshot: () => pod.snapshot() });
  registry.register({ name: 'metrics', snapshot: () => scrapes.snapshot() });
  return { registry, scrapes, pod };
}

/** The workload certificate's public facts (parsed once per serial); never the key or the PEM. */
function certificatesProvider(config: AgentConfig, manager: SecretManager | undefined): () => Record<string, unknown> {
  if (!manager) return () => ({ enabled: false, reason: 'standalone mode: no CA, no SDS' });
  const { graceRatio, graceJitter } = certOptionsFromConfig(config).rotation;
  let cached: { serial: string; facts: Record<string, unknown> } | undefined;
  const describe = (c: IssuedCertificate): Record<string, unknown> => {
    const leaf = firstPem(c.certChainPem);
    let issuer: string | null = null;
    let subject: string | null = null;
    try {
      const x = new X509Certificate(leaf);
      issuer = x.issuer ?? null;
      subject = x.subject ?? null; // undefined for an empty subject (Istio leaves it empty)
    } catch {
      // Unparseable here: the manager checked the chain; report what it recorded.
    }
    const lifetime = c.notAfter - c.createdAt;
    return {
      spiffeIds: [...c.identities],
      subject,
      issuer,
      serialNumber: c.serialNumber,
      notBefore: isoTime(c.notBefore),
      notAfter: isoTime(c.notAfter),
      receivedAt: isoTime(c.createdAt),
      nextRotation: { earliest: isoTime(c.notAfter - (graceRatio + graceJitter) * lifetime), latest: isoTime(c.notAfter - (graceRatio - graceJitter) * lifetime) },
      chainLength: c.certChainPem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0,
    };
  };
  return () => {
    const c = manager.latest;
    if (c && cached?.serial !== c.serialNumber) cached = { serial: c.serialNumber, facts: describe(c) };
    return {
      enabled: true,
      state: manager.currentState,
      workload: c && cached ? { ...cached.facts, expired: c.notAfter <= Date.now() } : null,
    };
  };
}

function firstPem(chain: string): string {
  const end = '-----END CERTIFICATE-----';
  const i = chain.indexOf(end);
  return i < 0 ? chain : chain.slice(0, i + end.length);
}
