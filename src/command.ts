/**
 * What every subcommand receives. Commands never touch `process` directly: the
 * CLI passes the environment, the working directory and the output streams, so
 * tests can run commands in-process with their own values.
 */
import type { Writable } from 'node:stream';

export interface CommandContext {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  stdout: Writable;
  stderr: Writable;
  /** Aborted when the process is asked to stop (first SIGTERM/SIGINT). */
  signal?: AbortSignal;
}

/** A subcommand: its argv (after the command name) → exit status. */
export type Command = (argv: string[], ctx: CommandContext) => Promise<number>;
