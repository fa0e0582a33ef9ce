import { describe, expect, test } from '@jest/globals';
import { parsePodInfoFile } from '../../src/podinfo/parse.js';

describe('podinfo files', () => {
  test('kubelet format: sorted key="value" lines, no trailing newline', () => {
    const text = 'app="jiuxi"\npod-template-hash="5479899b95"\nsecurity.istio.io/tlsMode="istio"\nservice.istio.io/canonical-name="jiuxi"';
    const r = parsePodInfoFile(text);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(Object.fromEntries(r.values)).toEqual({
        app: 'jiuxi',
        'pod-template-hash': '5479899b95',
        'security.istio.io/tlsMode': 'istio',
        'service.istio.io/canonical-name': 'jiuxi',
      });
    }
  });

  test('splits at the first =, keeps keys verbatim, skips lines without =', () => {
    const r = parsePodInfoFile('a="x=y"\n key ="v"\njunk line\n');
    expect(r.ok && Object.fromEntries(r.values)).toEqual({ a: 'x=y', ' key ': 'v' });
  });

  test('annotation values with JSON and escapes', () => {
    const r = parsePodInfoFile('sidecar.istio.io/status="{\\"version\\":\\"ed4e\\",\\"containers\\":[\\"istio-proxy\\"]}"');
    expect(r.ok && r.values.get('sidecar.istio.io/status')).toBe('{"version":"ed4e","containers":["istio-proxy"]}');
  });

  test('one bad value rejects the whole file, naming the line and key', () => {
    const r = parsePodInfoFile('a="ok"\nb=unquoted');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain('line 2: value for key "b"');
  });
});
