/**
 * The thin shell around the pure builder: runs (or, in dry run, only prints) the capture
 * and cleanup plans in Istio 1.6's sequence. Every command is echoed first as
 * `<cmd> <args joined by space>`; the commands' own stdout follows the echo.
 *
 * Apply: host `ip` commands → v4 rules file + `iptables-restore --noflush <file>` →
 * v6 rules file (empty unless IPv6) + `ip6tables-restore --noflush <file>` → `iptables-save`
 * (and `ip6tables-save` if IPv6). The saves run even when a step failed (1.6 deferred them);
 * the failure is then rethrown as IPTABLES_FAILED (exit 1). Rules files are removed after use.
 *
 * Cleanup: never fails. Each deletion is best effort with its stderr hidden, as 1.6's
 * RunQuietlyAndIgnore; missing rules and chains are fine.
 */
import { randomInt } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { execa } from 'execa';
import { AgentError } from '../errors.js';
import {
  buildCleanupPlan,
  toCommands,
  toRestoreText,
  type CapturePlan,
  type HostCommand,
} from './builder.js';
import type { IptablesConfig } from './options.js';
import { commandEcho, rulesFileEcho } from './report.js';
import { sweepJumps } from './save.js';

export interface RunOutcome {
  /** Exit status; -1 when the command could not be started (then `error` says why). */
  code: number;
  error?: string;
  /** The command's stderr (trimmed), when it wrote any; quoted in failure messages. */
  stderr?: string;
}

/** Runs external commands. Implementations never reject; failures come back as outcomes. */
export interface Runner {
  /** Runs a command; its stdout is copied to the output, its stderr too unless `quiet`. */
  run(cmd: string, args: readonly string[], opts: { quiet?: boolean; input?: string }): Promise<RunOutcome>;
  /** Runs a read-only command (no echo, nothing printed) and returns its stdout. */
  read(cmd: string, args: readonly string[]): Promise<RunOutcome & { stdout: string }>;
}

/** Where rules files live. Dry run uses a store that only makes up names. */
export interface RulesFileStore {
  /** Creates a new empty file `<dir>/<pattern><9 random digits>` (Go's ioutil.TempFile) and returns its path. */
  create(pattern: string): Promise<string>;
  write(file: string, contents: string): Promise<void>;
  remove(file: string): Promise<void>;
}

type Out = Pick<Writable, 'write'>;

export interface ExecutorIO {
  out: Out;
  runner: Runner;
  files: RulesFileStore;
  /** Nanoseconds since the epoch, for rules file names (`iptables-rules-<ns>.txt…`). */
  now: () => bigint;
  /** True in dry run: the live tables are not read (no sweep). */
  dryRun: boolean;
}

/**
 * Runs the real binaries through execa (found on PATH, like Go's exec.Command). Output is
 * collected and copied out when the command ends, stdout first; stderr is also kept in
 * the outcome so a failure can quote it.
 */
export function realRunner(out: Out, err: Out, signal?: AbortSignal): Runner {
  const exec = async (cmd: string, args: readonly string[], input?: string): Promise<RunOutcome & { stdout: Buffer; stderrBytes: Buffer }> => {
    const r = await execa(cmd, [...args], {
      reject: false,
      encoding: 'buffer',
      stripFinalNewline: false,
      ...(input !== undefined ? { input } : { stdin: 'ignore' as const }),
      ...(signal ? { cancelSignal: signal } : {}),
    });
    const stdout = Buffer.from(r.stdout ?? new Uint8Array());
    const stderrBytes = Buffer.from(r.stderr ?? new Uint8Array());
    const stderr = stderrBytes.toString('utf8').trim();
    const withStderr = stderr !== '' ? { stderr } : {};
    if (r.exitCode !== undefined && !r.isCanceled) return { code: r.exitCode, ...withStderr, stdout, stderrBytes };
    const e = r as unknown as { code?: string; signal?: string; isCanceled?: boolean; originalMessage?: string };
    const error =
      e.code === 'ENOENT'
        ? `executable file "${cmd}" not found in $PATH`
        : e.isCanceled
          ? 'cancelled'
          : e.signal
            ? `killed by ${e.signal}`
            : (e.originalMessage ?? 'could not start');
    return { code: e.signal ? 128 : -1, error, ...withStderr, stdout, stderrBytes };
  };
  return {
    run: async (cmd, args, opts) => {
      const { stdout, stderrBytes, ...o } = await exec(cmd, args, opts.input);
      if (stdout.length > 0) out.write(stdout);
      if (!opts.quiet && stderrBytes.length > 0) err.write(stderrBytes);
      return o;
    },
    read: async (cmd, args) => {
      const { stdout, stderrBytes: _ignored, ...o } = await exec(cmd, args);
      return { ...o, stdout: stdout.toString('utf8') };
    },
  };
}

/** Dry run: nothing runs; every command "succeeds". */
export const dryRunRunner: Runner = {
  run: async () => ({ code: 0 }),
  read: async () => ({ code: 0, stdout: '' }),
};

function tempName(dir: string, pattern: string): string {
  // Go's nextRandom: 9 decimal digits appended to the pattern.
  return path.join(dir, `${pattern}${String(1e9 + randomInt(1e9)).slice(1)}`);
}

/** Real rules files in `dir` (the OS temp dir, like Go's os.TempDir()), mode 0600, created exclusively. */
export function tempFileStore(dir: string): RulesFileStore {
  return {
    async create(pattern) {
      for (let attempt = 0; ; attempt++) {
        const file = tempName(dir, pattern);
        try {
          const fh = await open(file, 'wx', 0o600);
          await fh.close();
          return file;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 100) throw e;
        }
      }
    },
    write: (file, contents) => writeFile(file, contents),
    remove: (file) => rm(file, { force: true }),
  };
}

/** Dry run: names only, nothing written. */
export function dryRunFileStore(dir: string): RulesFileStore {
  return { create: async (pattern) => tempName(dir, pattern), write: async () => {}, remove: async () => {} };
}

function describeCommand(c: HostCommand): string {
  return `${c.cmd} ${c.args.join(' ')}`.trimEnd();
}

/** `<command>: exit status N: <stderr>` (or why it could not run). */
export function failureMessage(command: string, outcome: RunOutcome): string {
  const why = outcome.code === -1 ? (outcome.error ?? 'could not start') : `exit status ${outcome.code}${outcome.error ? ` (${outcome.error})` : ''}`;
  return `${command}: ${why}${outcome.stderr ? `: ${outcome.stderr}` : ''}`;
}

/** Echoes and runs one command, applying its failure policy. */
export async function runStep(c: HostCommand, io: ExecutorIO): Promise<void> {
  io.out.write(commandEcho(c.cmd, c.args));
  const outcome = await io.runner.run(c.cmd, c.args, { quiet: c.quiet ?? false });
  if (outcome.code === 0) return;
  if (c.onFailure === 'ignore') return;
  if (c.onFailure === 'fallback' && c.fallback) {
    await runStep(c.fallback, io);
    return;
  }
  throw new AgentError('IPTABLES_FAILED', failureMessage(describeCommand(c), outcome), { exitCode: 1 });
}

async function restore(bin: 'iptables-restore' | 'ip6tables-restore', pattern: string, contents: string, io: ExecutorIO): Promise<void> {
  const file = await io.files.create(pattern);
  try {
    io.out.write(rulesFileEcho(file, contents));
    await io.files.write(file, contents);
    // --noflush: add to the tables, never wipe what others put there.
    await runStep({ cmd: bin, args: ['--noflush', file], onFailure: 'fail' }, io);
  } finally {
    await io.files.remove(file);
  }
}

/** Applies `plan` (see the module comment for the sequence). Throws IPTABLES_FAILED after the saves. */
export async function applyCapture(
  cfg: Readonly<IptablesConfig>,
  plan: CapturePlan,
  io: ExecutorIO,
  opts: { alreadyApplied?: boolean } = {},
): Promise<void> {
  let failure: unknown;
  // Every rule already in place (the caller checked): only the saves run.
  if (!opts.alreadyApplied) {
    try {
      for (const c of plan.hostCommands) await runStep(c, io);
      if (cfg.restoreFormat) {
        await restore('iptables-restore', `iptables-rules-${io.now()}.txt`, toRestoreText(plan.v4), io);
        await restore('ip6tables-restore', `ip6tables-rules-${io.now()}.txt`, toRestoreText(plan.v6), io);
      } else {
        for (const c of [...toCommands('iptables', plan.v4), ...toCommands('ip6tables', plan.v6)]) await runStep(c, io);
      }
    } catch (e) {
      failure = e;
    }
  }
  await runStep({ cmd: 'iptables-save', args: [], onFailure: 'ignore' }, io);
  if (cfg.enableInboundIPv6) await runStep({ cmd: 'ip6tables-save', args: [], onFailure: 'ignore' }, io);
  if (failure !== undefined) throw failure;
}

/**
 * Removes what istio-iptables creates for `cfg` (and any other jump into an Istio chain
 * found in the live tables), then prints `iptables-save` and `ip6tables-save`. Never throws
 * for a missing rule, chain or binary.
 */
export async function cleanupCapture(cfg: Readonly<IptablesConfig>, io: ExecutorIO): Promise<void> {
  const plan = buildCleanupPlan(cfg);
  for (const d of plan.deletes) {
    for (const c of d.ruleDeletes) await runStep(c, io);
    if (!io.dryRun) {
      const state = await io.runner.read(`${d.bin}-save`, []);
      if (state.code === 0) for (const c of sweepJumps(d.bin, state.stdout)) await runStep(c, io);
    }
    for (const c of d.chainDeletes) await runStep(c, io);
  }
  for (const c of plan.hostCommands) await runStep(c, io);
  for (const save of ['iptables-save', 'ip6tables-save']) await runStep({ cmd: save, args: [], onFailure: 'ignore' }, io);
}
