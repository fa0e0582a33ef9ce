import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { watch } from 'chokidar';
import { createLogger } from '../../src/log.js';
import { PodInfoWatcher, type PodInfo } from '../../src/podinfo/watcher.js';
import { REPO_ROOT } from '../support/agent-process.js';
import { kubeletWrite, podInfoText } from '../support/kubelet-volume.js';

const log = createLogger({ outputLevel: 'none' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'podinfo-'));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

interface Harness {
  watcher: PodInfoWatcher;
  changes: PodInfo[];
  counters: { reloads: number; errors: number };
  next: (n: number, timeoutMs?: number) => Promise<PodInfo>;
}

async function watchDir(dir: string, initial: PodInfo): Promise<Harness> {
  const changes: PodInfo[] = [];
  const waiters: Array<() => void> = [];
  const counters = { reloads: 0, errors: 0 };
  const watcher = await PodInfoWatcher.start({
    dir,
    log,
    initial,
    onChange: (info) => {
      changes.push(info);
      for (const w of waiters.splice(0)) w();
    },
    metrics: { reload: () => counters.reloads++, error: () => counters.errors++ },
  });
  cleanups.push(() => watcher.close());
  const next = (n: number, timeoutMs = 5000) =>
    new Promise<PodInfo>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no change #${n} within ${timeoutMs}ms (have ${changes.length})`)), timeoutMs);
      const check = () => {
        if (changes.length >= n) {
          clearTimeout(timer);
          resolve(changes[n - 1] as PodInfo);
        } else waiters.push(check);
      };
      check();
    });
  return { watcher, changes, counters, next };
}

describe('podinfo watcher (SPEC §8)', () => {
  test('sees a kubelet atomic swap, repeatedly (the watch does not die after the first update)', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'jiuxi' }), annotations: podInfoText({ a: '1' }) });
    const h = await watchDir(dir, { labels: { app: 'jiuxi' }, annotations: { a: '1' } });
    kubeletWrite(dir, { labels: podInfoText({ app: 'jiuxi', version: 'v2' }), annotations: podInfoText({ a: '1' }) });
    expect((await h.next(1)).labels).toEqual({ app: 'jiuxi', version: 'v2' });
    kubeletWrite(dir, { labels: podInfoText({ app: 'jiuxi', version: 'v3' }), annotations: podInfoText({ a: '2' }) });
    const second = await h.next(2);
    expect(second).toEqual({ labels: { app: 'jiuxi', version: 'v3' }, annotations: { a: '2' } });
    expect(h.counters.reloads).toBe(2);
    // The old timestamped dirs are gone: the kubelet writer really swapped.
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('..2'))).toHaveLength(1);
  });

  test('a rewrite with identical content is not a change', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: '' });
    const h = await watchDir(dir, { labels: { app: 'x' }, annotations: {} });
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: '' });
    kubeletWrite(dir, { labels: podInfoText({ app: 'y' }), annotations: '' });
    expect((await h.next(1)).labels).toEqual({ app: 'y' });
    expect(h.changes).toHaveLength(1);
  });

  test('100 swaps in quick succession end on the final content with few reloads', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ n: '0' }), annotations: '' });
    const h = await watchDir(dir, { labels: { n: '0' }, annotations: {} });
    for (let i = 1; i <= 100; i++) kubeletWrite(dir, { labels: podInfoText({ n: String(i) }), annotations: '' });
    await h.next(1);
    // Wait until the final content is seen.
    for (let n = 1; h.watcher.info.labels.n !== '100'; n++) await h.next(n + 1);
    expect(h.watcher.info.labels).toEqual({ n: '100' });
    expect(h.counters.reloads).toBeLessThanOrEqual(10);
  });

  test('a malformed file keeps the last good content and counts an error', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: '' });
    const h = await watchDir(dir, { labels: { app: 'x' }, annotations: {} });
    kubeletWrite(dir, { labels: 'app=unquoted', annotations: podInfoText({ z: '1' }) });
    const change = await h.next(1);
    expect(change.labels).toEqual({ app: 'x' });
    expect(change.annotations).toEqual({ z: '1' });
    expect(h.counters.errors).toBeGreaterThanOrEqual(1);
  });

  test('a directory created later (its parent too) is watched once it appears (no periodic re-read)', async () => {
    const parent = tmpDir();
    const dir = path.join(parent, 'etc', 'pod');
    const h = await watchDir(dir, { labels: {}, annotations: {} });
    kubeletWrite(dir, { labels: podInfoText({ app: 'late' }), annotations: '' });
    expect((await h.next(1)).labels).toEqual({ app: 'late' });
    // Its files are watched, not just its appearance.
    kubeletWrite(dir, { labels: podInfoText({ app: 'late', v: '2' }), annotations: '' });
    expect((await h.next(2)).labels).toEqual({ app: 'late', v: '2' });
  });

  test('a directory removed and created again is watched again; missing files are empty maps', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: podInfoText({ a: '1' }) });
    const h = await watchDir(dir, { labels: { app: 'x' }, annotations: { a: '1' } });
    fs.rmSync(dir, { recursive: true });
    expect(await h.next(1)).toEqual({ labels: {}, annotations: {} });
    kubeletWrite(dir, { labels: podInfoText({ app: 'back' }), annotations: '' });
    expect((await h.next(2)).labels).toEqual({ app: 'back' });
    kubeletWrite(dir, { labels: podInfoText({ app: 'back', v: '2' }), annotations: '' });
    expect((await h.next(3)).labels).toEqual({ app: 'back', v: '2' });
  });

  test('a directory replaced (renamed away, a new one in its place) is watched again', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: '' });
    const h = await watchDir(dir, { labels: { app: 'x' }, annotations: {} });
    fs.renameSync(dir, `${dir}.old`);
    cleanups.push(() => fs.rmSync(`${dir}.old`, { recursive: true, force: true }));
    kubeletWrite(dir, { labels: podInfoText({ app: 'new' }), annotations: '' });
    expect((await h.next(1)).labels).toEqual({ app: 'new' });
    // The watch is on the new directory, not the renamed one.
    kubeletWrite(dir, { labels: podInfoText({ app: 'new', v: '2' }), annotations: '' });
    expect((await h.next(2)).labels).toEqual({ app: 'new', v: '2' });
  });

  test('a plain file written in place (no kubelet swap) is seen too', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'labels'), podInfoText({ app: 'x' }));
    const h = await watchDir(dir, { labels: { app: 'x' }, annotations: {} });
    fs.writeFileSync(path.join(dir, 'labels'), podInfoText({ app: 'y' }));
    expect((await h.next(1)).labels).toEqual({ app: 'y' });
    fs.writeFileSync(path.join(dir, 'annotations'), podInfoText({ b: '2' }));
    expect((await h.next(2)).annotations).toEqual({ b: '2' });
  });

  test('no callback after close, even with a re-read pending; close is idempotent; asyncDispose closes', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: '' });
    const h = await watchDir(dir, { labels: { app: 'x' }, annotations: {} });
    kubeletWrite(dir, { labels: podInfoText({ app: 'y' }), annotations: '' });
    await Promise.all([h.watcher.close(), h.watcher.close()]);
    await h.watcher.close();
    kubeletWrite(dir, { labels: podInfoText({ app: 'z' }), annotations: '' });
    h.watcher.reread();
    // Another watcher on the same directory sees a later swap: had the first one a callback
    // left, it would have run by then.
    const other = await watchDir(dir, { labels: { app: 'z' }, annotations: {} });
    kubeletWrite(dir, { labels: podInfoText({ app: 'w' }), annotations: '' });
    await other.next(1);
    expect(h.changes).toHaveLength(0);

    const disposed = await watchDir(dir, { labels: { app: 'w' }, annotations: {} });
    await disposed.watcher[Symbol.asyncDispose]();
    kubeletWrite(dir, { labels: podInfoText({ app: 'v' }), annotations: '' });
    await other.next(2);
    expect(disposed.changes).toHaveLength(0);
  });
});

/** inotify's watch limit is per user namespace (`/proc/sys/user/max_inotify_watches`): a child in its own namespace can set it to 0. */
const USERNS = spawnSync('unshare', ['-U', '-r', 'sh', '-c', 'echo 0 > /proc/sys/user/max_inotify_watches'], { encoding: 'utf8' });
const canLimitWatches = USERNS.status === 0;
if (!canLimitWatches) console.log(`SKIP podinfo watch-error test: cannot set inotify limits in a user namespace (${USERNS.error?.message ?? USERNS.stderr.trim()})`);

describe("chokidar's view of a kubelet swap (the watcher's options)", () => {
  test('with `..*` ignored, a swap is a `change` of each user-visible file (its symlink target was deleted and replaced)', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: podInfoText({ a: '1' }) });
    const w = watch(dir, { followSymlinks: false, depth: 0, ignored: (p: string) => path.dirname(p) === dir && path.basename(p).startsWith('..'), ignoreInitial: true, persistent: false });
    cleanups.push(() => w.close());
    const events: string[] = [];
    const seen: Array<() => void> = [];
    w.on('all', (event, p) => {
      events.push(`${event} ${path.relative(dir, p)}`);
      for (const f of seen.splice(0)) f();
    });
    await new Promise<void>((resolve) => w.once('ready', () => resolve()));
    kubeletWrite(dir, { labels: podInfoText({ app: 'y' }), annotations: podInfoText({ a: '1' }) });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`events so far: ${events.join(', ')}`)), 5000);
      const both = () => events.includes('change labels') && events.includes('change annotations');
      const check = () => (both() ? (clearTimeout(timer), resolve()) : seen.push(check));
      check();
    });
    // (chokidar may also report the two files as `add` once, just after it is ready.)
    expect([...new Set(events)].sort()).toEqual(expect.arrayContaining(['change annotations', 'change labels']));
    expect(events.filter((e) => !/^(add|change) (labels|annotations)$/.test(e))).toEqual([]);
  });
});

describe('podinfo watcher: watch errors', () => {
  (canLimitWatches ? test : test.skip)('a watch that fails (inotify limit reached) is re-created once it can be, and sees what changed meanwhile', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: '' });
    const dist = (f: string) => JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'dist', 'src', f)).href);
    const script = `
      import fs from 'node:fs';
      import readline from 'node:readline';
      const { PodInfoWatcher } = await import(${dist('podinfo/watcher.js')});
      const { createLogger } = await import(${dist('log.js')});
      const limit = '/proc/sys/user/max_inotify_watches';
      fs.writeFileSync(limit, '0');
      const w = await PodInfoWatcher.start({
        dir: process.argv[1], log: createLogger({}), initial: { labels: { app: 'x' }, annotations: {} },
        onChange: (info) => process.stdout.write('CHANGE ' + JSON.stringify(info.labels) + '\\n'),
      });
      process.stdout.write('STARTED\\n');
      readline.createInterface({ input: process.stdin }).on('line', async (line) => {
        if (line === 'raise') fs.writeFileSync(limit, '1000');
        if (line === 'close') { await w.close(); process.exit(0); }
      });`;
    const child = spawn('unshare', ['-U', '-r', process.execPath, '--input-type=module', '-e', script, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const waiters: Array<() => void> = [];
    const onData = (d: Buffer) => {
      out += d.toString();
      for (const w of waiters.splice(0)) w();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    const waitFor = (re: RegExp, timeoutMs = 15_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${re} within ${timeoutMs}ms; output:\n${out}`)), timeoutMs);
        const check = () => {
          if (re.test(out)) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      });

    await waitFor(/STARTED/);
    await waitFor(/podinfo watch error on .*ENOSPC.*re-creating the watch in \d+ms/);
    kubeletWrite(dir, { labels: podInfoText({ app: 'meanwhile' }), annotations: '' });
    child.stdin.write('raise\n');
    await waitFor(/CHANGE \{"app":"meanwhile"\}/);
    // The re-created watch is live: a later swap is seen as an event.
    kubeletWrite(dir, { labels: podInfoText({ app: 'later' }), annotations: '' });
    await waitFor(/CHANGE \{"app":"later"\}/);
    child.stdin.write('close\n');
    expect(await exited).toBe(0);
  }, 30_000);
});
