/**
 * A small pflag-compatible command-line parser, driven by declarative flag specs.
 * Go's pflag semantics, because the args come from Istio's injector:
 *  - `--name value`, `--name=value`, `-n value`, `-n=value`, `-nvalue`;
 *  - a bool flag takes no separate value (`--x`), but accepts `--x=false`;
 *  - `--` ends flags; everything else is a positional.
 *  - unknown flags either fail (`allowUnknown: false`) or are collected; an unknown
 *    `--foo bar` consumes `bar` as its value, as pflag's UnknownFlags whitelist does.
 * Pure: no process access.
 */
import { AgentError } from '../errors.js';

export type FlagType = 'string' | 'bool' | 'int';

export interface FlagSpec {
  /** Long name without dashes, e.g. `proxyLogLevel`. */
  long: string;
  /** One-letter short name without dash. */
  short?: string;
  type: FlagType;
  /** Documentation for --help and the README reference. */
  doc: string;
  /** Default shown in help (the caller applies defaults). */
  defaultText?: string;
}

export interface ParsedFlags {
  /** Raw string values by long name; bools are 'true'/'false'. Last occurrence wins. */
  values: Map<string, string>;
  positionals: string[];
  unknown: string[];
}

export interface ParseOptions {
  allowUnknown: boolean;
  /** Error code/exit code used for usage errors. */
  errorCode?: 'AGENT_USAGE' | 'IPTABLES_USAGE';
  exitCode?: number;
}

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], options: ParseOptions): ParsedFlags {
  const byLong = new Map(specs.map((s) => [s.long, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const values = new Map<string, string>();
  const positionals: string[] = [];
  const unknown: string[] = [];
  const fail = (msg: string): never => {
    throw new AgentError(options.errorCode ?? 'AGENT_USAGE', msg, { exitCode: options.exitCode ?? 255 });
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const isLong = arg.startsWith('--');
    const body = arg.slice(isLong ? 2 : 1);
    const eq = body.indexOf('=');
    let name: string;
    let inline: string | undefined;
    let spec: FlagSpec | undefined;
    if (isLong) {
      name = eq >= 0 ? body.slice(0, eq) : body;
      inline = eq >= 0 ? body.slice(eq + 1) : undefined;
      spec = byLong.get(name);
    } else {
      name = body.slice(0, 1);
      const rest = body.slice(1);
      inline = rest.startsWith('=') ? rest.slice(1) : rest.length > 0 ? rest : undefined;
      spec = byShort.get(name);
    }
    if (!spec) {
      if (!options.allowUnknown) fail(`unknown flag: ${isLong ? '--' : '-'}${name}`);
      unknown.push(arg);
      // pflag's UnknownFlags: a following non-flag argument is the unknown flag's value.
      if (inline === undefined && i + 1 < argv.length && !(argv[i + 1] as string).startsWith('-')) {
        unknown.push(argv[++i] as string);
      }
      continue;
    }
    const flagName = `${isLong ? '--' : '-'}${name}`;
    if (spec.type === 'bool') {
      if (inline === undefined) {
        values.set(spec.long, 'true');
      } else {
        const b = parseGoBool(inline);
        if (b === undefined) fail(`invalid argument "${inline}" for "${flagName}" flag: expected a boolean (true/false)`);
        values.set(spec.long, String(b));
      }
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) fail(`flag needs an argument: ${flagName}`);
      value = argv[++i] as string;
    }
    if (spec.type === 'int' && !/^[+-]?\d+$/.test(value)) {
      fail(`invalid argument "${value}" for "${flagName}" flag: expected an integer`);
    }
    values.set(spec.long, value);
  }
  return { values, positionals, unknown };
}

/** Go's strconv.ParseBool set. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/** Renders a help block from specs (used by --help and the README reference). */
export function formatFlagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const names = `${s.short ? `-${s.short}, ` : '    '}--${s.long}${s.type === 'bool' ? '' : ` ${s.type}`}`;
    const def = s.defaultText !== undefined && s.defaultText !== '' ? ` (default ${s.defaultText})` : '';
    return { names, text: `${s.doc}${def}` };
  });
  const width = Math.max(...rows.map((r) => r.names.length)) + 3;
  return rows.map((r) => `  ${r.names.padEnd(width)}${r.text}`).join('\n');
}
