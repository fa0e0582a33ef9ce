/**
 * Envoy-like application logging: spdlog-style patterns (`--log-format`, or the bootstrap's
 * `application_log_config.log_format.text_format` / `json_format`), `-l` and
 * `--component-log-level` filtering, lines to stderr (or `--log-path`).
 *
 * Default pattern output: `[2026-01-02 03:04:05.678][4242][info][main] [source/server/server.cc:901] starting main dispatch loop`.
 * Writing never throws.
 */
import fs from 'node:fs';
import { DEFAULT_LOG_FORMAT, LOG_LEVELS, type LogLevelName } from './cli.js';

export type Level = Exclude<LogLevelName, 'off'>;

const SHORT: Record<Level, string> = { trace: 'T', debug: 'D', info: 'I', warning: 'W', error: 'E', critical: 'C' };

export interface LogFormat {
  text?: string;
  json?: Record<string, unknown>;
}

export class EnvoyLog {
  private format: LogFormat = { text: DEFAULT_LOG_FORMAT };

  constructor(
    private readonly level: LogLevelName,
    private readonly componentLevels: ReadonlyMap<string, LogLevelName>,
    private readonly logPath = '',
  ) {}

  setFormat(format: LogFormat): void {
    this.format = format;
  }

  enabled(level: Level, component: string): boolean {
    const threshold = this.componentLevels.get(component) ?? this.level;
    return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(threshold);
  }

  /** `source` is the `file:line` Envoy would report for this message (shown by `%g:%#`). */
  log(level: Level, component: string, message: string, source = 'source/server/server.cc:0'): void {
    if (!this.enabled(level, component)) return;
    const [file, line] = splitSource(source);
    const fields = { level, component, message, file, line, now: new Date() };
    let out: string;
    if (this.format.json) {
      const obj: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(this.format.json)) obj[k] = typeof v === 'string' ? render(v, fields) : v;
      out = JSON.stringify(obj);
    } else {
      out = render(this.format.text ?? DEFAULT_LOG_FORMAT, fields);
    }
    this.write(`${out}\n`);
  }

  trace(c: string, m: string, s?: string): void {
    this.log('trace', c, m, s);
  }
  debug(c: string, m: string, s?: string): void {
    this.log('debug', c, m, s);
  }
  info(c: string, m: string, s?: string): void {
    this.log('info', c, m, s);
  }
  warn(c: string, m: string, s?: string): void {
    this.log('warning', c, m, s);
  }
  error(c: string, m: string, s?: string): void {
    this.log('error', c, m, s);
  }
  critical(c: string, m: string, s?: string): void {
    this.log('critical', c, m, s);
  }

  /** Raw text to stderr (not filtered, not formatted): what Envoy's main prints with std::cerr. */
  raw(text: string): void {
    try {
      process.stderr.write(text);
    } catch {
      // stderr gone: nothing to do
    }
  }

  private write(text: string): void {
    if (this.logPath !== '') {
      try {
        fs.appendFileSync(this.logPath, text);
        return;
      } catch {
        // fall back to stderr
      }
    }
    this.raw(text);
  }
}

function splitSource(source: string): [string, string] {
  const i = source.lastIndexOf(':');
  return i < 0 ? [source, '0'] : [source.slice(0, i), source.slice(i + 1)];
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function render(
  pattern: string,
  f: { level: Level; component: string; message: string; file: string; line: string; now: Date },
): string {
  const d = f.now;
  return pattern.replace(/%([A-Za-z#%_^$!@])/g, (all, c: string) => {
    switch (c) {
      case 'Y':
        return String(d.getUTCFullYear());
      case 'm':
        return pad(d.getUTCMonth() + 1);
      case 'd':
        return pad(d.getUTCDate());
      case 'H':
        return pad(d.getUTCHours());
      case 'M':
        return pad(d.getUTCMinutes());
      case 'S':
        return pad(d.getUTCSeconds());
      case 'T':
        return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
      case 'e':
        return pad(d.getUTCMilliseconds(), 3);
      case 'f':
        return pad(d.getUTCMilliseconds() * 1000, 6);
      case 'F':
        return pad(d.getUTCMilliseconds() * 1_000_000, 9);
      case 'l':
        return f.level;
      case 'L':
        return SHORT[f.level];
      case 'n':
        return f.component;
      case 'v':
      case '_':
        return f.message;
      case 'j':
        return JSON.stringify(f.message).slice(1, -1);
      case 't':
      case 'P':
        return String(process.pid);
      case 'g':
        return f.file;
      case 's':
        return f.file.slice(f.file.lastIndexOf('/') + 1);
      case '#':
        return f.line;
      case '%':
        return '%';
      case '^':
      case '$':
        return '';
      default:
        return all;
    }
  });
}
