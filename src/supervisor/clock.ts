/**
 * Time as the supervisor sees it, so its policy (backoff, crash budget, healthy reset, drain
 * waits, deadlines) can run on a fake clock in unit tests. `setTimeout` returns its cancel
 * function (idempotent); `unref` timers never keep the process alive.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  setTimeout(fn: () => void, ms: number, options?: { unref?: boolean }): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms, options) {
    const timer = setTimeout(fn, Math.max(0, ms));
    if (options?.unref) timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * Resolves true after `ms` on `clock`, or false as soon as any signal aborts (at once if one
 * already has). Removes its listeners and cancels its timer when it settles.
 */
export function sleepOn(clock: Clock, ms: number, ...signals: (AbortSignal | undefined)[]): Promise<boolean> {
  const live = signals.filter((s): s is AbortSignal => s !== undefined);
  if (live.some((s) => s.aborted)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (full: boolean) => {
      cancel();
      for (const s of live) s.removeEventListener('abort', onAbort);
      resolve(full);
    };
    const onAbort = () => done(false);
    const cancel = clock.setTimeout(() => done(true), ms);
    for (const s of live) s.addEventListener('abort', onAbort, { once: true });
  });
}

