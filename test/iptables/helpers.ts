/**
 * Shared test helpers for the iptables tests: golden files, in-process command runs with
 * captured output, and the seed's istio-init log (copied into golden/seed/, never regenerated).
 */
import { expect } from '@jest/globals';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Command } from '../../src/command.js';
import { AgentError, describeError } from '../../src/errors.js';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const GOLDEN_DIR = path.join(HERE, 'golden');
export const REPO_ROOT = path.resolve(HERE, '..', '..');

/** The seed's args for istio-init (SPEC §9). */
export const SEED_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];

/** The seed's istio-init log: from `Environment:` to the end of its iptables-save dump. */
export function seedLog(): string {
  return readFileSync(path.join(GOLDEN_DIR, 'seed', 'istio-init.log'), 'utf8');
}

/** The rules file istio-init wrote for the seed's args (between the echo line and the blank line). */
export function seedRulesFile(): string {
  const log = seedLog();
  const start = log.indexOf('* nat\n');
  const end = log.indexOf('COMMIT\n', start) + 'COMMIT\n'.length;
  return log.slice(start, end);
}

/** The seed's `iptables-save` dump (after the `iptables-save ` echo line). */
export function seedSaveDump(): string {
  const log = seedLog();
  return log.slice(log.indexOf('iptables-save \n') + 'iptables-save \n'.length);
}

/**
 * Temp rules file names differ on every run: `/tmp/iptables-rules-<ns>.txt<9 digits>`. They
 * become a placeholder. A single space after a name at the end of a line goes with it: the
 * seed's copy of the log has one after its first name only (Go's Println, which 1.6 used for
 * both lines, prints none; the blog copy has a hand-inserted comment there).
 */
export function normalizeTempNames(s: string): string {
  return s.replace(/(\/ip6?tables-rules-)\d+\.txt\d+ ?$/gm, '$1<ns>.txt<random>');
}

/** Compares with golden/<name>; `UPDATE_GOLDEN=1` rewrites it instead. */
export function expectGolden(name: string, actual: string): void {
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) throw new Error(`golden file ${file} is missing: run with UPDATE_GOLDEN=1 and review the diff`);
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

export function capture() {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

export interface CommandRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a Command in-process; a thrown AgentError maps to its exit code like the CLI does. */
export async function runCommand(command: Command, argv: string[], env: Record<string, string | undefined> = {}): Promise<CommandRun> {
  const out = capture();
  const err = capture();
  let code: number;
  try {
    code = await command(argv, { env, cwd: process.cwd(), stdout: out.stream, stderr: err.stream });
  } catch (e) {
    if (!(e instanceof AgentError)) throw e;
    err.stream.write(`Error: ${describeError(e)}\n`);
    code = e.exitCode;
  }
  await new Promise((r) => setImmediate(r));
  return { code, stdout: out.text(), stderr: err.text() };
}
