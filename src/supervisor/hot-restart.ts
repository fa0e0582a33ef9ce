/**
 * Hot restart (SPEC §5.3, opt-in): one hand-over from Envoy epoch n (the parent) to epoch n+1
 * (the child), as Envoy's own protocol runs it. The child asks the parent for its admin and
 * listening sockets while it starts, tells it to drain once its workers run, and terminates it
 * `--parent-shutdown-time-s` later. The agent does not take part in that protocol; a
 * `HandOver` only watches it and bounds it:
 *
 * - `childLive` settles true once admin answers `/server_info` with `state: LIVE` *and*
 *   `restart_epoch` n+1 (`EnvoyAdminClient.serverInfo`: a fresh connection each time, so a
 *   keep-alive connection still open to the parent's admin cannot answer for the child);
 *   false if the hand-over is cancelled or the child exits first.
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
import type { EnvoyExit, EnvoyHandle } from '../envoy/process.js';
import type { Logger } from '../log.js';
import type { EnvoyAdminClient } from '../envoy/admin.js';
import { formatGoDuration } from '../go/duration.js';
import { sleepOn, systemClock, type Clock } from './clock.js';

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

/** The admin call a hand-over makes. */
export type HandOverAdmin = Pick<EnvoyAdminClient, 'serverInfo'>;

export interface HandOverOptions {
  parent: EnvoyHandle;
  parentEpoch: number;
  child: EnvoyHandle;
  childEpoch: number;
  admin: HandOverAdmin;
  settings: HotRestartSettings;
  killGraceMs: number;
  log: Logger;
  /** Default: the system clock. */
  clock?: Clock;
  /** LIVE poll period (default 100 ms) and per-request timeout (default 1 s). */
  pollIntervalMs?: number;
  pollTimeoutMs?: number;
}

export class HandOver {
  readonly parent: EnvoyHandle;
  readonly child: EnvoyHandle;
  readonly childEpoch: number;
  readonly childLive: Promise<boolean>;
  readonly parentGone: Promise<EnvoyExit>;
  private readonly watching = new AbortController();
  private cancelBackstop: () => void = () => undefined;
  private readonly clock: Clock;

  constructor(private readonly options: HandOverOptions) {
    this.parent = options.parent;
    this.child = options.child;
    this.childEpoch = options.childEpoch;
    this.clock = options.clock ?? systemClock;
    this.parentGone = options.parent.exited.then((exit) => {
      this.cancelBackstop();
      return exit;
    });
    this.childLive = this.watchChild();
  }

  /** Stops watching the child and disarms the backstop. Idempotent. */
  cancel(): void {
    this.watching.abort();
    this.cancelBackstop();
  }

  /** Ends the parent now (SIGTERM, then SIGKILL after killGraceMs); resolves with its exit. */
  stopParent(): Promise<EnvoyExit> {
    this.cancelBackstop();
    return this.parent.terminate(this.options.killGraceMs);
  }

  private async watchChild(): Promise<boolean> {
    const o = this.options;
    const childExited = new AbortController();
    void o.child.exited.then(() => childExited.abort());
    const until = AbortSignal.any([this.watching.signal, childExited.signal]);
    const live = await waitForEpochLive(o.admin, o.childEpoch, until, { clock: this.clock, intervalMs: o.pollIntervalMs ?? 100, timeoutMs: o.pollTimeoutMs ?? 1000 });
    if (!live || this.watching.signal.aborted) return false;
    if (!o.parent.hasExited) {
      o.log.info(
        `hot restart: epoch ${o.childEpoch} (pid ${o.child.pid}) is LIVE; epoch ${o.parentEpoch} (pid ${o.parent.pid}) drains and is gone within ${formatGoDuration(o.settings.parentShutdownMs)}`,
      );
      this.cancelBackstop = this.clock.setTimeout(
        () => {
          if (o.parent.hasExited) return;
          o.log.warn(
            `hot restart: epoch ${o.parentEpoch} (pid ${o.parent.pid}) still running ${formatGoDuration(o.settings.parentShutdownMs)} after epoch ${o.childEpoch} went LIVE: stopping it`,
          );
          void o.parent.terminate(o.killGraceMs);
        },
        o.settings.parentShutdownMs,
        { unref: true },
      );
    } else {
      o.log.info(`hot restart: epoch ${o.childEpoch} (pid ${o.child.pid}) is LIVE`);
    }
    return true;
  }
}

/**
 * Polls admin `/server_info` until the Envoy answering reports LIVE with the given restart
 * epoch (true), or `signal` aborts (false). Each request uses a new connection; a failed
 * request counts as not LIVE yet.
 */
export async function waitForEpochLive(
  admin: HandOverAdmin,
  epoch: number,
  signal: AbortSignal,
  poll: { clock?: Clock; intervalMs: number; timeoutMs: number },
): Promise<boolean> {
  const clock = poll.clock ?? systemClock;
  while (!signal.aborted) {
    const info = await admin.serverInfo(poll.timeoutMs, signal).catch(() => undefined);
    if (info?.state === 'LIVE' && info.epoch === epoch) return true;
    await sleepOn(clock, poll.intervalMs, signal);
  }
  return false;
}
