/**
 * Entry point of the Envoy double (launched by `test/support/bin/envoy`).
 *
 * Order: record the start (`ENVOY_DOUBLE_RECORD`), parse Envoy's CLI, load and check the
 * bootstrap, then serve (or, with `--mode validate`, print Envoy's verdict and exit).
 * Exit statuses: 0 after `--version`/`--help`/validation OK/SIGTERM/SIGINT/`/quitquitquit`/parent
 * death; 1 for a CLI or bootstrap error (Envoy's); the fault's code or signal for an injected crash.
 * Every exit appends `{pid, event: "exit", code | signal}` to the record file first.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parseEnvoyArgs } from './cli.js';
import { BootstrapError, loadBootstrap } from './bootstrap.js';
import { knobsFromEnv } from './faults.js';
import { EnvoyLog } from './log.js';
import { EnvoyDouble, type ProcessHost } from './server.js';
import { attachSds } from './sds.js';

const env = process.env;
const startedAt = Date.now();
const recordFile = env.ENVOY_DOUBLE_RECORD ?? '';

function record(entry: Record<string, unknown>): void {
  if (recordFile === '') return;
  try {
    fs.appendFileSync(recordFile, `${JSON.stringify(entry)}\n`);
  } catch {
    // a record file we cannot write must not change how "Envoy" behaves
  }
}

function exit(code: number): never {
  record({ pid: process.pid, event: 'exit', code, at: new Date().toISOString() });
  process.exit(code);
}

function crash(signal: string, code: number): void {
  if (signal === '') exit(code);
  record({ pid: process.pid, event: 'exit', signal, at: new Date().toISOString() });
  // Our own handlers (SIGTERM, SIGINT, …) must not intercept the fault's signal.
  process.removeAllListeners(signal);
  try {
    process.kill(process.pid, signal);
  } catch {
    exit(code);
  }
  // A signal Node handles or ignores (e.g. SIGPIPE) must still end the process.
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200);
}

async function main(): Promise<void> {
  record({ pid: process.pid, ppid: process.ppid, argv: process.argv.slice(1), env: { ...env }, cwd: process.cwd(), startedAt: new Date(startedAt).toISOString() });
  const program = process.argv[1] ?? 'envoy';
  const cli = parseEnvoyArgs(process.argv.slice(2), program, { concurrency: os.availableParallelism() });
  if (cli.kind === 'exit') {
    if (cli.stdout) process.stdout.write(cli.stdout);
    if (cli.stderr) process.stderr.write(cli.stderr);
    exit(cli.code);
  }
  const options = cli.options;
  const log = new EnvoyLog(options.logLevel, options.componentLogLevels, options.logPath);
  const knobs = knobsFromEnv(env);
  const initialPpid = process.ppid;
  let server: EnvoyDouble | undefined;

  // Signals as Envoy handles them; before the server exists they still end the process cleanly.
  const onStop = (name: string): void => {
    log.warn('main', `caught ${name}`, 'source/server/server.cc:1011');
    if (server?.knobs.ignoreSigterm) {
      log.warn('main', `envoy double: ignoring ${name} (ENVOY_DOUBLE_IGNORE_SIGTERM)`);
      return;
    }
    if (server) server.shutdown(server.knobs.sigtermExitCode);
    else exit(knobs.sigtermExitCode);
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => log.warn('main', 'caught and eating SIGHUP. See documentation for how to hot restart.', 'source/server/server.cc:1019'));
  process.on('SIGUSR1', () => log.warn('main', 'caught SIGUSR1. Reopening access logs.', 'source/server/server.cc:1015'));

  // Parent-watch (tests only; a real Envoy does not do this): exit when the parent dies.
  if (knobs.parentWatch) {
    setInterval(() => {
      if (process.ppid === initialPpid) return;
      log.warn('main', `envoy double: parent process ${initialPpid} exited; shutting down`);
      if (server) server.shutdown(0);
      else exit(0);
    }, 150).unref();
  }

  log.info('main', `initializing epoch ${options.restartEpoch} (base id=${options.baseId}, hot restart version=${options.disableHotRestart ? 'disabled' : '11.104'})`, 'source/server/server.cc:430');
  const configName = options.configPath || '<config-yaml>';
  let bootstrap;
  try {
    bootstrap = await loadBootstrap({ configPath: options.configPath, configYaml: options.configYaml, cwd: process.cwd(), logFormatSet: options.logFormatSet });
  } catch (err) {
    if (!(err instanceof BootstrapError)) throw err;
    if (options.mode === 'validate') {
      log.raw(`${err.message}\n`);
      exit(1);
    }
    log.critical('main', `error initializing configuration '${configName}': ${err.message}`, 'source/server/server.cc:132');
    log.info('main', 'exiting', 'source/server/server.cc:1049');
    log.raw(`${err.message}\n`);
    exit(1);
  }
  if (bootstrap.logFormat) log.setFormat(bootstrap.logFormat);
  if (options.mode === 'validate') {
    process.stdout.write(`configuration '${configName}' OK\n`);
    exit(0);
  }

  server = new EnvoyDouble(
    options,
    bootstrap,
    log,
    {
      startedAt,
      cwd: process.cwd(),
      stateFile: env.ENVOY_DOUBLE_STATE ?? '',
      controlFile: env.ENVOY_DOUBLE_CONTROL ?? '',
      adminLogFile: env.ENVOY_DOUBLE_ADMIN_LOG ?? '',
      exit,
      crash,
    } satisfies ProcessHost,
    knobs,
  );
  attachSds(server);
  try {
    await server.start();
  } catch (err) {
    const message = (err as Error).message;
    log.critical('main', `error initializing configuration '${configName}': ${message}`, 'source/server/server.cc:132');
    log.info('main', 'exiting', 'source/server/server.cc:1049');
    log.raw(`${message}\n`);
    exit(1);
  }
  if (options.mode === 'init_only') server.shutdown(0);
  else if (isObject(bootstrap.raw.dynamic_resources) && isObject(bootstrap.raw.dynamic_resources.ads_config)) {
    // Loaded only when the bootstrap asks for ADS, and after admin is up: grpc-js and protobufjs
    // cost the double's start-up ~70 ms.
    const { maybeStartAds } = await import('./ads.js');
    maybeStartAds(server, env);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

main().catch((err: unknown) => {
  process.stderr.write(`envoy double: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
  exit(70);
});
