/**
 * Exec probe: runs a command (no shell) through execa in its own process group; exit status 0
 * passes. At the timeout the whole group is killed (SIGKILL), so a shell's children go too.
 * Resolves (never rejects) once the command and its output pipes are gone, with the command,
 * its exit code or signal, and the first `MAX_EXEC_OUTPUT` characters of its combined
 * stdout+stderr (as the kubelet's CombinedOutput); the rest of the output is drained unread.
 */
import { execa } from 'execa';

export const MAX_EXEC_OUTPUT = 1024;

export type ExecProbeOutcome =
  | { ok: true; command: string[] }
  | { ok: false; kind: 'timeout'; command: string[]; timeoutMs: number }
  | { ok: false; kind: 'spawn'; command: string[]; error: unknown }
  | { ok: false; kind: 'exit'; command: string[]; exitCode: number | undefined; signal: string | undefined; output: string };

export async function probeExec(command: readonly string[], timeoutMs: number): Promise<ExecProbeOutcome> {
  const cmd = [...command];
  const [file, ...args] = cmd;
  if (file === undefined) return { ok: false, kind: 'spawn', command: cmd, error: new Error('exec probe has no command') };
  const child = execa(file, args, { stdin: 'ignore', all: true, buffer: false, reject: false, detached: true });
  let output = '';
  child.all?.setEncoding('utf8');
  child.all?.on('data', (d: string) => {
    if (output.length < MAX_EXEC_OUTPUT) output += d;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group is already gone
    }
  }, timeoutMs);
  try {
    const result = await child;
    if (timedOut) return { ok: false, kind: 'timeout', command: cmd, timeoutMs };
    if (result.exitCode === 0 && !result.failed) return { ok: true, command: cmd };
    if (result.exitCode === undefined && result.signal === undefined) return { ok: false, kind: 'spawn', command: cmd, error: result.cause ?? new Error(result.shortMessage) };
    return { ok: false, kind: 'exit', command: cmd, exitCode: result.exitCode, signal: result.signal, output: output.slice(0, MAX_EXEC_OUTPUT) };
  } finally {
    clearTimeout(timer);
  }
}
