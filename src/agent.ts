/**
 * Wires the components of `proxy` and owns the start-up and shut-down order:
 * identity → bootstrap → admin client → readiness → supervisor (Envoy). Shutdown is
 * the reverse, driven by the supervisor's termination sequence. Returns the exit status.
 */
import type { AgentConfig } from './config/load.js';
import type { Logger } from './log.js';
import { BootstrapWriter, readBootstrapOverride } from './bootstrap/bootstrap.js';
import { computeIdentity, type Interfaces } from './bootstrap/node.js';
import { envoyArgv } from './envoy/argv.js';
import { EnvoyProcess } from './envoy/process.js';
import { EnvoyAdminClient } from './envoy/admin.js';
import { EnvoySupervisor, type SupervisorMetrics } from './supervisor/supervisor.js';
import { ReadinessTracker } from './status/ready.js';
import { formatGoDuration } from './config/duration.js';

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
  metrics?: SupervisorMetrics;
}

export async function runAgent(options: AgentOptions): Promise<number> {
  const { config, log } = options;
  log.info({ config: effectiveConfigSummary(config) }, 'effective config');

  const identity = computeIdentity(config, { interfaces: options.interfaces });
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
  });
  const env = config.env;
  supervisor = new EnvoySupervisor({
    log: log.child({ scope: 'supervisor' }),
    admin,
    start: async () => {
      const bootstrapPath = bootstrap.write(identity, config.pod.annotations);
      const args = envoyArgv({ config, bootstrapPath, ipv6: identity.ipv6, ...(override.json ? { configYaml: override.json } : {}) });
      const proc = await EnvoyProcess.spawn({ binaryPath: config.proxy.binaryPath, args, cwd: config.cwd, env: options.env }).catch((err: unknown) => {
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
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });

  const sup = supervisor;
  const onStop = () => sup.terminate(`received ${String(options.signal.reason ?? 'stop signal')}`);
  if (options.signal.aborted) onStop();
  else options.signal.addEventListener('abort', onStop, { once: true });
  options.onSecondSignal?.(() => sup.terminate('received a second stop signal'));

  try {
    return await sup.run();
  } finally {
    options.signal.removeEventListener('abort', onStop);
    await readiness[Symbol.asyncDispose]();
    await admin.close();
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
