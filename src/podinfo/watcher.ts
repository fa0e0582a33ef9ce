/**
 * Watches the downward-API podinfo directory (SPEC §8). The kubelet swaps a `..data`
 * symlink atomically, so a watch on `labels` itself dies after one update: we watch the
 * directory (chokidar, symlinks not followed, any raw event counts), re-read both files by
 * path `debounceMs` after the last event, and act only when the content really changed. A
 * slow periodic re-read covers missed events. A file that does not parse keeps its last good
 * content (counted as an error); a missing file is an empty map.
 *
 * `close()` is idempotent; no callback runs after it resolves.
 */
import fs from 'node:fs';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
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
  private watcher: FSWatcher | undefined;
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
      if (!this.watcher && fs.existsSync(dir)) void this.watchDir();
      this.reread('poll');
    }, pollMs);
    this.poll.unref();
    if (!fs.existsSync(dir)) {
      this.options.log.info(`podinfo directory ${dir} does not exist; checking every ${pollMs}ms`);
      return;
    }
    await this.watchDir();
  }

  private async watchDir(): Promise<void> {
    const { dir } = this.options;
    if (this.closed || this.watcher) return;
    const watcher = watch(dir, {
      followSymlinks: false,
      ignoreInitial: true,
      depth: 0,
      // Do not descend into the kubelet's timestamped directories; their events still arrive as raw events.
      ignored: (p: string) => p !== dir && path.basename(p).startsWith('..'),
    });
    this.watcher = watcher;
    const trigger = () => this.schedule();
    watcher.on('all', trigger);
    watcher.on('raw', trigger);
    watcher.on('error', (err) => this.options.log.warn(`podinfo watch error: ${(err as Error).message}`));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    if (this.closed) await watcher.close();
    // A change that landed between reading the config and the watch being ready.
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
    await this.watcher?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
