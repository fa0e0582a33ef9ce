/**
 * FileSecretStore: secrets read from files and kept fresh (Istio's file-backed SDS secrets:
 * `file-root:`/`file-cert:` names, the OS bundle, mounted workload certificates).
 *
 * Contract:
 * - `ensure(name, spec, source)` registers a secret the first time (later calls return the
 *   same entry), reads its files at once and starts watching their directories; it never
 *   throws. A read that fails (see file-load.ts) leaves the entry in error: logged once per
 *   distinct message with the path, counted in `istio_agent_num_file_secret_failures_total`.
 * - Watching (chokidar, one watcher per directory, depth 0, symlinks not followed): any event
 *   in a watched directory — a write, a plain rename over the file, the kubelet's `..data`
 *   symlink swap of a mounted Secret, a delete — re-reads the affected entries by path
 *   `debounceMs` after the last event. Listeners of `onChange` run only when the content that
 *   would be served really changed (compared byte for byte) and is valid; a file that becomes
 *   unreadable or invalid puts the entry in error and keeps its last good content (Envoy keeps
 *   the secret it has, as when Istio's generate fails), and it is served again once valid.
 *   A watcher error counts in `istio_agent_num_file_watcher_failures_total`.
 * - Entries in error are re-read every `retryMs` as well (missing directories, missed events).
 * - `whenWatching()` resolves once every watcher created so far has done its initial scan
 *   (a change before that may be missed); the log says `watching <dir> for <names>`.
 * - `close()` (idempotent) stops the watchers and timers; no listener runs after it resolves.
 */
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { loadKeyPairFiles, loadRootFile, type LoadedSecret } from './file-load.js';

export type FileSpec = { kind: 'root'; path: string } | { kind: 'keypair'; certPath: string; keyPath: string };
export type FileSource = 'file' | 'mounted';

export interface FileSecretMetrics {
  fileSecretFailed(): void;
  fileWatcherFailed(): void;
}

export const NO_FILE_METRICS: FileSecretMetrics = { fileSecretFailed() {}, fileWatcherFailed() {} };

export interface FileEntry {
  readonly name: string;
  readonly spec: FileSpec;
  readonly source: FileSource;
  /** Absolute paths read. */
  readonly files: string[];
  /** The last good content (kept while in error). */
  loaded: LoadedSecret | undefined;
  /** When `loaded` was read (ms epoch). */
  loadedAt: number | undefined;
  /** Set while the files cannot be served. */
  error: string | undefined;
  errorAt: number | undefined;
  /** Content changes seen after the first read. */
  reloads: number;
}

export interface FileSecretStoreOptions {
  /** Relative paths resolve against it (the agent's working directory). */
  cwd: string;
  log: Logger;
  metrics?: FileSecretMetrics;
  /** Delay between the last file event and the re-read (Istio's FILE_DEBOUNCE_DURATION, default 100 ms). */
  debounceMs?: number;
  /**
   * Entries in error are also re-read every `retryMs` (default 5 s): a fallback for a file
   * whose directory did not exist when the watch was set, or for a missed event.
   */
  retryMs?: number;
  /** Called once per new entry (e.g. to export its expiry). */
  onEntry?: (entry: FileEntry) => void;
}

function fingerprint(l: LoadedSecret): string {
  return l.kind === 'root' ? `root\u0000${l.pem}` : `pair\u0000${l.certChainPem}\u0000${l.privateKeyPem}`;
}

export class FileSecretStore implements AsyncDisposable {
  private readonly entries = new Map<string, FileEntry>();
  private readonly watchers = new Map<string, { watcher: FSWatcher; ready: Promise<void> }>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly listeners = new Set<(name: string) => void>();
  private readonly metrics: FileSecretMetrics;
  private closed = false;
  private readonly retryTimer: NodeJS.Timeout;

  constructor(private readonly o: FileSecretStoreOptions) {
    this.metrics = o.metrics ?? NO_FILE_METRICS;
    this.retryTimer = setInterval(() => {
      for (const e of this.all()) if (e.error !== undefined && this.reload(e, false)) this.emit(e.name);
    }, o.retryMs ?? 5000);
    this.retryTimer.unref();
  }

  private emit(name: string): void {
    for (const l of [...this.listeners]) l(name);
  }

  get(name: string): FileEntry | undefined {
    return this.entries.get(name);
  }

  all(): FileEntry[] {
    return [...this.entries.values()];
  }

  onChange(listener: (name: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  ensure(name: string, spec: FileSpec, source: FileSource = 'file'): FileEntry {
    const existing = this.entries.get(name);
    if (existing) return existing;
    const abs = (p: string): string => path.resolve(this.o.cwd, p);
    const files = spec.kind === 'root' ? [abs(spec.path)] : [abs(spec.certPath), abs(spec.keyPath)];
    const entry: FileEntry = { name, spec, source, files, loaded: undefined, loadedAt: undefined, error: undefined, errorAt: undefined, reloads: 0 };
    this.entries.set(name, entry);
    this.o.onEntry?.(entry);
    this.reload(entry);
    if (!this.closed) for (const dir of new Set(files.map((f) => path.dirname(f)))) this.watchDir(dir);
    return entry;
  }

  whenWatching(): Promise<void> {
    return Promise.all([...this.watchers.values()].map((w) => w.ready)).then(() => undefined);
  }

  /** Reads the entry's files now; returns true when the served content changed. A periodic retry (`count` false) is not counted again. */
  private reload(e: FileEntry, count = true): boolean {
    let loaded: LoadedSecret;
    try {
      const [first, second] = e.files as [string, string?];
      loaded = e.spec.kind === 'root' ? loadRootFile(first) : loadKeyPairFiles(first, second as string);
    } catch (err) {
      const message = describeError(err);
      if (count || e.error !== message) this.metrics.fileSecretFailed();
      if (e.error !== message) {
        this.o.log.error(`SDS secret ${JSON.stringify(e.name)} cannot be served from ${e.files.join(' and ')}: ${message}${e.loaded ? '; Envoy keeps the last good one' : ''}`);
      }
      e.error = message;
      e.errorAt = Date.now();
      return false;
    }
    const wasError = e.error !== undefined;
    e.error = undefined;
    e.errorAt = undefined;
    const changed = !e.loaded || fingerprint(e.loaded) !== fingerprint(loaded);
    if (!changed) {
      if (wasError) this.o.log.info(`SDS secret ${JSON.stringify(e.name)}: ${e.files.join(' and ')} readable again, content unchanged`);
      return false;
    }
    const first = !e.loaded;
    for (const w of loaded.warnings) this.o.log.warn(w);
    e.loaded = loaded;
    e.loadedAt = Date.now();
    if (!first) e.reloads++;
    const what = loaded.kind === 'keypair' ? `certificate serial ${loaded.serialNumber}` : 'trust bundle';
    this.o.log.info(`SDS secret ${JSON.stringify(e.name)} ${first ? 'read' : 're-read'} from ${e.files.join(' and ')}: ${what}, valid until ${new Date(loaded.notAfter).toISOString()}`);
    return true;
  }

  private watchDir(dir: string): void {
    if (this.watchers.has(dir)) return;
    const watcher = watch(dir, { depth: 0, ignoreInitial: true, followSymlinks: false, atomic: false, persistent: true });
    const ready = new Promise<void>((resolve) => {
      watcher.once('ready', () => {
        const names = this.all().filter((e) => e.files.some((f) => path.dirname(f) === dir)).map((e) => e.name);
        this.o.log.info(`watching ${dir} for ${names.map((n) => JSON.stringify(n)).join(', ')}`);
        resolve();
      });
    });
    watcher.on('all', () => this.schedule(dir));
    watcher.on('error', (err: unknown) => {
      this.metrics.fileWatcherFailed();
      this.o.log.warn(`file watcher on ${dir} failed: ${describeError(err)}`);
    });
    this.watchers.set(dir, { watcher, ready });
  }

  private schedule(dir: string): void {
    if (this.closed) return;
    clearTimeout(this.timers.get(dir));
    const t = setTimeout(() => {
      this.timers.delete(dir);
      if (this.closed) return;
      for (const e of this.all()) {
        if (!e.files.some((f) => path.dirname(f) === dir)) continue;
        if (this.reload(e)) this.emit(e.name);
      }
    }, this.o.debounceMs ?? 100);
    this.timers.set(dir, t);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.retryTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.listeners.clear();
    await Promise.all([...this.watchers.values()].map((w) => w.watcher.close()));
    this.watchers.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
