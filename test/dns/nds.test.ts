/**
 * NameTable decoding (src/dns/nds.ts, protobufjs) against bytes from an independent encoder
 * (test/support/nds-encode.ts writes the wire format by hand from Istio's field numbers).
 */
import { describe, expect, test } from '@jest/globals';
import { NdsDecodeError, decodeNameTable, encodeNameTable } from '../../src/dns/nds.js';
import { encodeNameTableBytes } from '../support/nds-encode.js';

describe('NDS NameTable', () => {
  test('decodes independently encoded bytes, every field', () => {
    const bytes = encodeNameTableBytes({
      'svc.ns.svc.cluster.local': { ips: ['10.0.0.1', 'fd00::1'], registry: 'Kubernetes', shortname: 'svc', namespace: 'ns', altHosts: ['svc.alt'] },
      'www.example.com': { ips: ['1.2.3.4'], registry: 'External' },
      'empty.example': {},
    });
    expect(decodeNameTable(bytes)).toEqual({
      'svc.ns.svc.cluster.local': { ips: ['10.0.0.1', 'fd00::1'], registry: 'Kubernetes', shortname: 'svc', namespace: 'ns', altHosts: ['svc.alt'] },
      'www.example.com': { ips: ['1.2.3.4'], registry: 'External', shortname: '', namespace: '', altHosts: [] },
      'empty.example': { ips: [], registry: '', shortname: '', namespace: '', altHosts: [] },
    });
  });

  test('our encoder and the independent one agree byte for byte on a one-entry table', () => {
    const t = { 'a.example': { ips: ['1.1.1.1'], registry: 'External' } };
    expect(Buffer.from(encodeNameTable(t))).toEqual(encodeNameTableBytes(t));
  });

  test('empty bytes are an empty table; garbage is a NdsDecodeError', () => {
    expect(decodeNameTable(new Uint8Array(0))).toEqual({});
    expect(() => decodeNameTable(Buffer.from([0x0a, 0x50, 0x01]))).toThrow(NdsDecodeError);
  });
});
