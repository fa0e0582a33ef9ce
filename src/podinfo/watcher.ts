/**
 * Watches the downward-API podinfo directory (SPEC §8). The kubelet swaps a `..data`
 * symlink atomically, so a watch on `labels` itself dies after one update: we watch the
 * directory itself (`fs.watch`, one inotify watch, not recursive: any event on any entry
 * counts, the kubelet's `..data` swap included), re-read both files by path `debounceMs`
 * after the last event, and act only when the content really changed. A slow periodic
 * re-read covers missed events, and re-creates the watch if the directory appears late or
 * the watch failed (e.g. the directory was replaced). A file that does not parse keeps its last good
 * content (counted as an error); a missing file is an empty map.
 *
 * `close()` is idempotent; no callback runs after it resolves.
 */
import fs from 'node:fs';
import path from 'node:path';
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
  debounceMs?: number;
  pollIntervalMs?: number;
  metrics?: { reload(): void; error(): void };
}

const FILES: Array<keyof PodInfo> = ['labels', 'annotations'];

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}

export class PodInfoWatcher {
  private current: PodInfo;
  private watcher: fs.FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly debounceMs: number;

  private constructor(private readonly options: PodInfoWatcherOptions) {
    this.current = { labels: { ...options.initial.labels }, annotations: { ...options.initial.annotations } };
    this.debounceMs = options.debounceMs ?? 100;
  }

  static async start(options: PodInfoWatcherOptions): Promise<PodInfoWatcher> {
    const w = new PodInfoWatcher(options);
    await w.begin();
    return w;
  }

  get info(): PodInfo {
    return this.current;
  }

  private async begin(): Promise<void> {
    const { dir } = this.options;
    const pollMs = this.options.pollIntervalMs ?? 30_000;
    this.poll = setInterval(() => {
      if (!this.watcher && fs.existsSync(dir)) this.watchDir();
      this.reread('poll');
    }, pollMs);
    this.poll.unref();
    if (!fs.existsSync(dir)) {
      this.options.log.info(`podinfo directory ${dir} does not exist; checking every ${pollMs}ms`);
      return;
    }
    this.watchDir();
  }

  private watchDir(): void {
    const { dir, log } = this.options;
    if (this.closed || this.watcher) return;
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(dir, { persistent: false }, () => this.schedule());
    } catch (err) {
      log.warn(`podinfo: cannot watch ${dir}: ${(err as Error).message}; re-reading it periodically`);
      return;
    }
    this.watcher = watcher;
    watcher.on('error', (err) => {
      // The watch is dead (e.g. the directory went away): drop it; the periodic re-read re-creates it.
      log.warn(`podinfo watch error: ${err.message}`);
      watcher.close();
      if (this.watcher === watcher) this.watcher = undefined;
      this.schedule();
    });
    // A change that landed between reading the config and the watch being set.
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.reread('watch'), this.debounceMs);
  }

  /** Re-reads both files; acts only on a real change. */
  reread(_source: 'watch' | 'poll' = 'watch'): void {
    if (this.closed) return;
    const next: PodInfo = { labels: this.current.labels, annotations: this.current.annotations };
    const changed: Array<keyof PodInfo> = [];
    for (const name of FILES) {
      const file = path.join(this.options.dir, name);
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
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    this.watcher?.close();
    this.watcher = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
