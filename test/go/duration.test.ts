import { describe, expect, test } from '@jest/globals';
import { formatGoDuration, formatProtoDuration, parseGoDuration } from '../../src/go/duration.js';

describe('Go durations', () => {
  test.each([
    ['45s', 45_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['0', 0],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['.5s', 500],
    ['2h45m', 9_900_000],
    ['100us', 0.1],
    ['100µs', 0.1],
    ['10ns', 0.00001],
    ['-1s', -1000],
  ])('parses %s', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  test.each(['', '45', 's', '1x', '1.s.', '1s ', ' 1s', '1m30', '-', '.s'])('rejects %j', (text) => {
    expect(parseGoDuration(text)).toBeUndefined();
  });

  test('protobuf JSON form', () => {
    expect(formatProtoDuration(45_000)).toBe('45s');
    expect(formatProtoDuration(250)).toBe('0.250s');
    expect(formatProtoDuration(1.5)).toBe('0.001500s');
    expect(formatProtoDuration(0)).toBe('0s');
  });

  test('Go String() form', () => {
    expect(formatGoDuration(90_000)).toBe('1m30s');
    expect(formatGoDuration(5000)).toBe('5s');
    expect(formatGoDuration(500)).toBe('500ms');
    expect(formatGoDuration(3_600_000)).toBe('1h0m0s');
  });
});
