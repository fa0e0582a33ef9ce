/**
 * Admission of merged scrapes (METRICS_MERGE_CONCURRENCY, METRICS_MERGE_QUEUE). Each merged
 * scrape holds per-scrape memory while it runs (socket reads, the application body up to its
 * cap, merge state); Prometheus scrapes a target once per interval, so more than a few at once
 * is abuse, not traffic, and is not allowed to grow the agent's private memory with it.
 *
 * Contract:
 * - at most `concurrency` admissions are held at once (0 = no limit: every request is admitted);
 * - up to `queue` more wait, first come first served; each waits until a slot frees, its own
 *   deadline passes (→ `deadline`) or its signal aborts (→ `aborted`); a request that finds
 *   the queue full is refused at once (→ `queue-full`);
 * - `release` is idempotent and hands the slot to the oldest waiter; a waiter that left (deadline,
 *   abort) holds nothing: no timer, listener or queue entry outlives its settlement.
 */
export type AdmissionRefusal = 'queue-full' | 'deadline' | 'aborted';

export type Admission = { admitted: true; release: () => void } | { admitted: false; reason: AdmissionRefusal };

export interface AdmissionSnapshot {
  concurrency: number;
  queue: number;
  running: number;
  waiting: number;
  refused: Record<AdmissionRefusal, number>;
}

interface Waiter {
  grant(): void;
}

export class ScrapeAdmission {
  private running = 0;
  private readonly waiters: Waiter[] = [];
  private readonly refused: Record<AdmissionRefusal, number> = { 'queue-full': 0, deadline: 0, aborted: 0 };

  constructor(
    readonly concurrency: number,
    readonly queue: number,
  ) {
    for (const [name, v] of [
      ['concurrency', concurrency],
      ['queue', queue],
    ] as const) {
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`ScrapeAdmission: ${name} must be a non-negative integer, got ${v}`);
    }
  }

  /** Waits for a slot for at most `deadlineMs`. Never rejects. */
  acquire(deadlineMs: number, signal: AbortSignal): Promise<Admission> {
    if (signal.aborted) return Promise.resolve(this.refuse('aborted'));
    if (this.concurrency === 0) return Promise.resolve({ admitted: true, release: () => undefined });
    if (this.running < this.concurrency) return Promise.resolve(this.admit());
    if (this.waiters.length >= this.queue) return Promise.resolve(this.refuse('queue-full'));
    return new Promise<Admission>((resolve) => {
      const leave = (reason: AdmissionRefusal) => {
        settle();
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(this.refuse(reason));
      };
      const onAbort = () => leave('aborted');
      const timer = setTimeout(() => leave('deadline'), Math.max(0, deadlineMs));
      const settle = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        grant: () => {
          settle();
          resolve(this.admit());
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  snapshot(): AdmissionSnapshot {
    return { concurrency: this.concurrency, queue: this.queue, running: this.running, waiting: this.waiters.length, refused: { ...this.refused } };
  }

  private admit(): Admission {
    this.running++;
    let held = true;
    return {
      admitted: true,
      release: () => {
        if (!held) return;
        held = false;
        this.running--;
        const next = this.waiters.shift();
        next?.grant();
      },
    };
  }

  private refuse(reason: AdmissionRefusal): Admission {
    this.refused[reason]++;
    return { admitted: false, reason };
  }
}
