/**
 * The composition root of `proxy`: starts the components in order onto one async disposable
 * stack and runs Envoy under supervision until told to stop. Whatever ends the run — a stop
 * request, a start-up step failing half-way, a fatal error — the stack disposes what was
 * started, in reverse order (the status server keeps answering 503 until Envoy is gone).
 * Returns the exit status; a failed step rejects with its own error.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type { AgentConfig } from './config/load.js';
import type { Logger } from './log.js';
import type { Interfaces } from './bootstrap/node.js';
import { EnvoyAdminClient } from './envoy/admin.js';
import { withStack } from './lifecycle/stack.js';
import { createAgentRuntimeMetrics } from './metrics/agent.js';
import { createAgentMetrics, type AgentMetrics } from './metrics/registry.js';
import { ReadinessTracker } from './status/ready.js';
import type { EnvoySupervisor } from './supervisor/supervisor.js';
import { logEffectiveConfig, logIdentity, planCertificates, prepareBootstrap, startDnsProxy, startStatusServer, startWorkloadCerts, startXdsProxy } from './agent/components.js';
import { createSupervisor, superviseUntilStopped } from './agent/envoy.js';
import { AgentNode } from './agent/node.js';
import { startPodInfoReconfigure } from './agent/podinfo-reconfigure.js';
import { createAgentStatus } from './agent/status.js';

export interface AgentOptions {
  config: AgentConfig;
  log: Logger;
  /** The environment Envoy inherits. */
  env: Readonly<Record<string, string | undefined>>;
  interfaces: Interfaces;
  /** Aborted on the first SIGTERM/SIGINT (its reason names the signal): the graceful stop. */
  signal: AbortSignal;
  /** Aborted on a second SIGTERM/SIGINT: cut the drain short. */
  forceSignal?: AbortSignal;
  /** The agent's metrics (default: a new registry with process metrics). */
  metrics?: AgentMetrics;
  /** When the agent process started (`performance.now()` scale), for startup_duration_seconds. */
  startedAt?: number;
}

/**
 * Diagnostics seam (not an option): once the supervisor exists, `{ supervisor, config }` is
 * published on this `node:diagnostics_channel` channel. In-process tests subscribe to drive its
 * verbs; nothing in the agent listens.
 */
export const SUPERVISOR_CHANNEL = 'pilot-agent:supervisor';
const supervisorChannel = diagnostics_channel.channel(SUPERVISOR_CHANNEL);

export async function runAgent(options: AgentOptions): Promise<number> {
  const { config, log } = options;
  return withStack(log, async (stack) => {
    logEffectiveConfig(config, log);
    const metrics = options.metrics ?? createAgentMetrics();
    const runtime = createAgentRuntimeMetrics(metrics.registry);

    const certPlan = await planCertificates(config, log);
    const node = new AgentNode(config, options.interfaces, { fileCredential: certPlan.external !== undefined });
    logIdentity(node, log);
    const bootstrap = prepareBootstrap(config, log, certPlan);

    const admin = stack.adopt(new EnvoyAdminClient({ host: node.identity.localhost, port: config.proxy.proxyAdminPort }), (a) => a.close(), 'admin client');
    const readiness = stack.use(
      new ReadinessTracker({
        admin,
        standalone: config.standalone,
        log: log.child({ scope: 'readiness' }),
        onFirstReady: () => runtime.startupDuration.set((performance.now() - (options.startedAt ?? 0)) / 1000),
      }),
      'readiness',
    );
    const dns = await startDnsProxy(config, log, readiness, metrics);
    if (dns) {
      stack.use(dns, 'DNS proxy');
      stack.use(dns.readinessCheck);
    }
    const xds = stack.use(await startXdsProxy({ config, node, log, readiness, metrics, ...(dns ? { dns } : {}) }), 'xDS proxy');
    const certs = stack.use(
      await startWorkloadCerts(config, bootstrap.writer.sds.absolute, log, metrics, {
        ...certPlan,
        ...(bootstrap.writer.filesSds ? { filesSocketPath: bootstrap.writer.filesSds.absolute } : {}),
      }),
      'SDS server',
    );
    if (certs) stack.use(readiness.addCheck(() => certs.unservable(), 'detail'));

    const supervisor = createSupervisor({ config, log, env: options.env, node, bootstrap: bootstrap.writer, configYaml: bootstrap.configYaml, admin, readiness, metrics: runtime });
    stack.use(readiness.whenReady(() => supervisor.markReady()));
    if (supervisorChannel.hasSubscribers) supervisorChannel.publish({ supervisor, config } satisfies SupervisorMessage);

    const status = createAgentStatus({
      config,
      node,
      supervisor,
      readiness,
      ...(xds ? { xds: xds.proxy } : {}),
      ...(certs?.manager ? { certificates: certs.manager } : {}),
      ...(certs ? { sds: certs } : {}),
      ...(dns ? { dns } : {}),
    });
    stack.use(await startStatusServer({ config, log, node, readiness, supervisor, metrics, status, ...(dns ? { dns } : {}) }), 'status server');
    stack.use(
      await startPodInfoReconfigure({
        dir: config.paths.podInfoDir,
        initial: { labels: config.pod.labels, annotations: config.pod.annotations },
        log: log.child({ scope: 'podinfo' }),
        metrics: { reload: () => runtime.podinfoReloads.inc(), error: () => runtime.podinfoErrors.inc() },
        node,
        writeBootstrap: () => void bootstrap.writer.write(node.identity, node.annotations),
        envoyRunning: () => supervisor.envoy !== undefined && !supervisor.envoy.hasExited,
        ...(xds ? { resetEnvoyStream: (reason: string) => xds.proxy.resetEnvoyStream(reason) } : {}),
        restartForNewBootstrap: (reason) => void supervisor.restartForNewBootstrap(reason),
        onReload: (info) => status.pod.reloaded(info),
      }),
      'podinfo watcher',
    );

    return superviseUntilStopped(supervisor, { stop: options.signal, ...(options.forceSignal ? { force: options.forceSignal } : {}) });
  });
}

/** What SUPERVISOR_CHANNEL carries. */
export interface SupervisorMessage {
  supervisor: EnvoySupervisor;
  config: AgentConfig;
}
