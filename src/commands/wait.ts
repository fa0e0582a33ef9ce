/**
 * `pilot-agent wait` (SPEC §10.1): polls a readiness URL until it answers 200, for use in a
 * postStart hook (`holdApplicationUntilProxyStarts`) or a script.
 *
 * Timing is Istio's: the overall deadline starts at once, and every attempt comes after one
 * `--periodMillis` pause (so the first attempt is one period in). 200 → logs
 * `Envoy is ready!`, exit 0. The deadline passing → exit 255 with
 * `timeout waiting for Envoy proxy to become ready. Last error: <err>`, where `<err>` is the
 * last attempt's failure (`<nil>` if no attempt ran). **Decision (SPEC §10.1):** a 503 that
 * carries a body gives `HTTP status code 503: <body>`: the agent's readiness reason (§6.1),
 * which names the missing step; Istio reports only the status code.
 */
import type { Command } from '../command.js';
import { AgentError } from '../errors.js';
import { formatFlagHelp, parseFlags, type FlagSpec } from '../config/flags.js';
import { createLogger, type Logger } from '../log.js';
import { sleep } from '../lifecycle/abort.js';
import type { Dispatcher } from 'undici';
import { LOG_FLAGS } from './common.js';
import { commandDispatcher, httpRequest, HttpRequestError } from './http.js';

export const DEFAULT_WAIT_URL = 'http://localhost:15021/healthz/ready';

export const WAIT_FLAGS: readonly FlagSpec[] = [
  { long: 'timeoutSeconds', type: 'int', doc: 'Give up after this many seconds', defaultText: '60' },
  {
    long: 'requestTimeoutMillis',
    type: 'int',
    doc: 'Deadline of each attempt in milliseconds (0: only the overall deadline)',
    defaultText: '500',
  },
  { long: 'periodMillis', type: 'int', doc: 'Pause before every attempt, in milliseconds', defaultText: '500' },
  { long: 'url', type: 'string', doc: 'Readiness URL to poll', defaultText: DEFAULT_WAIT_URL },
  ...LOG_FLAGS,
  { long: 'help', short: 'h', type: 'bool', doc: 'Show this help' },
];

/** The body of a 503 is quoted up to this many bytes. */
const MAX_REASON_BYTES = 4096;

export interface WaitOptions {
  url: string;
  timeoutMs: number;
  periodMs: number;
  /** 0: an attempt may run until the overall deadline. */
  requestTimeoutMs: number;
  log?: Logger;
  signal?: AbortSignal;
}

export type WaitResult =
  | { ready: true; attempts: number }
  | { ready: false; attempts: number; lastError: string | undefined; aborted: boolean };

export function waitHelp(): string {
  return [
    'Waits until the Envoy proxy is ready: polls --url until it answers 200.',
    '',
    'Usage:',
    '  pilot-agent wait [flags]',
    '',
    'Flags:',
    formatFlagHelp(WAIT_FLAGS),
    '',
    'On timeout it exits 255 and prints the last error; for a 503 from the agent that is the',
    'readiness reason naming the missing step.',
    '',
  ].join('\n');
}

/** One attempt: undefined when ready, else the failure in Istio's words. */
async function attempt(dispatcher: Dispatcher, url: URL, timeoutMs: number, signal?: AbortSignal): Promise<string | undefined> {
  try {
    const res = await httpRequest(dispatcher, {
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      timeoutMs,
      maxBodyBytes: MAX_REASON_BYTES,
      ...(signal ? { signal } : {}),
    });
    if (res.status === 200) return undefined;
    const reason = res.body.trim().replace(/\s*\n\s*/g, ' ');
    if (res.status === 503 && reason !== '') return `HTTP status code 503: ${reason}`;
    return `HTTP status code ${res.status}`;
  } catch (err) {
    if (err instanceof HttpRequestError) return err.message;
    throw err;
  }
}

/**
 * Polls until ready, the deadline, or the signal. Never throws for HTTP failures: they become
 * `lastError`. The deadline is checked before each attempt, as Istio's select loop does: an
 * attempt that is under way when the deadline passes is allowed to finish.
 */
export async function waitForReady(options: WaitOptions): Promise<WaitResult> {
  const url = new URL(options.url);
  const deadline = performance.now() + options.timeoutMs;
  const dispatcher = commandDispatcher();
  let lastError: string | undefined;
  let attempts = 0;
  try {
    for (;;) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) return { ready: false, attempts, lastError, aborted: false };
      if (remaining < options.periodMs) {
        // The deadline comes before the next attempt would.
        const slept = await sleep(remaining, options.signal);
        return { ready: false, attempts, lastError, aborted: !slept };
      }
      if (!(await sleep(options.periodMs, options.signal))) return { ready: false, attempts, lastError, aborted: true };
      const perAttempt = options.requestTimeoutMs > 0 ? options.requestTimeoutMs : Math.max(1, deadline - performance.now());
      attempts++;
      lastError = await attempt(dispatcher, url, perAttempt, options.signal);
      if (lastError === undefined) return { ready: true, attempts };
      options.log?.debug(`Not ready yet: ${lastError}`);
    }
  } finally {
    await dispatcher.destroy();
  }
}

function intFlag(values: Map<string, string>, name: string, def: number): number {
  const raw = values.get(name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new AgentError('AGENT_USAGE', `invalid argument "${raw}" for "--${name}" flag: expected a non-negative integer`);
  }
  return n;
}

export const waitCommand: Command = async (argv, ctx) => {
  const { values } = parseFlags(argv, WAIT_FLAGS, { allowUnknown: false });
  if (values.get('help') === 'true') {
    ctx.stdout.write(waitHelp());
    return 0;
  }
  const timeoutSeconds = intFlag(values, 'timeoutSeconds', 60);
  const url = values.get('url') ?? DEFAULT_WAIT_URL;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:') throw new Error(`unsupported scheme ${u.protocol.replace(/:$/, '')} (only http)`);
  } catch (err) {
    throw new AgentError('AGENT_USAGE', `invalid argument "${url}" for "--url" flag: ${(err as Error).message}`);
  }
  const log = createLogger({
    outputLevel: values.get('log_output_level') ?? 'default:info',
    asJson: values.get('log_as_json') === 'true',
    destination: ctx.stdout,
  });
  log.info(`Waiting for Envoy proxy to be ready (timeout: ${timeoutSeconds} seconds)...`);
  const result = await waitForReady({
    url,
    timeoutMs: timeoutSeconds * 1000,
    periodMs: intFlag(values, 'periodMillis', 500),
    requestTimeoutMs: intFlag(values, 'requestTimeoutMillis', 500),
    log,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  if (result.ready) {
    log.info('Envoy is ready!');
    return 0;
  }
  const last = result.lastError ?? '<nil>';
  if (result.aborted) throw new AgentError('WAIT_TIMEOUT', `stopped waiting for Envoy proxy to become ready. Last error: ${last}`);
  throw new AgentError('WAIT_TIMEOUT', `timeout waiting for Envoy proxy to become ready. Last error: ${last}`);
};
