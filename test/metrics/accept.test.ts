import { describe, expect, test } from '@jest/globals';
import {
  DEFAULT_ACCEPT,
  FMT_OPENMETRICS_0_0_1,
  FMT_OPENMETRICS_1_0_0,
  FMT_TEXT,
  parseMediaType,
  responseContentType,
  rewriteAccept,
} from '../../src/metrics/accept.js';

const PROMETHEUS_2 =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const PROMETHEUS_PROTO_FIRST =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.4,*/*;q=0.1';

describe('rewriteAccept (SPEC §6.2)', () => {
  test.each<[string, string | undefined, string, string]>([
    [
      "SPEC's example",
      'application/openmetrics-text;version=1.0.0, text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      'text/plain; q=0.1; version=0.0.4',
      'application/openmetrics-text; q=0.2; version=1.0.0,text/plain; q=0.1; version=0.0.4',
    ],
    [
      "Prometheus 2's default",
      PROMETHEUS_2,
      'text/plain; q=0.1; version=0.0.4',
      'application/openmetrics-text; q=0.3; version=1.0.0,application/openmetrics-text; q=0.2; version=0.0.1,text/plain; q=0.1; version=0.0.4',
    ],
    [
      'protobuf is never forwarded',
      PROMETHEUS_PROTO_FIRST,
      'text/plain; q=0.1; version=0.0.4',
      'application/openmetrics-text; q=0.2; version=1.0.0,text/plain; q=0.1; version=0.0.4',
    ],
    ['absent', undefined, DEFAULT_ACCEPT, DEFAULT_ACCEPT],
    ['empty', '', DEFAULT_ACCEPT, DEFAULT_ACCEPT],
    ['only protobuf → nothing kept', 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily', DEFAULT_ACCEPT, DEFAULT_ACCEPT],
    ['unparsable', 'text/plain;version', DEFAULT_ACCEPT, DEFAULT_ACCEPT],
    ['bad media type', 'text/pl ain', DEFAULT_ACCEPT, DEFAULT_ACCEPT],
    ['bare *', '*', 'text/plain; q=0.1; version=0.0.4', 'text/plain; q=0.1; version=0.0.4'],
    [
      'application/* is OpenMetrics 0.0.1, for the app only',
      'application/*;q=0.9,text/*',
      'text/*; q=0.1',
      'application/openmetrics-text; q=0.2; version=0.0.1,text/*; q=0.1',
    ],
    ['wildcards map to one text type (once)', '*/*,*', 'text/plain; q=0.1; version=0.0.4', 'text/plain; q=0.1; version=0.0.4'],
    [
      'parameters sorted, case folded, quoted values kept',
      'Text/Plain;Version=0.0.4;escaping="allow-utf-8";q=0.3',
      'text/plain; escaping=allow-utf-8; q=0.1; version=0.0.4',
      'text/plain; escaping=allow-utf-8; q=0.1; version=0.0.4',
    ],
    ['other types dropped', 'application/json, text/html;q=0.9', DEFAULT_ACCEPT, DEFAULT_ACCEPT],
  ])('%s', (_name, accept, envoy, app) => {
    expect(rewriteAccept(accept, 'envoy')).toBe(envoy);
    expect(rewriteAccept(accept, 'application')).toBe(app);
  });

  test('at most nine types, so q stays 0.N', () => {
    const many = Array.from({ length: 12 }, (_, i) => `text/plain;v=${i}`).join(',');
    const out = rewriteAccept(many, 'envoy').split(',');
    expect(out).toHaveLength(9);
    expect(out[0]).toBe('text/plain; q=0.9; v=0');
    expect(out[8]).toBe('text/plain; q=0.1; v=8');
  });
});

describe('parseMediaType', () => {
  test('like Go mime.ParseMediaType', () => {
    expect(parseMediaType('text/plain; version=0.0.4')).toEqual({ type: 'text/plain', params: new Map([['version', '0.0.4']]) });
    expect(parseMediaType('text/plain;a="x;y"')?.params.get('a')).toBe('x;y');
    expect(parseMediaType('text/plain;a=1;a=2')).toBeUndefined();
    expect(parseMediaType('/plain')).toBeUndefined();
    expect(parseMediaType('text/plain;=1')).toBeUndefined();
  });
});

describe('responseContentType follows the app (Istio negotiateMetricsFormat)', () => {
  test.each<[string | undefined, string]>([
    [undefined, FMT_TEXT],
    ['', FMT_TEXT],
    ['text/plain; version=0.0.4; charset=utf-8', FMT_TEXT],
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', FMT_OPENMETRICS_1_0_0],
    ['application/openmetrics-text;version=0.0.1', FMT_OPENMETRICS_0_0_1],
    ['application/openmetrics-text', FMT_OPENMETRICS_0_0_1],
    ['application/openmetrics-text; version=2.0.0', FMT_TEXT],
    ['application/json', FMT_TEXT],
    ['garbage;;;=', FMT_TEXT],
  ])('%s', (ct, expected) => {
    expect(responseContentType(ct)).toBe(expected);
  });
  test('the formats are Istio\'s strings', () => {
    expect(FMT_TEXT).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(FMT_OPENMETRICS_1_0_0).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(FMT_OPENMETRICS_0_0_1).toBe('application/openmetrics-text; version=0.0.1; charset=utf-8');
  });
});
