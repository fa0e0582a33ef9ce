import { describe, expect, test } from '@jest/globals';
import { marshalFloat, marshalString } from '../../src/go/json.js';
import { formatFloat, unquote } from '../../src/go/strconv.js';

// The union of the cases the two former copies were tested with (podinfo values, template literals).
describe('Go strconv.Unquote', () => {
  test.each([
    ['"plain"', 'plain'],
    ['""', ''],
    ['"a\\"b"', 'a"b'],
    ['"tab\\tnl\\n"', 'tab\tnl\n'],
    ['"\\a\\b\\f\\r\\v\\\\"', '\x07\b\f\r\v\\'],
    ['"\\x41\\101"', 'AA'],
    ['"\\u00e9\\U0001F600"', 'é😀'],
    ['"\\xc3\\xa9"', 'é'],
    ['"日本"', '日本'],
    ['"{\\"proxyMetadata\\":{\\"DNS_AGENT\\":\\"\\"}}\\n"', '{"proxyMetadata":{"DNS_AGENT":""}}\n'],
    ['"dq\\t\\x41\\u00e9\\101"', 'dq\tAéA'],
    ['"\\377"', '\ufffd'], // a lone byte 0xff is not UTF-8: decoded as U+FFFD
    ['"Bab\\u00e9\\uff5a\\U0001f600"', 'Bab\u00e9\uff5a\u{1f600}'],
  ])('unquotes %s', (input, out) => {
    expect(unquote(input)).toBe(out);
  });

  test.each(['plain', '"unterminated', '"bad\\q"', '"a"b"', "'single'", '"\\x4"', '"\\400"', '"\\uD800"', '"\\', '"a\nb"', '"\\\'"', '"\\U00110000"', '"\\18"', '"'])(
    'rejects %j',
    (input) => {
      expect(unquote(input)).toBeUndefined();
    },
  );
});

describe('Go strconv.FormatFloat(x, g, -1, 64)', () => {
  test.each([
    [2.5, '2.5'],
    [1e6, '1e+06'],
    [999999, '999999'],
    [0.5, '0.5'],
    [0.0001, '0.0001'],
    [0.00001, '1e-05'],
    [1234567.5, '1.2345675e+06'],
    [123456.5, '123456.5'],
    [1e100, '1e+100'],
    [-2.5e-7, '-2.5e-07'],
    [NaN, 'NaN'],
    [Infinity, '+Inf'],
    [-Infinity, '-Inf'],
    [-0, '-0'],
  ])('%p -> %s', (x, s) => {
    expect(formatFloat(x)).toBe(s);
  });
});

describe('Go encoding/json scalars', () => {
  test('strings are HTML-safe, U+2028/9 escaped, \\b and \\f short, lone surrogates U+FFFD', () => {
    expect(marshalString('<a&b>\u2028\u2029\u0000\u001f\u007f\b\f\n\r\t"\\')).toBe('"\\u003ca\\u0026b\\u003e\\u2028\\u2029\\u0000\\u001f\u007f\\b\\f\\n\\r\\t\\"\\\\"');
    expect(marshalString('x\ud800y é')).toBe('"x\\ufffdy é"');
  });

  test('floats as Go writes them; non-finite ones cannot be encoded', () => {
    expect([1e21, 1e-7, 0.5, -0, 100].map(marshalFloat)).toEqual(['1e+21', '1e-7', '0.5', '-0', '100']);
    expect([NaN, Infinity, -Infinity].map(marshalFloat)).toEqual([undefined, undefined, undefined]);
  });
});
