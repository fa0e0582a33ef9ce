/**
 * `pilot-agent request <method> <path> [body]` (SPEC §10.2): one HTTP request to a local
 * debug port, by default Envoy's admin API, e.g. `pilot-agent request GET server_info`.
 *
 * The URL is `http://localhost:<--debug-port>/<path without its leading />`; the path (with
 * any query) is sent byte for byte. Only the debug ports 15000 (admin), 15004, 15020 (status
 * server) and 15021 (Envoy's readiness listener) are allowed, checked before anything is sent.
 * Success prints the response body and a newline on stdout and nothing else (istioctl parses
 * it as JSON). A status above 399 other than 404 is an error: exit 255 with
 * `received unsuccessful status code <n>: <body>`; so is a transport failure.
 */
import type { Command } from '../command.js';
import { AgentError } from '../errors.js';
import { formatFlagHelp, parseFlags, type FlagSpec } from '../config/flags.js';
import { commandDispatcher, httpRequest, HttpRequestError } from './http.js';
import { LOG_FLAGS } from './common.js';

export const DEFAULT_DEBUG_PORT = 15000;
export const ALLOWED_DEBUG_PORTS: readonly number[] = [15000, 15004, 15020, 15021];
/** Istio's admin client timeout for this command. */
export const REQUEST_TIMEOUT_MS = 60_000;

export const REQUEST_FLAGS: readonly FlagSpec[] = [
  {
    long: 'debug-port',
    type: 'int',
    doc: `Local port to send the request to (one of ${ALLOWED_DEBUG_PORTS.join(', ')}; 15000 is Envoy's admin API)`,
    defaultText: String(DEFAULT_DEBUG_PORT),
  },
  ...LOG_FLAGS,
  { long: 'help', short: 'h', type: 'bool', doc: 'Show this help' },
];

export function requestHelp(): string {
  return [
    "Makes an HTTP request to a local debug port (by default Envoy's admin API) and prints the body.",
    '',
    'Usage:',
    '  pilot-agent request <method> <path> [<body>] [flags]',
    '',
    'Examples:',
    '  pilot-agent request GET server_info',
    "  pilot-agent request GET 'stats?usedonly&filter=^server\\.'",
    '  pilot-agent request POST logging?level=debug',
    '',
    'Flags:',
    formatFlagHelp(REQUEST_FLAGS),
    '',
  ].join('\n');
}

const usage = (message: string): AgentError => new AgentError('AGENT_USAGE', message);

export const requestCommand: Command = async (argv, ctx) => {
  const { values, positionals } = parseFlags(argv, REQUEST_FLAGS, { allowUnknown: false });
  if (values.get('help') === 'true') {
    ctx.stdout.write(requestHelp());
    return 0;
  }
  const portText = values.get('debug-port') ?? String(DEFAULT_DEBUG_PORT);
  const port = Number(portText);
  if (!ALLOWED_DEBUG_PORTS.includes(port)) {
    throw usage(`debug port ${portText} is not in allowed list [${[...ALLOWED_DEBUG_PORTS].sort((a, b) => a - b).join(' ')}]`);
  }
  if (positionals.length < 2) throw usage(`requires at least 2 arg(s), only received ${positionals.length}\n${requestHelp()}`);
  const [method, rawPath, body] = positionals as [string, string, string | undefined];
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) throw usage(`invalid method "${method}"`);

  const origin = `http://localhost:${port}`;
  const dispatcher = commandDispatcher();
  try {
    const res = await httpRequest(dispatcher, {
      origin,
      path: `/${rawPath.replace(/^\/+/, '')}`,
      method,
      ...(body !== undefined && body !== '' ? { body } : {}),
      timeoutMs: REQUEST_TIMEOUT_MS,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    if (res.status > 399 && res.status !== 404) {
      throw new AgentError('REQUEST_FAILED', `received unsuccessful status code ${res.status}: ${res.body}`);
    }
    ctx.stdout.write(`${res.body}\n`);
    return 0;
  } catch (err) {
    if (err instanceof HttpRequestError) throw new AgentError('REQUEST_FAILED', err.message);
    throw err;
  } finally {
    await dispatcher.destroy();
  }
};
