/**
 * Thin entry: picks the subcommand, runs it, maps errors to exit codes.
 * Exit codes: 0 success; 255 configuration/usage errors (Istio's cobra convention);
 * `istio-iptables` has its own codes (SPEC §9).
 */
import type { Command, CommandContext } from './command.js';
import { AgentError, describeError } from './errors.js';

const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  proxy: { load: async () => (await import('./proxy/command.js')).proxyCommand, summary: 'XDS proxy agent (proxy [sidecar|router])' },
  'istio-iptables': {
    load: async () => (await import('./iptables/command.js')).istioIptablesCommand,
    summary: 'Set up iptables rules for Istio sidecar traffic capture',
  },
  'istio-clean-iptables': {
    load: async () => (await import('./iptables/command.js')).istioCleanIptablesCommand,
    summary: 'Remove the iptables rules istio-iptables created',
  },
  request: {
    load: async () => (await import('./commands/request.js')).requestCommand,
    summary: "Makes an HTTP request to a local debug port (default: Envoy's admin API)",
  },
  status: {
    load: async () => (await import('./commands/status.js')).statusCommand,
    summary: "Prints the agent's status (Envoy, readiness, control plane, certificates, pod, metrics)",
  },
  version: { load: async () => (await import('./commands/version.js')).versionCommand, summary: 'Prints out build version information' },
  wait: { load: async () => (await import('./commands/wait.js')).waitCommand, summary: 'Waits until the Envoy proxy is ready' },
};

export function usage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length)) + 3;
  return [
    'Istio Pilot agent runs in the sidecar or gateway container and bootstraps Envoy.',
    '',
    'Usage:',
    '  pilot-agent [command]',
    '',
    'Available Commands:',
    ...names.map((n) => `  ${n.padEnd(width)}${COMMANDS[n]?.summary ?? ''}`),
    '',
  ].join('\n');
}

export async function main(argv: string[], ctx?: Partial<CommandContext>): Promise<number> {
  const context: CommandContext = {
    env: ctx?.env ?? process.env,
    cwd: ctx?.cwd ?? process.cwd(),
    stdout: ctx?.stdout ?? process.stdout,
    stderr: ctx?.stderr ?? process.stderr,
    ...(ctx?.signal ? { signal: ctx.signal } : {}),
  };
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    context.stdout.write(usage());
    return name === undefined ? 255 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    context.stderr.write(`Error: unknown command "${name}" for "pilot-agent"\n${usage()}`);
    return 255;
  }
  try {
    const command = await entry.load();
    return await command(rest, context);
  } catch (err) {
    if (err instanceof AgentError && err.userFacing) {
      context.stderr.write(`Error: ${describeError(err)}\n`);
      return err.exitCode;
    }
    context.stderr.write(`pilot-agent: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 255;
  }
}
