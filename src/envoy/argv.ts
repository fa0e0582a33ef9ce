/**
 * PURE: Envoy's command line (SPEC §5), in Istio's order.
 */
import type { AgentConfig } from '../config/load.js';

export interface ArgvInputs {
  config: AgentConfig;
  /** Path of the bootstrap Envoy loads (`-c`), as it will be passed (relative to cwd is fine). */
  bootstrapPath: string;
  ipv6: boolean;
  /** JSON text for `--config-yaml` (from ISTIO_BOOTSTRAP_OVERRIDE), if any. */
  configYaml?: string;
  /** Hot restart (SPEC §5.3): epoch instead of --disable-hot-restart. */
  hotRestart?: { epoch: number; baseId: number };
}

export function envoyArgv(inputs: ArgvInputs): string[] {
  const { config } = inputs;
  const pc = config.proxy;
  const args = [
    '-c',
    inputs.bootstrapPath,
    '--drain-time-s',
    String(Math.floor(pc.drainDuration / 1000)),
    '--drain-strategy',
    'immediate',
    '--local-address-ip-version',
    inputs.ipv6 ? 'v6' : 'v4',
    '--file-flush-interval-msec',
    String(pc.fileFlushInterval > 0 ? Math.round(pc.fileFlushInterval) : 1000),
  ];
  if (inputs.hotRestart) {
    args.push(
      '--restart-epoch',
      String(inputs.hotRestart.epoch),
      '--parent-shutdown-time-s',
      String(Math.floor(pc.parentShutdownDuration / 1000)),
      '--base-id',
      String(inputs.hotRestart.baseId),
    );
  } else {
    args.push('--disable-hot-restart');
  }
  args.push('--allow-unknown-static-fields');
  if (pc.fileFlushMinSizeKb > 0) args.push('--file-flush-min-size-kb', String(pc.fileFlushMinSizeKb));
  if (config.envoyLog.level !== '') args.push('-l', config.envoyLog.level);
  if (config.envoyLog.components.length > 0) args.push('--component-log-level', config.envoyLog.components.join(','));
  if (config.env.ENVOY_SKIP_DEPRECATED_LOGS !== false) args.push('--skip-deprecated-logs');
  if (config.env.ISTIO_ENVOY_ENABLE_CORE_DUMP === true) args.push('--enable-core-dump');
  if (inputs.configYaml !== undefined) args.push('--config-yaml', inputs.configYaml);
  if (pc.concurrency > 0) args.push('--concurrency', String(pc.concurrency));
  return args;
}
