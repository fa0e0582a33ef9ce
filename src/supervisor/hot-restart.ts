/**
 * Hot restart (SPEC §5.3, opt-in): one hand-over from Envoy epoch n (the parent) to epoch n+1
 * (the child), as Envoy's own protocol runs it. The child asks the parent for its admin and
 * listening sockets while it starts, tells it to drain once its workers run, and terminates it
 * `--parent-shutdown-time-s` later. The agent does not take part in that protocol; a
 * `HandOver` only watches it and bounds it:
 *
 * - `childLive` settles true once admin answers `/server_info` with `state: LIVE` *and*
 *   `restart_epoch` n+1 (over a fresh connection each time, so a keep-alive connection still
 *   open to the parent's admin cannot answer for the child); false if the hand-over is
 *   cancelled or the child exits first.
 * - `parentGone` settles with the parent's exit, whatever it is: an exit of the old epoch
 *   during a hand-over is expected, never a crash.
 * - Backstop: if the parent is still running `parentShutdownMs` after the child went LIVE,
 *   the agent stops it (SIGTERM, SIGKILL `killGraceMs` later), so it is gone within
 *   parentShutdownDuration of the child going LIVE (plus the kill grace if it ignores SIGTERM)
 *   even when the child never terminates it.
 * - `cancel()` stops watching (idempotent); `stopParent()` ends the parent now.
 *
 * If the child never goes LIVE the parent keeps serving (as with Envoy, whose parent drains
 * only when the child's workers start); the supervisor decides what a child exit means.
 */
import http from 'node:http';
import type { EnvoyExit, EnvoyProcess } from '../envoy/process.js';
import type { Logger } from '../log.js';
import { sleep } from '../lifecycle/abort.js';
import { formatGoDuration } from '../go/duration.js';

export interface HotRestartSettings {
  /** ProxyConfig parentShutdownDuration: how long the parent may outlive the child's start of service. */
  parentShutdownMs: number;
}

/**
 * PURE: the stable `--base-id` of an agent's Envoys. Envoy keys its hot-restart domain sockets
 * (abstract, per network namespace) and shared memory by base id; the admin port is already
 * unique among Envoys that share a network namespace and never changes across epochs.
 */
export function hotRestartBaseId(adminPort: number): number {
  return adminPort;
}

/** PURE: `/server_info` JSON → the reporting Envoy's state and restart epoch (undefined if unreadable). */
export function serverInfoEpoch(body: string): { state: string; epoch: number } | undefined {
  try {
    const info = JSON.parse(body) as { state?: unknown; command_line_options?: { restart_epoch?: unknown } };
    const epoch = Number(info.command_line_options?.restart_epoch ?? 0);
    if (typeof info.state !== 'string' || !Number.isInteger(epoch)) return undefined;
    return { state: info.state, epoch };
  } catch {
    return undefined;
  }
}

export interface HandOverOptions {
  parent: EnvoyProcess;
  parentEpoch: number;
  child: EnvoyProcess;
  childEpoch: number;
  /** Envoy admin origin, e.g. `http://127.0.0.1:15000`. */
  adminOrigin: string;
  settings: HotRestartSettings;
  killGraceMs: number;
  log: Logger;
  /** LIVE poll period (default 100 ms) and per-request timeout (default 1 s). */
  pollIntervalMs?: number;
  pollTimeoutMs?: number;
}

export class HandOver {
  readonly parent: EnvoyProcess;
  readonly child: EnvoyProcess;
  readonly childEpoch: number;
  readonly childLive: Promise<boolean>;
  readonly parentGone: Promise<EnvoyExit>;
  private readonly watching = new AbortController();
  private backstop: NodeJS.Timeout | undefined;

  constructor(private readonly options: HandOverOptions) {
    this.parent = options.parent;
    this.child = options.child;
    this.childEpoch = options.childEpoch;
    this.parentGone = options.parent.exited.then((exit) => {
      clearTimeout(this.backstop);
      return exit;
    });
    this.childLive = this.watchChild();
  }

  /** Stops watching the child and disarms the backstop. Idempotent. */
  cancel(): void {
    this.watching.abort();
    clearTimeout(this.backstop);
  }

  /** Ends the parent now (SIGTERM, then SIGKILL after killGraceMs); resolves with its exit. */
  stopParent(): Promise<EnvoyExit> {
    clearTimeout(this.backstop);
    return this.parent.terminate(this.options.killGraceMs);
  }

  private async watchChild(): Promise<boolean> {
    const o = this.options;
    const childExited = new AbortController();
    void o.child.exited.then(() => childExited.abort());
    const until = AbortSignal.any([this.watching.signal, childExited.signal]);
    const live = await waitForEpochLive(o.adminOrigin, o.childEpoch, until, o.pollIntervalMs ?? 100, o.pollTimeoutMs ?? 1000);
    if (!live || this.watching.signal.aborted) return false;
    if (!o.parent.hasExited) {
      o.log.info(
        `hot restart: epoch ${o.childEpoch} (pid ${o.child.pid}) is LIVE; epoch ${o.parentEpoch} (pid ${o.parent.pid}) drains and is gone within ${formatGoDuration(o.settings.parentShutdownMs)}`,
      );
      this.backstop = setTimeout(() => {
        if (o.parent.hasExited) return;
        o.log.warn(
          `hot restart: epoch ${o.parentEpoch} (pid ${o.parent.pid}) still running ${formatGoDuration(o.settings.parentShutdownMs)} after epoch ${o.childEpoch} went LIVE: stopping it`,
        );
        void o.parent.terminate(o.killGraceMs);
      }, o.settings.parentShutdownMs);
      this.backstop.unref();
    } else {
      o.log.info(`hot restart: epoch ${o.childEpoch} (pid ${o.child.pid}) is LIVE`);
    }
    return true;
  }
}

/**
 * Polls admin `/server_info` until the Envoy answering reports LIVE with the given restart
 * epoch (true), or `signal` aborts (false). Each request uses a new connection.
 */
export async function waitForEpochLive(origin: string, epoch: number, signal: AbortSignal, intervalMs: number, timeoutMs: number): Promise<boolean> {
  while (!signal.aborted) {
    const info = await getServerInfo(origin, AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]));
    if (info?.state === 'LIVE' && info.epoch === epoch) return true;
    await sleep(intervalMs, signal);
  }
  return false;
}

/** One `GET /server_info` on its own connection; undefined on any failure. */
function getServerInfo(origin: string, signal: AbortSignal): Promise<{ state: string; epoch: number } | undefined> {
  return new Promise((resolve) => {
    const req = http.get(`${origin}/server_info`, { agent: false, signal }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? serverInfoEpoch(body) : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('error', () => resolve(undefined));
  });
}
