/**
 * The exec prober (src/probe/exec.ts, execa) against real processes: exit status, combined
 * output, spawn failures, and the timeout killing the command's whole process group.
 */
import { describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAX_EXEC_OUTPUT, probeExec } from '../../src/probe/exec.js';
import { execMessage, runCheck } from '../../src/xds/health-checks.js';
import { processState } from '../support/proc.js';
import { waitUntil } from '../support/envoy-double-harness.js';

describe('probeExec', () => {
  test('exit 0 passes; a failure carries the command, exit code and combined output (stderr included)', async () => {
    expect(await probeExec(['true'], 2000)).toEqual({ ok: true, command: ['true'] });
    const failed = await probeExec(['sh', '-c', 'echo out; echo err >&2; exit 7'], 2000);
    expect(failed).toMatchObject({ ok: false, kind: 'exit', command: ['sh', '-c', 'echo out; echo err >&2; exit 7'], exitCode: 7, signal: undefined });
    expect((failed as { output: string }).output.split('\n').sort()).toEqual(['', 'err', 'out']);
    expect(execMessage(failed)).toBe('exec probe sh -c echo out; echo err >&2; exit 7 failed with exit status 7: out');
    // The xDS health report's message (SPEC §7.2 error_detail) for a readinessProbe exec check.
    expect(await runCheck({ kind: 'exec', command: ['sh', '-c', 'echo not ready >&2; exit 3'] }, 2000)).toBe('exec probe sh -c echo not ready >&2; exit 3 failed with exit status 3: not ready');
    expect(await runCheck({ kind: 'exec', command: ['true'] }, 2000)).toBeUndefined();
  });

  test('killed by a signal: the signal is named', async () => {
    const r = await probeExec(['sh', '-c', 'kill -TERM $$'], 2000);
    expect(r).toMatchObject({ ok: false, kind: 'exit', signal: 'SIGTERM' });
    expect(execMessage(r)).toBe('exec probe sh -c kill -TERM $$ failed with signal SIGTERM');
  });

  test('a command that cannot start names the command and the cause', async () => {
    const r = await probeExec(['/nonexistent/probe', '--x'], 2000);
    expect(r).toMatchObject({ ok: false, kind: 'spawn' });
    expect(execMessage(r)).toMatch(/^exec probe \/nonexistent\/probe --x failed: .*ENOENT/);
    expect(execMessage(await probeExec([], 2000))).toBe('exec probe has no command');
  });

  test('a chatty command is not killed for its output; only the first bytes are kept', async () => {
    const ok = await probeExec(['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x'], 5000);
    expect(ok).toEqual({ ok: true, command: expect.any(Array) });
    const bad = await probeExec(['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" y; exit 1'], 5000);
    expect((bad as { output: string }).output).toBe('y'.repeat(MAX_EXEC_OUTPUT));
  });

  test('at the timeout the whole process group is killed, grandchildren included', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-exec-'));
    try {
      const pidFile = path.join(dir, 'pid');
      const r = await probeExec(['sh', '-c', `sleep 30 & echo $! > ${pidFile}; wait`], 300);
      expect(r).toEqual({ ok: false, kind: 'timeout', command: expect.any(Array), timeoutMs: 300 });
      expect(execMessage(r)).toBe(`exec probe sh -c sleep 30 & echo $! > ${pidFile}; wait timed out after 300ms`);
      const grandchild = Number(fs.readFileSync(pidFile, 'utf8'));
      expect(grandchild).toBeGreaterThan(0);
      // Reaped by init once killed: gone, or at most a zombie for a moment.
      await waitUntil('the backgrounded sleep to die', () => {
        const state = processState(grandchild);
        return state === undefined || state === 'Z';
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
