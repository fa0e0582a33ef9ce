/**
 * Structured logging (pino). The root logger is created once by the CLI from the
 * config's logging options and handed down; components take `log.child({ scope })`.
 * No module creates a logger at import time.
 */
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

export type { Logger };

export interface LogOptions {
  /** Istio's `--log_output_level`, e.g. `default:info` or `info`; scopes other than default are accepted and ignored. */
  outputLevel?: string;
  asJson?: boolean;
  destination?: DestinationStream;
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** Maps Istio's level names (`warning`, `none`) onto pino's. */
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
  const level = parseIstioLogLevel(options.outputLevel);
  const dest = options.destination ?? pino.destination({ fd: 2, sync: true });
  if (options.asJson) {
    return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  }
  // Istio-like plain text: `<time>\t<level>\t<scope>\t<msg> key=value…`
  return pino(
    {
      level,
      base: undefined,
      timestamp: false,
      formatters: { level: (label) => ({ level: label }) },
    },
    textStream(dest),
  );
}

function textStream(dest: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        dest.write(line);
        return;
      }
      const { level, msg, scope, ...rest } = rec;
      const extras = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      const lvl = level === 'warn' ? 'warn' : String(level);
      dest.write(`${new Date().toISOString()}\t${lvl}\t${scope ? `${String(scope)}\t` : ''}${String(msg ?? '')}${extras ? `\t${extras}` : ''}\n`);
    },
  };
}
