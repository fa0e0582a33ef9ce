import { describe, expect, test } from '@jest/globals';
import { Backoff, SlidingWindowBudget } from '../../src/lifecycle/backoff.js';
import { sleep } from '../../src/lifecycle/abort.js';

describe('Backoff', () => {
  test('doubles up to the cap; reset goes back to the initial delay', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 5000, multiplier: 2, jitter: 0, random: () => 0.5 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([1000, 2000, 4000, 5000, 5000]);
    b.reset();
    expect(b.next()).toBe(1000);
  });

  test('jitter stays within ±fraction', () => {
    const lo = new Backoff({ initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: 0.2, random: () => 0 });
    const hi = new Backoff({ initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: 0.2, random: () => 0.999999 });
    expect(lo.next()).toBe(800);
    expect(hi.next()).toBe(1200);
  });
});

describe('SlidingWindowBudget', () => {
  test('allows max-1 events, refuses the max-th within the window, recovers as events age out', () => {
    let now = 0;
    const b = new SlidingWindowBudget(5, 300_000, () => now);
    const results: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      results.push(b.record());
      now += 1000;
    }
    expect(results).toEqual([true, true, true, true, false]);
    now += 300_000;
    expect(b.record()).toBe(true);
    expect(b.count()).toBe(1);
  });
});

describe('sleep', () => {
  test('an abort ends it early and reports false', async () => {
    const ctl = new AbortController();
    const p = sleep(60_000, ctl.signal);
    ctl.abort();
    await expect(p).resolves.toBe(false);
  });
  test('an already-aborted signal returns at once', async () => {
    await expect(sleep(60_000, AbortSignal.abort())).resolves.toBe(false);
  });
  test('sleeps fully without abort', async () => {
    await expect(sleep(1, new AbortController().signal)).resolves.toBe(true);
  });
});
