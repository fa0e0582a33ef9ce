/**
 * Watches the downward-API podinfo directory (SPEC §8) with chokidar: the DIRECTORY, not
 * recursive (`depth: 0`), symlinks not followed, the kubelet's own `..data`/`..<timestamp>`
 * entries ignored. A kubelet update (new timestamped dir, `..data` renamed over, old dir
 * removed) reaches us as a `change` of `labels`/`annotations`: chokidar's per-file watch
 * follows the user-visible symlink to its target, sees that target deleted and re-attaches
 * to the new one. Any event schedules one re-read of both files BY PATH `debounceMs` after the
 * last event; only a real content change is acted on.
 *
 * A directory that does not exist yet is waited for by watching its nearest existing ancestor
 * (only the path component towards it); once it appears the watch moves to it, and back to the
 * ancestor if it is removed; one replaced by another (a re-read finds a new inode) is watched
 * anew. A watch error (e.g. the inotify watch limit) closes the watch and
 * re-creates it with backoff (1 s doubling to 30 s), re-reading after each attempt. There is no
 * periodic re-read otherwise. A file that does not parse keeps its last good content (counted
 * as an error); a missing file is an empty map.
 *
 * `close()` is idempotent; no callback runs after it resolves.
 */
import { watch, type FSWatcher } from 'chokidar';
import fs from 'node:fs';
import path from 'node:path';
import { Backoff } from '../lifecycle/backoff.js';
import type { Logger } from '../log.js';
import { parsePodInfoFile } from './parse.js';

export interface PodInfo {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface PodInfoWatcherOptions {
  dir: string;
  log: Logger;
  /** The content the config was built from (so the first read does not count as a change). */
  initial: PodInfo;
  onChange: (info: PodInfo, changed: Array<keyof PodInfo>) => void;
  /** Quiet time after the last event before both files are re-read (default 100 ms). */
  debounceMs?: number;
  metrics?: { reload(): void; error(): void };
}

const FILES: Array<keyof PodInfo> = ['labels', 'annotations'];

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}

function inode(p: string): number | undefined {
  try {
    return fs.statSync(p).ino;
  } catch {
    return undefined;
  }
}

export class PodInfoWatcher {
  private current: PodInfo;
  private watcher: FSWatcher | undefined;
  /** The inode of the directory the watch is on (undefined while on an ancestor). */
  private watchedIno: number | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly dir: string;
  private readonly debounceMs: number;
  private readonly backoff = new Backoff({ initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: 0.1 });

  private constructor(private readonly options: PodInfoWatcherOptions) {
    this.current = { labels: { ...options.initial.labels }, annotations: { ...options.initial.annotations } };
    this.dir = path.resolve(options.dir);
    this.debounceMs = options.debounceMs ?? 100;
  }

  /** Resolves once the watch is set (events from then on are seen). */
  static async start(options: PodInfoWatcherOptions): Promise<PodInfoWatcher> {
    const w = new PodInfoWatcher(options);
    if (!fs.existsSync(w.dir)) options.log.info(`podinfo directory ${w.dir} does not exist; waiting for it`);
    await w.attempt();
    return w;
  }

  get info(): PodInfo {
    return this.current;
  }

  /** The directory if it exists, else its nearest existing ancestor (watched for it to appear). */
  private target(): string {
    let t = this.dir;
    while (!fs.existsSync(t)) {
      const up = path.dirname(t);
      if (up === t) break;
      t = up;
    }
    return t;
  }

  private async watchDir(): Promise<void> {
    if (this.closed) return;
    const target = this.target();
    const own = target === this.dir;
    this.watchedIno = undefined;
    // In the directory: everything but the kubelet's own entries (`..data`, `..data_tmp`,
    // `..<timestamp>`). In an ancestor: only the next path component towards it.
    const toward = own ? '' : path.join(target, path.relative(target, this.dir).split(path.sep)[0] as string);
    const ignored = own
      ? (p: string) => path.dirname(p) === this.dir && path.basename(p).startsWith('..')
      : (p: string) => path.dirname(p) === target && p !== toward;
    const watcher = watch(target, { followSymlinks: false, depth: 0, ignored, ignoreInitial: true, persistent: false });
    this.watcher = watcher;
    watcher.on('all', (event, p) => {
      if (this.watcher !== watcher) return;
      // The directory appeared (re-target from the ancestor to it) or went away (and back to the ancestor).
      if (!own || (event === 'unlinkDir' && path.resolve(p) === this.dir)) void this.rewatch();
      this.schedule();
    });
    watcher.on('error', (err) => {
      if (this.watcher !== watcher || this.closed) return;
      this.watcher = undefined;
      void watcher.close();
      this.retryLater(target, err as Error);
    });
    // 'ready' may never come for a watch that failed as it was set up.
    await new Promise<void>((resolve) => {
      watcher.once('ready', () => resolve());
      watcher.once('error', () => resolve());
    });
    if (this.watcher === watcher) {
      this.backoff.reset();
      if (own) this.watchedIno = inode(this.dir);
      // It appeared or went away while the watch was being set up.
      if (own !== fs.existsSync(this.dir)) void this.rewatch();
    }
    // A change that landed between reading the config (or the last watch) and this watch.
    this.schedule();
  }

  /** Moves the watch (to the directory or its ancestor). */
  private async rewatch(): Promise<void> {
    const old = this.watcher;
    if (!old) return; // closed, or a retry is already scheduled
    this.watcher = undefined;
    await old.close().catch(() => undefined);
    await this.attempt();
  }

  private async attempt(): Promise<void> {
    try {
      await this.watchDir();
    } catch (err) {
      this.retryLater(this.dir, err as Error);
    }
  }

  /** After a watch error: no watch until a retry, with backoff, re-creates it; re-read meanwhile. */
  private retryLater(target: string, err: Error): void {
    if (this.closed) return;
    const delay = this.backoff.next();
    this.options.log.warn(`podinfo watch error on ${target}: ${err.message}; re-creating the watch in ${delay}ms`);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.attempt(), delay);
    this.retry.unref();
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.reread(), this.debounceMs);
  }

  /** Re-reads both files; acts only on a real change. */
  reread(): void {
    if (this.closed) return;
    // The directory was replaced (renamed away, a new one in its place): the watch is on the old one.
    if (this.watcher && this.watchedIno !== undefined && inode(this.dir) !== this.watchedIno) void this.rewatch();
    const next: PodInfo = { labels: this.current.labels, annotations: this.current.annotations };
    const changed: Array<keyof PodInfo> = [];
    for (const name of FILES) {
      const file = path.join(this.dir, name);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') {
          this.options.log.warn(`podinfo ${name}: cannot read ${file}: ${(err as Error).message}; keeping the last good content`);
          this.options.metrics?.error();
          continue;
        }
        text = '';
      }
      const parsed = parsePodInfoFile(text);
      if (!parsed.ok) {
        this.options.log.warn(`podinfo ${name}: ignoring malformed file ${file}: ${parsed.error}; keeping the last good content`);
        this.options.metrics?.error();
        continue;
      }
      const values = Object.fromEntries(parsed.values);
      if (!sameMap(values, this.current[name])) {
        next[name] = values;
        changed.push(name);
      }
    }
    if (changed.length === 0) return;
    this.current = next;
    this.options.metrics?.reload();
    this.options.log.info(`podinfo changed: ${changed.join(', ')}`);
    this.options.onChange(next, changed);
  }

  async close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    clearTimeout(this.debounce);
    clearTimeout(this.retry);
    const watcher = this.watcher;
    this.watcher = undefined;
    this.closing = (async () => {
      await watcher?.close();
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
