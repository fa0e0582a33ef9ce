/**
 * Structured logging. The root logger is created once by the CLI from the config's logging
 * options and handed down; components take `log.child({ scope })`. No module creates a logger
 * at import time.
 *
 * A small pino-compatible logger written for start-up cost and memory (issue 4: pino and its
 * worker/stream machinery cost ~9 MiB of RSS). What it guarantees:
 * - pino's level names and numbers (trace 10 … fatal 60, `silent`), call shapes `(msg, ...args)`
 *   with printf-style `%s %d %i %f %j %o %O %%`, `(obj, msg?, ...args)`, `(err, msg?)`;
 * - `child(bindings)` merges bindings (a later key replaces an earlier one); a child starts at
 *   its parent's level and has its own level afterwards;
 * - text format (default), one line per record:
 *   `<ISO time>\t<level>\t[<scope>\t]<msg>[\t<k>=<v> …]` (strings bare, anything else as JSON);
 * - JSON format (`asJson`): `{"level":<number>,"time":"<ISO>",<bindings and fields>,"msg":…}`;
 * - error values (`err`, or any top-level field holding an Error) are serialised like pino's
 *   `err` serializer: `{type, message, stack, …own enumerable props}` with causes chained into
 *   `message` (`a: b`) and `stack` (`caused by: …`);
 * - writes are synchronous: to fd 2 by default (`fs.writeSync`, retrying EAGAIN on a
 *   non-blocking pipe), or to the given destination's `write(line)`. Logging never throws: a
 *   serialisation failure degrades to `[unserializable]`, a dead fd 2 drops the line.
 * The module imports nothing; it loads `node:fs` (the CommonJS object) when the first fd-2
 * logger is created.
 */
/** Where finished lines go (each line ends with `\n`). `process.stdout`-like streams fit. */
export interface LogDestination {
  write(line: string): unknown;
}

export type LevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type LevelWithSilent = LevelName | 'silent';

export interface LogFn {
  (msg: string, ...args: unknown[]): void;
  (obj: unknown, msg?: string, ...args: unknown[]): void;
}

export type Bindings = Record<string, unknown>;

export interface Logger {
  /** The threshold; setting an unknown name throws. */
  level: LevelWithSilent;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger whose records carry `bindings` (merged over this logger's). */
  child(bindings: Bindings): Logger;
  /** This logger's merged bindings (a copy). */
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

const LEVEL_VALUES: Readonly<Record<LevelWithSilent, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

function isLevel(name: string): name is LevelWithSilent {
  return Object.prototype.hasOwnProperty.call(LEVEL_VALUES, name);
}

/** Maps Istio's level names (`warning`, `none`) onto pino's. */
export function parseIstioLogLevel(spec: string | undefined, fallback: LevelWithSilent = 'info'): LevelWithSilent {
  if (!spec) return fallback;
  let level = fallback;
  for (const item of spec.split(',')) {
    const [scope, lvl] = item.includes(':') ? item.split(':', 2) : ['default', item];
    if (scope !== 'default' && scope !== 'all') continue;
    const name = (lvl ?? '').trim().toLowerCase();
    const mapped = name === 'warning' ? 'warn' : name === 'none' ? 'silent' : name;
    if (isLevel(mapped)) level = mapped;
  }
  return level;
}

export function createLogger(options: LogOptions = {}): Logger {
  const sink: Sink = {
    json: options.asJson === true,
    dest: options.destination ?? stderrDestination(),
  };
  return new LoggerImpl(sink, parseIstioLogLevel(options.outputLevel), {}, '');
}

// ---------------------------------------------------------------------------------------------
// Logger

interface Sink {
  readonly json: boolean;
  readonly dest: LogDestination;
}

class LoggerImpl implements Logger {
  #level: LevelWithSilent;
  #threshold: number;

  /**
   * @param bindingsJson the bindings pre-serialised as `,"k":v…` (JSON format only), so the
   *   common record without fields costs one string concatenation.
   */
  constructor(
    private readonly sink: Sink,
    level: LevelWithSilent,
    private readonly bound: Bindings,
    private readonly bindingsJson: string,
  ) {
    this.#level = level;
    this.#threshold = LEVEL_VALUES[level];
  }

  get level(): LevelWithSilent {
    return this.#level;
  }

  set level(name: LevelWithSilent) {
    if (!isLevel(name)) throw new Error(`unknown level ${String(name)}`);
    this.#level = name;
    this.#threshold = LEVEL_VALUES[name];
  }

  isLevelEnabled(level: string): boolean {
    return isLevel(level) && level !== 'silent' && LEVEL_VALUES[level] >= this.#threshold;
  }

  bindings(): Bindings {
    return { ...this.bound };
  }

  child(bindings: Bindings): Logger {
    const merged = { ...this.bound, ...sanitizeFields(bindings) };
    const json = this.sink.json ? objectBody(merged) : '';
    return new LoggerImpl(this.sink, this.#level, merged, json ? `,${json}` : '');
  }

  trace(obj: unknown, ...rest: unknown[]): void {
    if (10 >= this.#threshold) this.write('trace', obj, rest);
  }
  debug(obj: unknown, ...rest: unknown[]): void {
    if (20 >= this.#threshold) this.write('debug', obj, rest);
  }
  info(obj: unknown, ...rest: unknown[]): void {
    if (30 >= this.#threshold) this.write('info', obj, rest);
  }
  warn(obj: unknown, ...rest: unknown[]): void {
    if (40 >= this.#threshold) this.write('warn', obj, rest);
  }
  error(obj: unknown, ...rest: unknown[]): void {
    if (50 >= this.#threshold) this.write('error', obj, rest);
  }
  fatal(obj: unknown, ...rest: unknown[]): void {
    if (60 >= this.#threshold) this.write('fatal', obj, rest);
  }

  private write(level: LevelName, first: unknown, rest: unknown[]): void {
    let line: string;
    try {
      const { fields, msg } = splitArgs(first, rest);
      line = this.sink.json ? this.jsonLine(level, fields, msg) : this.textLine(level, fields, msg);
    } catch {
      // Serialisation must not take the caller down (a getter that throws, a hostile toJSON).
      line = this.sink.json
        ? `{"level":${LEVEL_VALUES[level]},"time":"${new Date().toISOString()}","msg":"[unserializable]"}\n`
        : `${new Date().toISOString()}\t${level}\t[unserializable]\n`;
    }
    try {
      this.sink.dest.write(line);
    } catch {
      // A destination that throws loses the line; the caller goes on.
    }
  }

  private jsonLine(level: LevelName, fields: Bindings | undefined, msg: unknown): string {
    let body: string;
    if (fields === undefined) body = this.bindingsJson;
    else {
      const own = objectBody({ ...this.bound, ...fields });
      body = own ? `,${own}` : '';
    }
    const msgJson = msg === undefined ? undefined : stringify(msg);
    return `{"level":${LEVEL_VALUES[level]},"time":"${new Date().toISOString()}"${body}${msgJson === undefined ? '' : `,"msg":${msgJson}`}}\n`;
  }

  private textLine(level: LevelName, fields: Bindings | undefined, msg: unknown): string {
    const record = fields === undefined ? this.bound : { ...this.bound, ...fields };
    let scope = '';
    let extras = '';
    for (const key of Object.keys(record)) {
      const value = record[key];
      if (key === 'scope') {
        scope = textValue(value) ?? '';
        continue;
      }
      const text = textValue(value);
      if (text !== undefined) extras += `${extras ? ' ' : ''}${key}=${text}`;
    }
    const message = msg === undefined || msg === null ? '' : typeof msg === 'string' ? msg : (textValue(msg) ?? '');
    return `${new Date().toISOString()}\t${level}\t${scope ? `${scope}\t` : ''}${message}${extras ? `\t${extras}` : ''}\n`;
  }
}

/**
 * pino's argument conventions: an Error first becomes `{ err }` with its message as the default
 * message; an object first is the fields (its `msg`, if any, is the default message); anything
 * else first is the message. A string message is printf-formatted with the remaining args.
 */
function splitArgs(first: unknown, rest: unknown[]): { fields: Bindings | undefined; msg: unknown } {
  let fields: Bindings | undefined;
  let msg: unknown;
  let args: unknown[];
  if (first instanceof Error) {
    fields = { err: first };
    msg = rest.length > 0 && rest[0] !== undefined ? rest[0] : first.message;
    args = rest.slice(1);
  } else if (typeof first === 'object' && first !== null) {
    const { msg: inner, ...others } = first as Bindings;
    fields = others;
    msg = rest.length > 0 && rest[0] !== undefined ? rest[0] : inner;
    args = rest.slice(1);
  } else {
    msg = first;
    args = rest;
  }
  if (fields !== undefined) fields = sanitizeFields(fields);
  if (typeof msg === 'string' && args.length > 0) msg = format(msg, args);
  return { fields: fields && Object.keys(fields).length > 0 ? fields : undefined, msg };
}

/** Serialises error values among the top-level fields; other values are left to JSON. */
function sanitizeFields(fields: Bindings): Bindings {
  let out: Bindings | undefined;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (value instanceof Error || (key === 'err' && isErrorLike(value))) {
      out ??= { ...fields };
      out[key] = serializeError(value as ErrorLike);
    }
  }
  return out ?? fields;
}

/** `key=value` text for one field: strings bare, everything else as its JSON; undefined = omitted. */
function textValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const json = stringify(value);
  if (json === undefined) return undefined;
  // A value whose JSON is a string (a Date, an object with toJSON) prints bare, like a string.
  return json.charCodeAt(0) === 34 /* " */ ? (JSON.parse(json) as string) : json;
}

/** `"k":v,…` for an object's own enumerable keys (undefined/function values omitted). */
function objectBody(obj: Bindings): string {
  const json = stringify(obj) ?? '{}';
  return json.slice(1, -1);
}

// ---------------------------------------------------------------------------------------------
// Values

type ErrorLike = { message: string; stack?: unknown; cause?: unknown; name?: unknown; errors?: unknown } & Record<string, unknown>;

function isErrorLike(value: unknown): value is ErrorLike {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';
}

/** The cause an error points at, if it is error-like (VError-style cause functions included). */
function causeOf(err: ErrorLike): ErrorLike | undefined {
  const cause: unknown = typeof err.cause === 'function' ? (err.cause as () => unknown)() : err.cause;
  return isErrorLike(cause) ? cause : undefined;
}

function messageWithCauses(err: ErrorLike): string {
  const seen = new Set<ErrorLike>();
  let text = err.message;
  for (let cur = err; ; ) {
    const cause = causeOf(cur);
    if (!cause) return text;
    if (seen.has(cur)) return `${text}: ...`;
    seen.add(cur);
    text += typeof cur.cause === 'function' ? cause.message : `: ${cause.message}`;
    cur = cause;
  }
}

function stackWithCauses(err: ErrorLike): string {
  const seen = new Set<ErrorLike>();
  let text = typeof err.stack === 'string' ? err.stack : '';
  for (let cur = err; ; ) {
    const cause = causeOf(cur);
    if (!cause) return text;
    if (seen.has(cur)) return `${text}\ncauses have become circular...`;
    seen.add(cur);
    text += `\ncaused by: ${typeof cause.stack === 'string' ? cause.stack : ''}`;
    cur = cause;
  }
}

/** pino's `err` serializer shape: type, message and stack with causes, then the error's own enumerable props. */
function serializeError(err: ErrorLike, seen: Set<unknown> = new Set()): Bindings {
  seen.add(err);
  const ctor = (err as { constructor?: unknown }).constructor;
  const out: Bindings = {
    type: typeof ctor === 'function' && ctor.name ? ctor.name : err.name,
    message: messageWithCauses(err),
    stack: stackWithCauses(err),
  };
  if (Array.isArray(err.errors)) {
    out.aggregateErrors = err.errors.map((e: unknown) => (isErrorLike(e) && !seen.has(e) ? serializeError(e, seen) : e));
  }
  for (const key in err) {
    if (out[key] !== undefined) continue;
    const value = err[key];
    if (isErrorLike(value)) {
      if (key !== 'cause' && !seen.has(value)) out[key] = serializeError(value, seen);
    } else out[key] = value;
  }
  return out;
}

/**
 * JSON.stringify that never throws: BigInt becomes a number (a string past 2^53), circular
 * references become `"[Circular]"`, a throwing getter/toJSON becomes `"[unserializable]"`.
 */
function stringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    try {
      return JSON.stringify(value, safeReplacer());
    } catch {
      return '"[unserializable]"';
    }
  }
}

function safeReplacer(): (this: unknown, key: string, value: unknown) => unknown {
  // `this` is the holder of `key`; ancestors is the chain of holders from the root down.
  const ancestors: unknown[] = [];
  return function (this: unknown, _key: string, value: unknown): unknown {
    if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
    if (typeof value !== 'object' || value === null) return value;
    while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
    if (ancestors.includes(value)) return '[Circular]';
    ancestors.push(value);
    return value;
  };
}

/** printf subset of pino (quick-format): %s %d %f %i %j %o %O %%; extra args are ignored. */
function format(template: string, args: unknown[]): string {
  let out = '';
  let next = 0;
  let last = 0;
  for (let i = 0; i < template.length - 1; i++) {
    if (template.charCodeAt(i) !== 37 /* % */) continue;
    const spec = template[i + 1];
    let piece: string | undefined;
    if (spec === '%') piece = '%';
    else if (next < args.length) {
      const arg = args[next];
      switch (spec) {
        case 's':
          piece = String(arg);
          break;
        case 'd':
        case 'f':
          if (arg !== null && arg !== undefined) piece = String(Number(arg));
          break;
        case 'i':
          if (arg !== null && arg !== undefined) piece = String(Math.floor(Number(arg)));
          break;
        case 'j':
        case 'o':
        case 'O':
          if (arg === undefined) break;
          if (typeof arg === 'string') piece = `'${arg}'`;
          else if (typeof arg === 'function') piece = arg.name || '<anonymous>';
          else piece = stringify(arg) ?? 'undefined';
          break;
        default:
          continue;
      }
      next++;
    } else continue;
    if (piece === undefined) continue;
    out += template.slice(last, i) + piece;
    last = i + 2;
    i++;
  }
  return last === 0 ? template : out + template.slice(last);
}

// ---------------------------------------------------------------------------------------------
// The default destination: fd 2, synchronously.

/** How long one line may wait for a full (non-blocking) stderr pipe before it is dropped. */
const STDERR_STALL_LIMIT_MS = 10_000;

/**
 * Writes whole lines to fd 2 with `fs.writeSync`. When fd 2 is a non-blocking pipe (Node makes
 * it one as soon as anything touches `process.stderr`) a full pipe answers EAGAIN: the write
 * waits (Atomics.wait, 1 → 50 ms) and retries, like sonic-boom's sync mode, so a slow reader
 * slows the agent down instead of crashing it. A line that makes no progress for
 * STDERR_STALL_LIMIT_MS is dropped (a torn line is terminated before the next one); any other
 * write error (EPIPE, EBADF) drops the line silently.
 */
function stderrDestination(): LogDestination {
  // The CommonJS object, not `import fs from 'node:fs'`: an ESM import of a builtin evaluates
  // all its lazy exports (fs streams → node:stream), which a logger must not pay for.
  const fs = process.getBuiltinModule('node:fs');
  let sleeper: Int32Array | undefined;
  let torn = false;
  return {
    write(line: string): void {
      let buf = Buffer.from(torn ? `\n${line}` : line, 'utf8');
      const total = buf.length;
      torn = false;
      let waitMs = 1;
      let stalledSince = 0;
      while (buf.length > 0) {
        try {
          const n = fs.writeSync(2, buf);
          buf = buf.subarray(n);
          waitMs = 1;
          stalledSince = 0;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
          const now = Date.now();
          if (stalledSince === 0) stalledSince = now;
          else if (now - stalledSince >= STDERR_STALL_LIMIT_MS) {
            torn = buf.length < total;
            return;
          }
          sleeper ??= new Int32Array(new SharedArrayBuffer(4));
          Atomics.wait(sleeper, 0, 0, waitMs);
          waitMs = Math.min(waitMs * 2, 50);
        }
      }
    },
  };
}
