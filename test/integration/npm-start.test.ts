/**
 * `npm start` on a fresh clone (issue 17): `git clone` of this repository's committed HEAD into a
 * temp dir (uncommitted changes are not part of it), with node_modules a symlink to this
 * checkout's install (no network install in the test: `npm ci` is what a user runs first), then
 * `npm start -- --free-ports` in its own process group, as a terminal would run it. The demo
 * builds dist/ (the clone has none), runs the agent with the Envoy double and the demo app, and
 * prints its URLs; the test waits for ready, scrapes the merged metrics (the agent's, Envoy's and
 * the demo app's), sends SIGINT to the group (Ctrl-C) and expects exit 0 and no process left.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../support/agent-process.js';
import { processesWithCwd } from '../support/proc.js';
import { httpGet } from '../support/status-page.js';

const clone = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-clone-'));
let groupLeader: number | undefined;

/** Live (non-zombie) processes in process group `pgid`. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

afterAll(() => {
  if (groupLeader !== undefined) {
    try {
      process.kill(-groupLeader, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const pid of [...processesWithCwd(clone), ...(fs.existsSync(path.join(clone, '.demo')) ? processesWithCwd(path.join(clone, '.demo')) : [])]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  fs.rmSync(clone, { recursive: true, force: true });
});

describe('npm start on a fresh clone', () => {
  test('builds, runs the demo, serves merged metrics with the demo app, Ctrl-C exits 0 with no process left', async () => {
    const head = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    execFileSync('git', ['clone', '--quiet', '--no-checkout', REPO_ROOT, clone], { stdio: 'pipe' });
    execFileSync('git', ['-C', clone, 'checkout', '--quiet', head], { stdio: 'pipe' });
    expect(fs.existsSync(path.join(clone, 'dist'))).toBe(false);
    fs.symlinkSync(fs.realpathSync(path.join(REPO_ROOT, 'node_modules')), path.join(clone, 'node_modules'));

    const npm = spawn('npm', ['start', '--', '--free-ports'], {
      cwd: clone,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', npm_config_update_notifier: 'false', npm_config_offline: 'true' },
    });
    groupLeader = npm.pid as number;
    let out = '';
    npm.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    npm.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => npm.once('exit', (code, signal) => resolve({ code, signal })));

    const deadline = Date.now() + 150_000;
    let port: number | undefined;
    while (port === undefined) {
      const m = /status page +http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) port = Number(m[1]);
      else if (npm.exitCode !== null || Date.now() > deadline) throw new Error(`npm start never became ready:\n${out.slice(-4000)}`);
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(out).toContain('demo: building dist/ (tsc, first run)');
    expect(fs.existsSync(path.join(clone, 'dist', 'src', 'cli.js'))).toBe(true);
    // .demo/ and dist/ are git-ignored (the node_modules symlink is this test's, not the demo's).
    expect(execFileSync('git', ['-C', clone, 'status', '--porcelain'], { encoding: 'utf8' }).split('\n').filter((l) => l !== '' && l !== '?? node_modules')).toEqual([]);

    expect((await httpGet(port, '/healthz/ready')).status).toBe(200);
    const metrics = await httpGet(port, '/stats/prometheus');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^istio_agent_scrapes_total \d+$/m);
    expect(metrics.body).toMatch(/^envoy_server_live\{?.*\}? 1$/m);
    expect(metrics.body).toMatch(/^demo_app_requests_total \d+$/m);
    const page = await httpGet(port, '/');
    expect(page.body).toContain('<title>pilot-agent status</title>');

    const agentPids = processesWithCwd(path.join(clone, '.demo'));
    expect(agentPids.length).toBeGreaterThanOrEqual(2); // the agent and the double
    process.kill(-groupLeader, 'SIGINT');
    const exit = await Promise.race([exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`npm start did not exit:\n${out.slice(-3000)}`)), 30_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(out).toContain('demo: agent exited 0');
    expect(groupMembers(groupLeader)).toEqual([]);
    expect(processesWithCwd(path.join(clone, '.demo'))).toEqual([]);
    expect(processesWithCwd(clone)).toEqual([]);
    groupLeader = undefined;
  }, 200_000);
});
