/**
 * PURE: Envoy's command line, parsed the way Envoy's TCLAP-based `OptionsImpl` does.
 *
 * Contract: `parseEnvoyArgs` never throws and never exits. It returns either the options to
 * run with, or what Envoy would print (stdout/stderr) and the status it would exit with:
 * - an unknown argument, a missing value, an unreadable number or a repeated value flag →
 *   TCLAP's `PARSE ERROR: Argument: …` block (with "Brief USAGE"), then the exception text,
 *   exit 1;
 * - a value Envoy rejects after parsing (`--mode`, `--local-address-ip-version`,
 *   `--drain-strategy`, log levels) → `error: …`, exit 1;
 * - `--version` / `--help` → stdout, exit 0.
 * Unknown flags are never ignored (Envoy has no such mode).
 */

export const ENVOY_VERSION = '1.36.2';
export const ENVOY_REVISION = 'c0ffee5eed0ddba11fee1dc0de5eedfacade0001';
/** `/server_info` `version` and `--version` text: `<sha>/<version>/<status>/<build>/<ssl>`. */
export const ENVOY_BUILD_VERSION = `${ENVOY_REVISION}/${ENVOY_VERSION}/Clean/RELEASE/BoringSSL`;

export type LogLevelName = 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical' | 'off';
export const LOG_LEVELS: readonly LogLevelName[] = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'];

/** Envoy's logger ids accepted by `--component-log-level` (a subset of the real list). */
export const COMPONENTS: readonly string[] = [
  'admin', 'alternate_protocols_cache', 'aws', 'assert', 'backtrace', 'basic_auth', 'cache_filter', 'client',
  'config', 'connection', 'conn_handler', 'compression', 'credential_injector', 'decompression', 'dns',
  'dubbo', 'envoy_bug', 'ext_authz', 'ext_proc', 'rocketmq', 'file', 'filter', 'forward_proxy', 'geolocation',
  'grpc', 'happy_eyeballs', 'hc', 'health_checker', 'http', 'http2', 'http3', 'hystrix', 'init', 'io', 'jwt',
  'kafka', 'key_value_store', 'lua', 'main', 'matcher', 'misc', 'mongo', 'multi_connection', 'oauth2', 'quic',
  'quic_stream', 'pool', 'rate_limit_quota', 'rbac', 'rds', 'redis', 'router', 'runtime', 'stats', 'secret',
  'tap', 'testing', 'thrift', 'tracing', 'upstream', 'udp', 'wasm', 'websocket', 'golang', 'stats_sinks',
];

export interface EnvoyOptions {
  /** argv[0] as Envoy sees it (TCLAP's program name). */
  program: string;
  configPath: string;
  configYaml: string;
  drainTimeS: number;
  drainStrategy: 'gradual' | 'immediate';
  parentShutdownTimeS: number;
  localAddressIpVersion: 'v4' | 'v6';
  fileFlushIntervalMsec: number;
  fileFlushMinSizeKb: number;
  disableHotRestart: boolean;
  allowUnknownStaticFields: boolean;
  rejectUnknownDynamicFields: boolean;
  ignoreUnknownDynamicFields: boolean;
  logLevel: LogLevelName;
  componentLogLevel: string;
  componentLogLevels: Map<string, LogLevelName>;
  skipDeprecatedLogs: boolean;
  enableCoreDump: boolean;
  concurrency: number;
  restartEpoch: number;
  baseId: number;
  useDynamicBaseId: boolean;
  serviceCluster: string;
  serviceNode: string;
  serviceZone: string;
  logFormat: string;
  /** True when `--log-format` was given (Envoy then rejects a bootstrap `application_log_config`). */
  logFormatSet: boolean;
  logPath: string;
  adminAddressPath: string;
  mode: 'serve' | 'validate' | 'init_only';
  enableMutexTracing: boolean;
  cpusetThreads: boolean;
  statsTags: string[];
}

export type CliResult =
  | { kind: 'run'; options: EnvoyOptions }
  | { kind: 'exit'; code: number; stdout: string; stderr: string };

/** Envoy's default `--log-format`. */
export const DEFAULT_LOG_FORMAT = '[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v';

type ArgType = 'string' | 'uint32' | 'uint64';
interface ArgSpec {
  long: string;
  short?: string;
  /** Absent: a switch. */
  type?: ArgType;
}

// The flags of a current Envoy (source/server/options_impl.cc), in its declaration order.
const SPECS: readonly ArgSpec[] = [
  { long: 'base-id', type: 'uint64' },
  { long: 'use-dynamic-base-id' },
  { long: 'skip-hot-restart-on-no-parent' },
  { long: 'skip-hot-restart-parent-stats' },
  { long: 'base-id-path', type: 'string' },
  { long: 'concurrency', type: 'uint32' },
  { long: 'config-path', short: 'c', type: 'string' },
  { long: 'config-yaml', type: 'string' },
  { long: 'allow-unknown-static-fields' },
  { long: 'reject-unknown-dynamic-fields' },
  { long: 'ignore-unknown-dynamic-fields' },
  { long: 'skip-deprecated-logs' },
  { long: 'admin-address-path', type: 'string' },
  { long: 'local-address-ip-version', type: 'string' },
  { long: 'log-level', short: 'l', type: 'string' },
  { long: 'component-log-level', type: 'string' },
  { long: 'log-format', type: 'string' },
  { long: 'log-format-escaped' },
  { long: 'enable-fine-grain-logging' },
  { long: 'log-path', type: 'string' },
  { long: 'restart-epoch', type: 'uint32' },
  { long: 'hot-restart-version' },
  { long: 'service-cluster', type: 'string' },
  { long: 'service-node', type: 'string' },
  { long: 'service-zone', type: 'string' },
  { long: 'file-flush-interval-msec', type: 'uint32' },
  { long: 'file-flush-min-size-kb', type: 'uint32' },
  { long: 'drain-time-s', type: 'uint32' },
  { long: 'drain-strategy', type: 'string' },
  { long: 'parent-shutdown-time-s', type: 'uint32' },
  { long: 'mode', type: 'string' },
  { long: 'disable-hot-restart' },
  { long: 'enable-mutex-tracing' },
  { long: 'cpuset-threads' },
  { long: 'disable-extensions', type: 'string' },
  { long: 'socket-path', type: 'string' },
  { long: 'socket-mode', type: 'string' },
  { long: 'stats-tag', type: 'string' },
  { long: 'enable-core-dump' },
];

function argId(spec: ArgSpec): string {
  return spec.short ? `(-${spec.short}, --${spec.long})` : `--${spec.long}`;
}

function briefUsage(program: string): string {
  const parts = SPECS.map((s) => {
    const name = s.short ? `-${s.short}` : `--${s.long}`;
    return s.type ? `[${name} <${s.type === 'string' ? 'string' : s.type === 'uint32' ? 'uint32_t' : 'uint64_t'}>]` : `[${name}]`;
  });
  parts.push('[--]', '[--version]', '[-h]');
  // TCLAP wraps the brief usage at 75 columns, indenting continuation lines.
  const lead = `   ${program}  `;
  const indent = ' '.repeat(lead.length);
  const lines: string[] = [];
  let line = lead;
  for (const p of parts) {
    if (line.length + p.length + 1 > 75 && line.trim() !== '') {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${p} `;
  }
  lines.push(line.trimEnd());
  return lines.join('\n');
}

/** TCLAP's StdOutput::failure block, followed by the line Envoy's main prints for the exception. */
function parseError(program: string, rawId: string, message: string): CliResult {
  const id = rawId === '' ? ' ' : `Argument: ${rawId}`;
  const stderr =
    `PARSE ERROR: ${id}\n             ${message}\n\n` +
    `Brief USAGE: \n${briefUsage(program)}\n\n` +
    `For complete USAGE and HELP type: \n   ${program} --help\n\n` +
    `${rawId === '' ? 'undefined' : rawId} -- ${message}\n`;
  return { kind: 'exit', code: 1, stdout: '', stderr };
}

function malformed(message: string): CliResult {
  return { kind: 'exit', code: 1, stdout: '', stderr: `${message}\n` };
}

function fullUsage(program: string): string {
  const rows = SPECS.map((s) => {
    const name = s.short ? `-${s.short} <${s.type}>,  --${s.long} <${s.type}>` : s.type ? `--${s.long} <${s.type}>` : `--${s.long}`;
    return `   ${name}\n`;
  });
  return `\nUSAGE: \n\n${briefUsage(program)}\n\n\nWhere: \n\n${rows.join('\n')}\n   --,  --ignore_rest\n\n   --version\n\n   -h,  --help\n\n\n   envoy\n\n`;
}

/** TCLAP reads numbers with an istringstream: leading digits only, nothing else allowed. */
function readUnsigned(value: string, max: number): number | undefined {
  if (!/^\s*\+?\d+\s*$/.test(value)) return undefined;
  const n = Number(value.trim());
  return Number.isSafeInteger(n) && n <= max ? n : undefined;
}

export function parseEnvoyArgs(argv: readonly string[], program: string, defaults: { concurrency: number }): CliResult {
  const values = new Map<string, string | true>();
  const statsTags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--' || arg === '--ignore_rest') break;
    if (arg === '--version') {
      return { kind: 'exit', code: 0, stdout: `\n${program}  version: ${ENVOY_BUILD_VERSION}\n\n`, stderr: '' };
    }
    if (arg === '-h' || arg === '--help') return { kind: 'exit', code: 0, stdout: fullUsage(program), stderr: '' };
    let spec: ArgSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = SPECS.find((s) => s.long === name);
    } else if (arg.startsWith('-') && arg.length >= 2) {
      const flag = arg.slice(1, 2);
      spec = SPECS.find((s) => s.short === flag);
      if (spec && arg.length > 2) inline = arg.slice(2).replace(/^=/, '');
    }
    if (!spec) return parseError(program, arg, "Couldn't find match for argument");
    if (!spec.type) {
      if (inline !== undefined) return parseError(program, arg, "Couldn't find match for argument");
      values.set(spec.long, true);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) return parseError(program, argId(spec), 'Missing a value for this argument!');
      value = argv[++i] as string;
    }
    if (spec.long === 'stats-tag') {
      statsTags.push(value);
      continue;
    }
    if (values.has(spec.long)) return parseError(program, argId(spec), 'Argument already set!');
    if (spec.type !== 'string' && readUnsigned(value, spec.type === 'uint32' ? 0xffffffff : Number.MAX_SAFE_INTEGER) === undefined) {
      return parseError(program, argId(spec), `Couldn't read argument value from string '${value}'`);
    }
    values.set(spec.long, value);
  }

  const str = (name: string, dflt: string): string => {
    const v = values.get(name);
    return typeof v === 'string' ? v : dflt;
  };
  const num = (name: string, dflt: number): number => {
    const v = values.get(name);
    return typeof v === 'string' ? Number(v.trim()) : dflt;
  };
  const on = (name: string): boolean => values.get(name) === true;

  const mode = str('mode', 'serve');
  if (mode !== 'serve' && mode !== 'validate' && mode !== 'init_only') return malformed(`error: unknown mode '${mode}'`);
  const ipVersion = str('local-address-ip-version', 'v4');
  if (ipVersion !== 'v4' && ipVersion !== 'v6') return malformed(`error: unknown IP address version '${ipVersion}'`);
  const drainStrategy = str('drain-strategy', 'gradual');
  if (drainStrategy !== 'gradual' && drainStrategy !== 'immediate') return malformed(`error: unknown drain-strategy '${drainStrategy}'`);
  const levelText = str('log-level', 'info');
  const logLevel = normaliseLevel(levelText);
  if (!logLevel) return malformed(`error: invalid log level specified '${levelText}'`);

  const componentLogLevel = str('component-log-level', '');
  const componentLogLevels = new Map<string, LogLevelName>();
  if (componentLogLevel !== '') {
    for (const item of componentLogLevel.split(',')) {
      const parts = item.split(':');
      if (parts.length !== 2) return malformed(`error: component log level not correctly specified '${item}'`);
      const [component, level] = parts as [string, string];
      const parsed = normaliseLevel(level);
      if (!parsed) return malformed(`error: invalid log level specified '${level}'`);
      if (!COMPONENTS.includes(component)) return malformed(`error: invalid component specified '${component}'`);
      componentLogLevels.set(component, parsed);
    }
  }

  return {
    kind: 'run',
    options: {
      program,
      configPath: str('config-path', ''),
      configYaml: str('config-yaml', ''),
      drainTimeS: num('drain-time-s', 600),
      drainStrategy,
      parentShutdownTimeS: num('parent-shutdown-time-s', 900),
      localAddressIpVersion: ipVersion,
      fileFlushIntervalMsec: num('file-flush-interval-msec', 10000),
      fileFlushMinSizeKb: num('file-flush-min-size-kb', 64),
      disableHotRestart: on('disable-hot-restart'),
      allowUnknownStaticFields: on('allow-unknown-static-fields'),
      rejectUnknownDynamicFields: on('reject-unknown-dynamic-fields'),
      ignoreUnknownDynamicFields: on('ignore-unknown-dynamic-fields'),
      logLevel,
      componentLogLevel,
      componentLogLevels,
      skipDeprecatedLogs: on('skip-deprecated-logs'),
      enableCoreDump: on('enable-core-dump'),
      concurrency: Math.max(1, num('concurrency', defaults.concurrency)),
      restartEpoch: num('restart-epoch', 0),
      baseId: num('base-id', 0),
      useDynamicBaseId: on('use-dynamic-base-id'),
      serviceCluster: str('service-cluster', ''),
      serviceNode: str('service-node', ''),
      serviceZone: str('service-zone', ''),
      logFormat: str('log-format', DEFAULT_LOG_FORMAT),
      logFormatSet: values.has('log-format'),
      logPath: str('log-path', ''),
      adminAddressPath: str('admin-address-path', ''),
      mode,
      enableMutexTracing: on('enable-mutex-tracing'),
      cpusetThreads: on('cpuset-threads'),
      statsTags,
    },
  };
}

function normaliseLevel(text: string): LogLevelName | undefined {
  if (text === 'warn') return 'warning';
  if (text === 'err') return 'error';
  return LOG_LEVELS.includes(text as LogLevelName) ? (text as LogLevelName) : undefined;
}

/** `/server_info` `command_line_options`, shaped like Envoy's admin.v3.CommandLineOptions JSON. */
export function commandLineOptionsJson(o: EnvoyOptions): Record<string, unknown> {
  return {
    base_id: String(o.baseId),
    use_dynamic_base_id: o.useDynamicBaseId,
    concurrency: o.concurrency,
    config_path: o.configPath,
    config_yaml: o.configYaml,
    allow_unknown_static_fields: o.allowUnknownStaticFields,
    reject_unknown_dynamic_fields: o.rejectUnknownDynamicFields,
    ignore_unknown_dynamic_fields: o.ignoreUnknownDynamicFields,
    skip_deprecated_logs: o.skipDeprecatedLogs,
    admin_address_path: o.adminAddressPath,
    local_address_ip_version: o.localAddressIpVersion,
    log_level: o.logLevel,
    component_log_level: o.componentLogLevel,
    log_format: o.logFormat,
    log_format_escaped: false,
    log_path: o.logPath,
    hot_restart_version: false,
    service_cluster: o.serviceCluster,
    service_node: o.serviceNode,
    service_zone: o.serviceZone,
    drain_strategy: o.drainStrategy === 'immediate' ? 'Immediate' : 'Gradual',
    mode: o.mode === 'serve' ? 'Serve' : o.mode === 'validate' ? 'Validate' : 'InitOnly',
    disable_hot_restart: o.disableHotRestart,
    enable_mutex_tracing: o.enableMutexTracing,
    restart_epoch: o.restartEpoch,
    cpuset_threads: o.cpusetThreads,
    file_flush_interval: `${o.fileFlushIntervalMsec / 1000}s`,
    file_flush_min_size_kb: o.fileFlushMinSizeKb,
    drain_time: `${o.drainTimeS}s`,
    parent_shutdown_time: `${o.parentShutdownTimeS}s`,
    enable_core_dump: o.enableCoreDump,
    stats_tag: o.statsTags,
  };
}
