/**
 * The launcher as the image runs it: exec'd directly (the kernel reads its `#!/usr/bin/env -S`
 * line), node found on PATH, with the agent's memory flags in effect.
 */
import { describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI } from '../support/agent-process.js';
import { freePort } from '../support/ports.js';

describe('bin/pilot-agent.js exec’d directly', () => {
  test('runs node from PATH with --max-semi-space-size and --expose-gc, then the command', async () => {
    const port = await freePort(); // nothing listens: `wait` keeps polling until we stop it
    const child = spawn(CLI, ['wait', `--url=http://127.0.0.1:${port}/healthz/ready`, '--timeoutSeconds=30', '--periodMillis=50'], {
      env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // `env` execs node in the same process: poll its command line until node is running.
      const cmdline = () => fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const deadline = Date.now() + 15_000;
      while (path.basename(cmdline()[0] ?? '') !== 'node' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      const argv = cmdline();
      expect(path.basename(argv[0] as string)).toBe('node');
      expect(argv.slice(1, 3)).toEqual(['--max-semi-space-size=2', '--expose-gc']);
      expect(argv[3]).toBe(CLI);
      expect(argv.slice(4, 5)).toEqual(['wait']);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
