/**
 * The agent's logger is pino. The root logger is created once by a command from its logging
 * options and handed down; components take `log.child({ scope })`. No module creates a logger
 * at import time.
 *
 * - Text (default): Istio's agent line `<time µs>\t<level>\t[<scope>\t]<msg>[\t<k>=<v> …]`
 *   (src/log/format.ts), made from pino's own record inside a synchronous destination, so
 *   pino's serializers (`err` with causes) shape both formats.
 * - JSON (`asJson`): pino's record, `{"level":<n>,"time":"<time µs>",<bindings, fields>,"msg":…}`,
 *   each key once (a later binding or field replaces an earlier one in place).
 * - Errors under any top-level key are serialised like `err`.
 * - Output is synchronous: fd 2 by default (src/log/stderr.ts), or `destination.write(line)`.
 *   No worker thread, no transport.
 * - Logging never throws: what pino cannot serialise degrades to its placeholder text, a call
 *   that throws anyway (a throwing getter) becomes `[unserializable]`, a failing destination
 *   loses the line.
 */
import { pino, stdSerializers, type LevelWithSilent, type Logger as PinoLogger } from 'pino';
import { istioText, istioTime, uniqueKeys } from './log/format.js';
import { stderrDestination } from './log/stderr.js';

/** Where finished lines go (each line ends with `\n`). `process.stdout`-like streams fit. */
export interface LogDestination {
  write(line: string): unknown;
}

export type LevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type { LevelWithSilent };
export type Bindings = Record<string, unknown>;

export interface LogFn {
  (msg: string, ...args: unknown[]): void;
  (obj: unknown, msg?: string, ...args: unknown[]): void;
}

/** The part of pino's logger the agent uses (printf-style arguments are not type-checked). */
export interface Logger {
  /** The threshold (a pino level name); setting an unknown name throws. */
  level: string;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger whose records carry `bindings` after this logger's; it starts at this logger's level. */
  child(bindings: Bindings): Logger;
  bindings(): Bindings;
  isLevelEnabled(level: string): boolean;
}

export interface LogOptions {
  /** Istio's `--log_output_level`, e.g. `default:info` or `info`; scopes other than default are accepted and ignored. */
  outputLevel?: string;
  asJson?: boolean;
  /** Default: synchronous writes to fd 2. */
  destination?: LogDestination;
}

const LEVELS: ReadonlySet<string> = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** Maps Istio's level names (`warning`, `none`) onto pino's; the last `default:`/`all:` item wins. */
export function parseIstioLogLevel(spec: string | undefined, fallback: LevelWithSilent = 'info'): LevelWithSilent {
  if (!spec) return fallback;
  let level = fallback;
  for (const item of spec.split(',')) {
    const [scope, lvl] = item.includes(':') ? item.split(':', 2) : ['default', item];
    if (scope !== 'default' && scope !== 'all') continue;
    const name = (lvl ?? '').trim().toLowerCase();
    const mapped = name === 'warning' ? 'warn' : name === 'none' ? 'silent' : name;
    if (LEVELS.has(mapped)) level = mapped as LevelWithSilent;
  }
  return level;
}

export function createLogger(options: LogOptions = {}): Logger {
  const format = options.asJson === true ? uniqueKeys : istioText;
  const dest =
    options.destination ??
    stderrDestination((n) => format(`{"level":40,"time":"${istioTime()}","msg":"${n} log lines dropped: stderr was backed up"}\n`));
  const stream = {
    write(record: string): void {
      try {
        dest.write(format(record));
      } catch {
        // A destination that throws loses the line; the caller goes on.
      }
    },
  };
  const logger: PinoLogger = pino(
    {
      level: parseIstioLogLevel(options.outputLevel),
      base: null,
      timestamp: () => `,"time":"${istioTime()}"`,
      formatters: { log: serializeErrors },
      hooks: {
        logMethod(args, method) {
          try {
            method.apply(this, args);
          } catch {
            try {
              method.call(this, '[unserializable]');
            } catch {
              // Nothing left to report with.
            }
          }
        },
      },
    },
    stream,
  );
  return logger;
}

/** pino serialises only `err` as an error; an Error under another top-level key gets the same shape. */
function serializeErrors(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    if (key !== 'err' && value instanceof Error) (out ??= { ...obj })[key] = stdSerializers.err(value);
  }
  return out ?? obj;
}
