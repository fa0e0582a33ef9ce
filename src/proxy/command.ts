/**
 * `pilot-agent proxy [sidecar|router]`: builds the config, then runs the agent until it
 * is told to stop. First SIGTERM/SIGINT starts the graceful stop; the process exits with
 * the agent's status.
 */
import os from 'node:os';
import type { Command } from '../command.js';
import { formatFlagHelp } from '../config/flags.js';
import { loadConfig } from '../config/load.js';
import { PROXY_ENV, PROXY_FLAGS } from '../config/options.js';
import { createLogger } from '../log.js';
import { runAgent } from '../agent.js';

export function proxyHelp(): string {
  // Names longer than the column (REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION) would run into their doc.
  const width = Math.max(40, ...PROXY_ENV.map((e) => e.name.length + 2));
  const envRows = PROXY_ENV.map((e) => `  ${e.name.padEnd(width)}${e.doc}${e.default !== '' ? ` (default ${e.default})` : ''}`);
  return [
    'XDS proxy agent',
    '',
    'Usage:',
    '  pilot-agent proxy [sidecar|router] [flags]',
    '',
    'Flags:',
    formatFlagHelp(PROXY_FLAGS),
    '',
    'Environment:',
    ...envRows,
    '',
  ].join('\n');
}

export const proxyCommand: Command = async (argv, ctx) => {
  const { config, warnings, help } = loadConfig(argv, ctx.env, ctx.cwd);
  if (help) {
    ctx.stdout.write(proxyHelp());
    return 0;
  }
  const log = createLogger({ outputLevel: config.logging.outputLevel, asJson: config.logging.asJson });
  for (const w of warnings) log.warn(w);

  // One stop request, then a second one that cuts the drain short (SPEC §5.2).
  const stop = new AbortController();
  const force = new AbortController();
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
  const onSignal = (sig: NodeJS.Signals) => {
    if (!stop.signal.aborted) {
      log.info(`received ${sig}, stopping`);
      stop.abort(sig);
    } else {
      log.warn(`received ${sig} again`);
      force.abort(sig);
    }
  };
  const external = ctx.signal;
  if (external) external.addEventListener('abort', () => stop.abort(external.reason), { once: true });
  else for (const s of signals) process.on(s, onSignal);
  try {
    return await runAgent({
      config,
      log,
      env: ctx.env,
      interfaces: os.networkInterfaces(),
      signal: stop.signal,
      forceSignal: force.signal,
    });
  } finally {
    if (!external) for (const s of signals) process.off(s, onSignal);
  }
};
