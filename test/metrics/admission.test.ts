/** ScrapeAdmission: a bounded number running, a bounded FIFO queue with deadlines, nothing left behind. */
import { describe, expect, test } from '@jest/globals';
import { ScrapeAdmission, type Admission } from '../../src/metrics/admission.js';

const never = new AbortController().signal;
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

function held(a: Admission): () => void {
  if (!a.admitted) throw new Error(`expected an admission, got a refusal (${a.reason})`);
  return a.release;
}

describe('ScrapeAdmission', () => {
  test('runs at most `concurrency`; the queue drains first come first served as slots free', async () => {
    const adm = new ScrapeAdmission(2, 4);
    const r1 = held(await adm.acquire(60_000, never));
    const r2 = held(await adm.acquire(60_000, never));
    const order: number[] = [];
    const waiting = [3, 4, 5].map((n) => adm.acquire(60_000, never).then((a) => (order.push(n), a)));
    expect(adm.snapshot()).toMatchObject({ running: 2, waiting: 3 });
    r1();
    const r3 = held(await waiting[0]!);
    expect(adm.snapshot()).toMatchObject({ running: 2, waiting: 2 });
    r2();
    r3();
    const r4 = held(await waiting[1]!);
    const r5 = held(await waiting[2]!);
    expect(order).toEqual([3, 4, 5]);
    r4();
    r5();
    expect(adm.snapshot()).toMatchObject({ running: 0, waiting: 0 });
  });

  test('beyond the queue a request is refused at once', async () => {
    const adm = new ScrapeAdmission(1, 1);
    const r1 = held(await adm.acquire(60_000, never));
    const queued = adm.acquire(60_000, never);
    expect(await adm.acquire(60_000, never)).toEqual({ admitted: false, reason: 'queue-full' });
    r1();
    held(await queued)();
    expect(adm.snapshot()).toEqual({ concurrency: 1, queue: 1, running: 0, waiting: 0, refused: { 'queue-full': 1, deadline: 0, aborted: 0 } });
  });

  test('a waiter past its deadline is refused and leaves no timer or queue entry; the slot goes to the next', async () => {
    const adm = new ScrapeAdmission(1, 2);
    const r1 = held(await adm.acquire(60_000, never));
    const base = timers();
    const late = adm.acquire(50, never);
    const patient = adm.acquire(60_000, never);
    expect(timers()).toBeGreaterThan(base);
    expect(await late).toEqual({ admitted: false, reason: 'deadline' });
    expect(adm.snapshot()).toMatchObject({ running: 1, waiting: 1 });
    r1();
    const r2 = held(await patient);
    expect(timers()).toBeLessThanOrEqual(base);
    r2();
    expect(adm.snapshot()).toMatchObject({ running: 0, waiting: 0, refused: { deadline: 1 } });
  });

  test('an aborted waiter (the scraper went away) is removed with its listener and timer', async () => {
    const adm = new ScrapeAdmission(1, 2);
    const r1 = held(await adm.acquire(60_000, never));
    const base = timers();
    const ctl = new AbortController();
    const gone = adm.acquire(60_000, ctl.signal);
    ctl.abort(new Error('client connection closed'));
    expect(await gone).toEqual({ admitted: false, reason: 'aborted' });
    expect(timers()).toBeLessThanOrEqual(base);
    expect(adm.snapshot()).toMatchObject({ running: 1, waiting: 0 });
    r1();
    // An already aborted signal is refused without queueing.
    expect(await adm.acquire(60_000, ctl.signal)).toEqual({ admitted: false, reason: 'aborted' });
    expect(adm.snapshot()).toMatchObject({ running: 0, waiting: 0, refused: { aborted: 2 } });
  });

  test('release is idempotent: a double release frees one slot only', async () => {
    const adm = new ScrapeAdmission(1, 1);
    const r1 = held(await adm.acquire(60_000, never));
    const queued = adm.acquire(60_000, never);
    r1();
    r1();
    const r2 = held(await queued);
    expect(adm.snapshot()).toMatchObject({ running: 1, waiting: 0 });
    r2();
    expect(adm.snapshot()).toMatchObject({ running: 0 });
  });

  test('concurrency 0 admits everything; bad limits are refused naming the field', async () => {
    const adm = new ScrapeAdmission(0, 0);
    const all = await Promise.all(Array.from({ length: 50 }, () => adm.acquire(0, never)));
    expect(all.every((a) => a.admitted)).toBe(true);
    expect(() => new ScrapeAdmission(-1, 0)).toThrow('ScrapeAdmission: concurrency must be a non-negative integer, got -1');
    expect(() => new ScrapeAdmission(2, 1.5)).toThrow('ScrapeAdmission: queue must be a non-negative integer, got 1.5');
  });
});
