import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../src/log.js';
import { PodInfoWatcher, type PodInfo } from '../../src/podinfo/watcher.js';
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

async function watchDir(dir: string, initial: PodInfo, opts: { pollIntervalMs?: number } = {}): Promise<Harness> {
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
    ...opts,
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

  test('the periodic re-read catches a change with no event (directory created later)', async () => {
    const parent = tmpDir();
    const dir = path.join(parent, 'pod');
    const h = await watchDir(dir, { labels: {}, annotations: {} }, { pollIntervalMs: 100 });
    kubeletWrite(dir, { labels: podInfoText({ app: 'late' }), annotations: '' });
    expect((await h.next(1)).labels).toEqual({ app: 'late' });
  });

  test('no callback after close', async () => {
    const dir = tmpDir();
    kubeletWrite(dir, { labels: podInfoText({ app: 'x' }), annotations: '' });
    const h = await watchDir(dir, { labels: { app: 'x' }, annotations: {} });
    await h.watcher.close();
    kubeletWrite(dir, { labels: podInfoText({ app: 'y' }), annotations: '' });
    h.watcher.reread();
    expect(h.changes).toHaveLength(0);
  });
});
