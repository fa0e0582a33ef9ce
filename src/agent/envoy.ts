/**
 * Envoy under supervision, from the config (SPEC §5): how one Envoy is started (bootstrap
 * rewritten from the node's current identity, argv, spawn), the restart policy, drain and hot
 * restart settings, and the hooks that keep readiness in step. The supervisor owns every Envoy
 * it spawns: `run()` resolves only once none is left.
 */
import type { AgentConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import type { BootstrapWriter } from '../bootstrap/bootstrap.js';
import { formatGoDuration } from '../go/duration.js';
import { envoyArgv } from '../envoy/argv.js';
import { EnvoyProcess } from '../envoy/process.js';
import type { EnvoyAdminClient } from '../envoy/admin.js';
import type { AgentRuntimeMetrics } from '../metrics/agent.js';
import type { ReadinessTracker } from '../status/ready.js';
import { hotRestartBaseId } from '../supervisor/hot-restart.js';
import { EnvoySupervisor } from '../supervisor/supervisor.js';
import type { AgentNode } from './node.js';

export interface AgentSupervisorOptions {
  config: AgentConfig;
  log: Logger;
  /** The environment Envoy inherits. */
  env: Readonly<Record<string, string | undefined>>;
  node: AgentNode;
  bootstrap: BootstrapWriter;
  /** `--config-yaml` (ISTIO_BOOTSTRAP_OVERRIDE), already read. */
  configYaml?: string;
  admin: EnvoyAdminClient;
  readiness: ReadinessTracker;
  metrics: AgentRuntimeMetrics;
}

export function createSupervisor(o: AgentSupervisorOptions): EnvoySupervisor {
  const { config, bootstrap, node, readiness } = o;
  const env = config.env;
  const envoyLog = o.log.child({ scope: 'envoy' });
  // SPEC §5.3: with hot restart every epoch gets --restart-epoch and a stable --base-id.
  const hotRestart = env.ENVOY_HOT_RESTART;
  const baseId = hotRestartBaseId(config.proxy.proxyAdminPort);
  if (hotRestart) o.log.info(`hot restart enabled (base id ${baseId}, parentShutdownDuration ${formatGoDuration(config.proxy.parentShutdownDuration)})`);
  return new EnvoySupervisor({
    log: o.log.child({ scope: 'supervisor' }),
    admin: o.admin,
    start: async ({ epoch }) => {
      const bootstrapPath = bootstrap.write(node.identity, node.annotations);
      const args = envoyArgv({
        config,
        bootstrapPath,
        ipv6: node.identity.ipv6,
        ...(o.configYaml !== undefined ? { configYaml: o.configYaml } : {}),
        ...(hotRestart ? { hotRestart: { epoch, baseId } } : {}),
      });
      const proc = await EnvoyProcess.spawn({
        binaryPath: config.proxy.binaryPath,
        args,
        cwd: config.cwd,
        env: o.env,
        onDroppedLine: () => o.metrics.stderrLinesDropped.inc(),
      }).catch((err: unknown) => {
        bootstrap.remove();
        throw err;
      });
      envoyLog.info(`Envoy started: pid ${proc.pid}: ${config.proxy.binaryPath} ${args.join(' ')}`);
      return proc;
    },
    cleanup: () => bootstrap.remove(),
    policy: {
      initialBackoffMs: env.ENVOY_RESTART_BACKOFF_INITIAL,
      maxBackoffMs: env.ENVOY_RESTART_BACKOFF_MAX,
      healthyResetMs: env.ENVOY_RESTART_BACKOFF_RESET,
      crashBudget: { maxExits: env.ENVOY_RESTART_BUDGET, windowMs: env.ENVOY_RESTART_BUDGET_WINDOW },
    },
    drain: {
      proxyType: config.proxyType,
      terminationDrainMs: config.proxy.terminationDrainDuration,
      exitOnZeroActiveConnections: env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS,
      minimumDrainMs: env.MINIMUM_DRAIN_DURATION,
      ...(env.DRAIN_DEADLINE !== undefined ? { drainDeadlineMs: env.DRAIN_DEADLINE } : {}),
      excludedPorts: [env.ENVOY_STATUS_PORT, env.ENVOY_PROMETHEUS_PORT],
    },
    hooks: {
      envoyStarted: () => readiness.envoyStarted(),
      envoyExited: (exit, expected) => {
        if (!expected) readiness.envoyStopped(exit.description);
      },
      terminating: (cause) => readiness.terminate(cause),
    },
    metrics: o.metrics.supervisor,
    ...(hotRestart ? { hotRestart: { parentShutdownMs: config.proxy.parentShutdownDuration } } : {}),
  });
}

export interface StopSignals {
  /** Aborted on the first stop request (SIGTERM/SIGINT); its reason names the signal. */
  stop: AbortSignal;
  /** Aborted on a second stop request: skip what is left of the drain. */
  force?: AbortSignal;
}

/** Runs the supervisor until Envoy is gone for good; stop requests become its termination. Returns the exit status. */
export async function superviseUntilStopped(supervisor: EnvoySupervisor, signals: StopSignals): Promise<number> {
  const onStop = () => supervisor.terminate(`received ${String(signals.stop.reason ?? 'stop signal')}`);
  const onForce = () => supervisor.terminate('received a second stop signal');
  if (signals.stop.aborted) onStop();
  else signals.stop.addEventListener('abort', onStop, { once: true });
  if (signals.force?.aborted) onForce();
  else signals.force?.addEventListener('abort', onForce, { once: true });
  try {
    return await supervisor.run();
  } finally {
    signals.stop.removeEventListener('abort', onStop);
    signals.force?.removeEventListener('abort', onForce);
  }
}
