/**
 * Exponential backoff with jitter (STYLE 6). `next()` returns the delay to wait before the
 * next attempt and advances; `reset()` goes back to the initial delay. Reset on proof of
 * health, not on start.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  multiplier: number;
  /** Fraction of the delay randomised either way (0.2 = ±20%). */
  jitter: number;
  random?: () => number;
}

export class Backoff {
  private current: number;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    this.current = options.initialMs;
    this.random = options.random ?? Math.random;
  }

  next(): number {
    const base = this.current;
    this.current = Math.min(this.options.maxMs, this.current * this.options.multiplier);
    const spread = base * this.options.jitter;
    return Math.max(0, Math.round(base - spread + this.random() * 2 * spread));
  }

  reset(): void {
    this.current = this.options.initialMs;
  }

  /** The un-jittered delay `next()` would use. */
  peek(): number {
    return this.current;
  }
}

/**
 * A sliding-window event budget: `record()` returns false once more than `max` events
 * fell within the last `windowMs`.
 */
export class SlidingWindowBudget {
  private readonly times: number[] = [];

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records an event; true while the budget still holds (≤ max events in the window). */
  record(): boolean {
    const t = this.now();
    this.times.push(t);
    while (this.times.length > 0 && (this.times[0] as number) <= t - this.windowMs) this.times.shift();
    return this.times.length < this.max;
  }

  count(): number {
    const t = this.now();
    return this.times.filter((x) => x > t - this.windowMs).length;
  }
}
