/**
 * The launcher as the image runs it: exec'd directly (the kernel reads its `#!/usr/bin/env -S`
 * line), node found on PATH, with the agent's node flags in effect and the UTC Date formatting
 * installed; and the test harness runs the agent with exactly those flags.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, disposeTrackedAgents, startTrackedAgent } from '../support/agent-process.js';
import { LAUNCHER_NODE_FLAGS, parseLauncherFlags } from '../support/launcher.js';
import { freePort } from '../support/ports.js';

const cmdline = (pid: number): string[] => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);

afterEach(disposeTrackedAgents);

describe('bin/pilot-agent.js exec’d directly', () => {
  test('runs node from PATH with the flags of its #! line, then the command', async () => {
    const port = await freePort(); // nothing listens: `wait` keeps polling until we stop it
    const child = spawn(CLI, ['wait', `--url=http://127.0.0.1:${port}/healthz/ready`, '--timeoutSeconds=30', '--periodMillis=50'], {
      env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // `env` execs node in the same process: poll its command line until node is running.
      const deadline = Date.now() + 15_000;
      while (path.basename(cmdline(child.pid as number)[0] ?? '') !== 'node' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      const argv = cmdline(child.pid as number);
      expect(path.basename(argv[0] as string)).toBe('node');
      expect(LAUNCHER_NODE_FLAGS.length).toBeGreaterThan(0);
      expect(argv.slice(1, 1 + LAUNCHER_NODE_FLAGS.length)).toEqual(LAUNCHER_NODE_FLAGS);
      expect(argv[1 + LAUNCHER_NODE_FLAGS.length]).toBe(CLI);
      expect(argv.slice(2 + LAUNCHER_NODE_FLAGS.length, 3 + LAUNCHER_NODE_FLAGS.length)).toEqual(['wait']);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  test('installs the UTC Date formatting before the CLI runs', () => {
    // A preload records, as the process exits, whether Date.prototype.toISOString is V8's own.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-launcher-'));
    try {
      const out = path.join(dir, 'native.txt');
      const preload = path.join(dir, 'probe.cjs');
      fs.writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, String(/\\[native code\\]/.test(String(Date.prototype.toISOString)))));\n`);
      const r = spawnSync(CLI, ['version'], { env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, NODE_OPTIONS: `--require=${preload}` }, encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(fs.readFileSync(out, 'utf8')).toBe('false');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the test harness', () => {
  test('runs the agent with exactly the launcher’s node flags', async () => {
    const agent = await startTrackedAgent();
    const argv = cmdline(agent.pid);
    expect(argv[0]).toBe(process.execPath);
    expect(argv.slice(1, 1 + LAUNCHER_NODE_FLAGS.length)).toEqual(LAUNCHER_NODE_FLAGS);
    expect(argv[1 + LAUNCHER_NODE_FLAGS.length]).toBe(CLI);
    expect(argv[2 + LAUNCHER_NODE_FLAGS.length]).toBe('proxy');
  });

  test('reads the flags from the #! line, and names the expected form otherwise', () => {
    expect(parseLauncherFlags('#!/usr/bin/env -S node --a=1 --b')).toEqual(['--a=1', '--b']);
    expect(parseLauncherFlags('#!/usr/bin/env -S node')).toEqual([]);
    expect(() => parseLauncherFlags('#!/usr/bin/env node --a')).toThrow(/is not of the form "#!\/usr\/bin\/env -S node \[--flag\[=value\] …\]"/);
  });
});
