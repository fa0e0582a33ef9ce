/**
 * Wires the components of `proxy` and owns the start-up and shut-down order:
 * identity → bootstrap → admin client → readiness → supervisor (Envoy). Shutdown is
 * the reverse, driven by the supervisor's termination sequence. Returns the exit status.
 */
import type { AgentConfig } from './config/load.js';
import type { Logger } from './log.js';
import { BootstrapWriter, readBootstrapOverride } from './bootstrap/bootstrap.js';
import { CONFIG_BEARING_ANNOTATIONS, computeIdentity, withPodInfo, type Interfaces } from './bootstrap/node.js';
import { envoyArgv } from './envoy/argv.js';
import { EnvoyProcess } from './envoy/process.js';
import { EnvoyAdminClient } from './envoy/admin.js';
import { EnvoySupervisor } from './supervisor/supervisor.js';
import { hotRestartBaseId } from './supervisor/hot-restart.js';
import { ReadinessTracker } from './status/ready.js';
import { formatGoDuration } from './go/duration.js';
import type { AgentXds } from './xds/agent-xds.js';
import { createAgentMetrics, type AgentMetrics } from './metrics/registry.js';
import { createAgentRuntimeMetrics } from './metrics/agent.js';
import { StatusServer } from './status/server.js';
import { AppProbers } from './status/app-probe.js';
import { metricsEndpointOptions } from './status/stats.js';
import { metricsLocalhostOnly } from './bootstrap/data.js';
import { PodInfoWatcher } from './podinfo/watcher.js';

export interface AgentOptions {
  config: AgentConfig;
  log: Logger;
  /** The environment Envoy inherits. */
  env: Readonly<Record<string, string | undefined>>;
  interfaces: Interfaces;
  /** Aborted on the first SIGTERM/SIGINT (its reason names the signal). */
  signal: AbortSignal;
  /** Registers what a second SIGTERM/SIGINT does. */
  onSecondSignal?: (fn: () => void) => void;
  /** Called once the supervisor exists: how the status server, a podinfo watcher or a test reach its verbs. */
  onSupervisor?: (supervisor: EnvoySupervisor) => void;
  /** The agent's metrics (default: a new registry with process metrics). */
  metrics?: AgentMetrics;
  /** When the agent process started (`performance.now()` scale), for startup_duration_seconds. */
  startedAt?: number;
}

export async function runAgent(options: AgentOptions): Promise<number> {
  const { config, log } = options;
  log.info({ config: effectiveConfigSummary(config) }, 'effective config');
  const metrics = options.metrics ?? createAgentMetrics();
  const runtimeMetrics = createAgentRuntimeMetrics(metrics.registry);
  const startedAt = options.startedAt ?? 0;

  // Identity as computed at start; a podinfo change replaces only LABELS/ANNOTATIONS (SPEC §8).
  const startIdentity = computeIdentity(config, { interfaces: options.interfaces });
  let identity = startIdentity;
  let annotations = config.pod.annotations;
  for (const w of identity.warnings) log.warn(w);
  log.info(`node ID ${identity.id}, cluster ${identity.cluster}, IPs ${identity.ips.join(',')}${identity.ipv6 ? ' (IPv6 mode)' : ''}`);

  const bootstrap = new BootstrapWriter(config);
  if (bootstrap.template) log.info(`bootstrap template ${bootstrap.template.path} (${bootstrap.template.source})`);
  else log.info(`using customConfigFile ${bootstrap.envoyPath} unchanged`);
  log.info(`SDS socket ${bootstrap.sds.path} (${bootstrap.sds.reason})`);
  if (config.standalone) log.info('standalone mode: no control plane, no xDS proxy');

  const override = readBootstrapOverride(config);
  if (override.error) log.error(`${override.error}; starting Envoy without --config-yaml`);

  const envoyLog = log.child({ scope: 'envoy' });
  const admin = new EnvoyAdminClient({ host: identity.localhost, port: config.proxy.proxyAdminPort });
  let supervisor: EnvoySupervisor | undefined;
  const readiness = new ReadinessTracker({
    admin,
    standalone: config.standalone,
    log: log.child({ scope: 'readiness' }),
    onReady: () => supervisor?.markReady(),
    onFirstReady: () => runtimeMetrics.startupDuration.set((performance.now() - startedAt) / 1000),
  });
  // ---- xDS proxy + health reporting (SPEC §7.1, §7.2; src/xds/) — started before Envoy ----
  let xds: AgentXds | undefined;
  if (!config.standalone) {
    try {
      // Loaded on demand: grpc-js and protobufjs cost start-up time that standalone mode should not pay.
      const { startAgentXds, nodeFromIdentity } = await import('./xds/agent-xds.js');
      xds = await startAgentXds({
        config,
        identity,
        node: () => nodeFromIdentity(identity),
        log,
        envoyReady: () => readiness.current(),
        registry: metrics.registry,
      });
    } catch (err) {
      await readiness[Symbol.asyncDispose]();
      await admin.close();
      throw err;
    }
  }
  // ---- end xDS block ----
  // ---- workload certificates: SDS server on the chosen socket, CA client (SPEC §7.3) — before Envoy ----
  let certs: { close(): Promise<void> } | undefined;
  if (!config.standalone) {
    try {
      // Loaded on demand: the X.509 stack costs start-up time that standalone mode should not pay.
      const { startWorkloadCertificates } = await import('./sds/workload.js');
      certs = await startWorkloadCertificates({ config, socketPath: bootstrap.sds.absolute, log, registry: metrics.registry });
    } catch (err) {
      await xds?.close();
      await readiness[Symbol.asyncDispose]();
      await admin.close();
      throw err;
    }
  }
  const env = config.env;
  // SPEC §5.3: with hot restart every epoch gets --restart-epoch and a stable --base-id.
  const hotRestart = env.ENVOY_HOT_RESTART === true;
  const baseId = hotRestartBaseId(config.proxy.proxyAdminPort);
  if (hotRestart) log.info(`hot restart enabled (base id ${baseId}, parentShutdownDuration ${formatGoDuration(config.proxy.parentShutdownDuration)})`);
  supervisor = new EnvoySupervisor({
    log: log.child({ scope: 'supervisor' }),
    admin,
    start: async ({ epoch }) => {
      const bootstrapPath = bootstrap.write(identity, annotations);
      const args = envoyArgv({
        config,
        bootstrapPath,
        ipv6: identity.ipv6,
        ...(override.json ? { configYaml: override.json } : {}),
        ...(hotRestart ? { hotRestart: { epoch, baseId } } : {}),
      });
      const proc = await EnvoyProcess.spawn({
        binaryPath: config.proxy.binaryPath,
        args,
        cwd: config.cwd,
        env: options.env,
        onDroppedLine: () => runtimeMetrics.stderrLinesDropped.inc(),
      }).catch((err: unknown) => {
        bootstrap.remove();
        throw err;
      });
      envoyLog.info(`Envoy started: pid ${proc.pid}: ${config.proxy.binaryPath} ${args.join(' ')}`);
      return proc;
    },
    cleanup: () => bootstrap.remove(),
    policy: {
      initialBackoffMs: env.ENVOY_RESTART_BACKOFF_INITIAL as number,
      maxBackoffMs: env.ENVOY_RESTART_BACKOFF_MAX as number,
      healthyResetMs: env.ENVOY_RESTART_BACKOFF_RESET as number,
      crashBudget: { maxExits: env.ENVOY_RESTART_BUDGET as number, windowMs: env.ENVOY_RESTART_BUDGET_WINDOW as number },
    },
    drain: {
      proxyType: config.proxyType,
      terminationDrainMs: config.proxy.terminationDrainDuration,
      exitOnZeroActiveConnections: env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS === true,
      minimumDrainMs: env.MINIMUM_DRAIN_DURATION as number,
      ...(typeof env.DRAIN_DEADLINE === 'number' ? { drainDeadlineMs: env.DRAIN_DEADLINE } : {}),
      excludedPorts: [env.ENVOY_STATUS_PORT as number, env.ENVOY_PROMETHEUS_PORT as number],
    },
    hooks: {
      envoyStarted: () => readiness.envoyStarted(),
      envoyExited: (exit, expected) => {
        if (!expected) readiness.envoyStopped(exit.description);
      },
      terminating: (cause) => readiness.terminate(cause),
    },
    metrics: runtimeMetrics.supervisor,
    ...(hotRestart ? { hotRestart: { parentShutdownMs: config.proxy.parentShutdownDuration } } : {}),
  });
  options.onSupervisor?.(supervisor);
  const sup = supervisor;

  // ---- status server (SPEC §6) — up before Envoy so :15021 reaches it at once ----
  let status: StatusServer | undefined;
  let podinfo: PodInfoWatcher | undefined;
  const closeEarly = async () => {
    await podinfo?.close();
    await status?.close();
    await certs?.close();
    await xds?.close();
    await readiness[Symbol.asyncDispose]();
    await admin.close();
  };
  try {
    if (config.statusPort !== 0) {
      const statusLog = log.child({ scope: 'status' });
      status = await StatusServer.start({
        port: config.statusPort,
        log: statusLog,
        routes: { ready: readiness.handler, quit: () => sup.quit(), drain: () => void sup.drain() },
        metrics: metricsEndpointOptions(config, { metrics, localhost: identity.localhost }),
        appProbers: AppProbers.fromConfig(config, { ipv6: identity.ipv6, log: statusLog }),
        metricsLocalhostOnly: metricsLocalhostOnly(config),
      });
      log.info(`status server on port ${status.port}`);
    } else {
      log.info('status server disabled (status.sidecar.istio.io/port: 0)');
    }

    // ---- podinfo (SPEC §8): labels/annotations changes reach the node metadata ----
    podinfo = await PodInfoWatcher.start({
      dir: config.paths.podInfoDir,
      log: log.child({ scope: 'podinfo' }),
      initial: { labels: config.pod.labels, annotations: config.pod.annotations },
      metrics: { reload: () => runtimeMetrics.podinfoReloads.inc(), error: () => runtimeMetrics.podinfoErrors.inc() },
      onChange: (info) => {
        for (const a of CONFIG_BEARING_ANNOTATIONS) {
          if (info.annotations[a] !== annotations[a]) log.warn(`annotation ${a} changed: takes effect on the next container start`);
        }
        identity = withPodInfo(startIdentity, config, options.interfaces, info.labels, info.annotations);
        annotations = info.annotations;
        // Keep the bootstrap on disk current for the running Envoy (it is rewritten before every start anyway).
        if (sup.envoy && !sup.envoy.hasExited) {
          try {
            bootstrap.write(identity, annotations);
          } catch (err) {
            log.warn(`podinfo change: could not rewrite the bootstrap: ${(err as Error).message}`);
          }
        }
        xds?.proxy.resetEnvoyStream('podinfo changed');
        sup.restartForNewBootstrap('podinfo changed');
      },
    });
  } catch (err) {
    await closeEarly();
    throw err;
  }

  const onStop = () => sup.terminate(`received ${String(options.signal.reason ?? 'stop signal')}`);
  if (options.signal.aborted) onStop();
  else options.signal.addEventListener('abort', onStop, { once: true });
  options.onSecondSignal?.(() => sup.terminate('received a second stop signal'));

  try {
    return await sup.run();
  } finally {
    options.signal.removeEventListener('abort', onStop);
    // Reverse start order; the status server keeps answering (503) until Envoy is gone.
    await closeEarly();
  }
}

function effectiveConfigSummary(config: AgentConfig): Record<string, unknown> {
  const pc = config.proxy;
  return {
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
}
