/**
 * src/utc-date.ts: the replacement `toISOString`/`toUTCString` are byte-for-byte V8's, and the
 * cases they do not handle (invalid dates, extended years, non-Date receivers) behave exactly as
 * the originals, errors included. The originals are captured before installing. (That the
 * launcher installs it before the CLI runs: test/package/launcher.test.ts.)
 */
import { describe, expect, test } from '@jest/globals';
import { installUtcDateFormatting, utcHttpString, utcIsoString } from '../src/utc-date.js';

const nativeIso = Date.prototype.toISOString;
const nativeUtc = Date.prototype.toUTCString;

/** Deterministic PRNG (mulberry32) so a failure names a reproducible value. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MAX = 8.64e15;
const edges = [
  0,
  -0,
  1,
  -1,
  999,
  Date.parse('0000-01-01T00:00:00.000Z'),
  Date.parse('0000-01-01T00:00:00.000Z') - 1,
  Date.parse('9999-12-31T23:59:59.999Z'),
  Date.parse('9999-12-31T23:59:59.999Z') + 1,
  Date.parse('1970-01-01T00:00:00.009Z'),
  Date.parse('2000-02-29T12:34:56.078Z'),
  Date.parse('2026-11-26T01:02:03.456Z'),
  MAX,
  -MAX,
];

function values(): number[] {
  const r = rng(20261126);
  const out = [...edges];
  for (let i = 0; i < 5000; i++) out.push(Math.floor((r() * 2 - 1) * MAX));
  // Dense sampling of years 0–9999 and of the present, where the fast path runs.
  const lo = Date.parse('0000-01-01T00:00:00.000Z');
  const hi = Date.parse('9999-12-31T23:59:59.999Z');
  for (let i = 0; i < 5000; i++) out.push(Math.floor(lo + r() * (hi - lo)));
  for (let i = 0; i < 2000; i++) out.push(Math.floor(1.7e12 + r() * 1e11));
  return out;
}

describe('utc-date', () => {
  test('the formatters equal V8 over 12,000 times (years 0-9999) and decline the rest', () => {
    let fast = 0;
    for (const t of values()) {
      const d = new Date(t);
      const y = d.getUTCFullYear();
      const iso = utcIsoString(d);
      const http = utcHttpString(d);
      if (y >= 0 && y <= 9999) {
        fast++;
        expect([t, iso]).toEqual([t, nativeIso.call(d)]);
        expect([t, http]).toEqual([t, nativeUtc.call(d)]);
      } else {
        expect([t, iso, http]).toEqual([t, undefined, undefined]);
      }
    }
    expect(fast).toBeGreaterThan(7000);
  });

  test('installed: the same strings, toJSON and JSON.stringify follow, the rest is untouched', () => {
    installUtcDateFormatting();
    installUtcDateFormatting(); // idempotent
    expect(Date.prototype.toISOString).not.toBe(nativeIso);
    expect(Date.prototype.toUTCString).not.toBe(nativeUtc);
    for (const t of values()) {
      const d = new Date(t);
      let expectedIso: string | Error;
      try {
        expectedIso = nativeIso.call(d);
      } catch (err) {
        expectedIso = err as Error;
      }
      if (expectedIso instanceof Error) expect(() => d.toISOString()).toThrow(RangeError);
      else {
        expect(d.toISOString()).toBe(expectedIso);
        expect(JSON.stringify({ d })).toBe(`{"d":"${expectedIso}"}`);
      }
      expect(d.toUTCString()).toBe(nativeUtc.call(d));
    }
    // Invalid dates and non-Date receivers go to V8's own methods, errors and all.
    expect(() => new Date(NaN).toISOString()).toThrow(new RangeError('Invalid time value'));
    expect(new Date(NaN).toUTCString()).toBe('Invalid Date');
    expect(JSON.stringify({ d: new Date(NaN) })).toBe('{"d":null}');
    expect(() => Date.prototype.toISOString.call({})).toThrow(TypeError);
    expect(() => Date.prototype.toUTCString.call(42)).toThrow(TypeError);
    expect(Object.getOwnPropertyDescriptor(Date.prototype, 'toISOString')).toMatchObject({ writable: true, enumerable: false, configurable: true });
    expect(Date.prototype.toISOString.length).toBe(0);
  });
});
