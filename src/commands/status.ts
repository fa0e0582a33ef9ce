/**
 * `pilot-agent status [--port 15020] [--json]` (issue 17): from inside the container, reads the
 * agent's `GET /status` on `http://localhost:<port>` and prints a readable summary (default)
 * or the JSON document itself (`--json`, one line). Exit 0 on a 200; a transport failure or
 * any other status is an error (exit 255) naming the URL. The port must be 1–65535.
 */
import type { Command } from '../command.js';
import { AgentError } from '../errors.js';
import { formatFlagHelp, parseFlags, type FlagSpec } from '../config/flags.js';
import { commandDispatcher, httpRequest, HttpRequestError } from './http.js';
import { LOG_FLAGS } from './common.js';
import { summarizeStatus } from './status-summary.js';

export const DEFAULT_STATUS_PORT = 15020;
export const STATUS_TIMEOUT_MS = 10_000;

export const STATUS_FLAGS: readonly FlagSpec[] = [
  { long: 'port', type: 'int', doc: "The agent's status port (statusPort)", defaultText: String(DEFAULT_STATUS_PORT) },
  { long: 'json', type: 'bool', doc: 'Print the /status JSON document instead of a summary' },
  ...LOG_FLAGS,
  { long: 'help', short: 'h', type: 'bool', doc: 'Show this help' },
];

export function statusHelp(): string {
  return [
    "Prints the agent's status (GET /status on the status port): Envoy, readiness, control plane, certificates, pod, metrics.",
    '',
    'Usage:',
    '  pilot-agent status [flags]',
    '',
    'Flags:',
    formatFlagHelp(STATUS_FLAGS),
    '',
  ].join('\n');
}

export const statusCommand: Command = async (argv, ctx) => {
  const { values, positionals } = parseFlags(argv, STATUS_FLAGS, { allowUnknown: false });
  if (values.get('help') === 'true') {
    ctx.stdout.write(statusHelp());
    return 0;
  }
  if (positionals.length > 0) throw new AgentError('AGENT_USAGE', `status takes no arguments, got ${JSON.stringify(positionals[0])}\n${statusHelp()}`);
  const portText = values.get('port') ?? String(DEFAULT_STATUS_PORT);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new AgentError('AGENT_USAGE', `--port: expected a port number 1-65535, got ${JSON.stringify(portText)}`);
  const origin = `http://localhost:${port}`;
  const dispatcher = commandDispatcher();
  try {
    const res = await httpRequest(dispatcher, { origin, path: '/status', method: 'GET', timeoutMs: STATUS_TIMEOUT_MS, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    if (res.status !== 200) throw new AgentError('REQUEST_FAILED', `GET ${origin}/status: status ${res.status}: ${res.body.trim()}`);
    let doc: unknown;
    try {
      doc = JSON.parse(res.body);
    } catch {
      throw new AgentError('REQUEST_FAILED', `GET ${origin}/status: the answer is not JSON (is ${port} the agent's status port?)`);
    }
    ctx.stdout.write(values.get('json') === 'true' ? `${JSON.stringify(doc)}\n` : summarizeStatus(doc));
    return 0;
  } catch (err) {
    if (err instanceof HttpRequestError) throw new AgentError('REQUEST_FAILED', err.message);
    throw err;
  } finally {
    await dispatcher.destroy();
  }
};
