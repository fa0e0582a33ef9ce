/**
 * Splitting the agent's own responses (NDS) out of the response stream: every chunking of a
 * stream of Envoy-type and NDS responses (encoded with Envoy's protos) yields the Envoy ones
 * byte for byte and the NDS ones whole; the ACK/NACK requests decode with Envoy's protos.
 */
import { describe, expect, test } from '@jest/globals';
import { ResponseRouter, ackRequest, classifyHead, readConsumed, subscribeRequest } from '../../src/xds/agent-types.js';
import { frameMessage } from '../../src/xds/grpc-wire.js';
import { NAME_TABLE_TYPE } from '../../src/dns/nds.js';
import { TYPES, TYPE_URL, decodeMessage, encodeMessage, packAny } from '../support/control-plane-protos.js';
import { testCluster } from '../support/control-plane.js';
import { encodeNameTableBytes } from '../support/nds-encode.js';

const table = encodeNameTableBytes({ 'a.example': { ips: ['1.2.3.4'], registry: 'External' } });
const bigTable = encodeNameTableBytes(Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`h${i}.example`, { ips: [`10.0.${i >> 8}.${i & 255}`] }])));

function sotw(typeUrl: string, resources: Array<{ type_url: string; value: Buffer }>, nonce: string): Buffer {
  return encodeMessage(TYPES.DiscoveryResponse, { version_info: `v-${nonce}`, resources, type_url: typeUrl, nonce });
}
function delta(typeUrl: string, resources: Array<{ type_url: string; value: Buffer }>, nonce: string): Buffer {
  return encodeMessage(TYPES.DeltaDiscoveryResponse, { system_version_info: 'v1', resources: resources.map((r, i) => ({ name: `r${i}`, version: 'v1', resource: r })), type_url: typeUrl, nonce });
}

describe('agent-consumed responses', () => {
  for (const kind of ['sotw', 'delta'] as const) {
    const enc = kind === 'sotw' ? sotw : delta;
    const cds = enc(TYPE_URL.cluster, [packAny(TYPE_URL.cluster, testCluster('c1'))], 'n1');
    const big = enc(TYPE_URL.cluster, Array.from({ length: 300 }, (_, i) => packAny(TYPE_URL.cluster, testCluster(`cluster-${i}`))), 'n2');
    const nds = enc(NAME_TABLE_TYPE, [{ type_url: NAME_TABLE_TYPE, value: table }], 'n3');
    const ndsBig = enc(NAME_TABLE_TYPE, [{ type_url: NAME_TABLE_TYPE, value: bigTable }], 'n4');
    const ndsEmpty = enc(NAME_TABLE_TYPE, [], 'n5');
    const stream = Buffer.concat([cds, nds, big, ndsBig, ndsEmpty, cds].map(frameMessage));
    const envoyBytes = Buffer.concat([cds, big, cds].map(frameMessage));

    test(`${kind}: every chunk size splits the stream the same way`, () => {
      for (const size of [1, 3, 7, 100, 4096, 65_536, stream.length]) {
        const r = new ResponseRouter(kind, NAME_TABLE_TYPE);
        const fwd: Buffer[] = [];
        const consumed: Buffer[] = [];
        for (let i = 0; i < stream.length; i += size) {
          for (const out of r.push(stream.subarray(i, i + size))) {
            if ('forward' in out) fwd.push(out.forward);
            else consumed.push(out.consume);
          }
        }
        expect(Buffer.concat(fwd).equals(envoyBytes)).toBe(true);
        expect(consumed.map((c) => readConsumed(kind, c).nonce)).toEqual(['n3', 'n4', 'n5']);
        expect(Buffer.from(readConsumed(kind, consumed[1] as Buffer).first ?? []).equals(bigTable)).toBe(true);
        expect(readConsumed(kind, consumed[2] as Buffer).resources).toBe(0);
      }
    });

    test(`${kind}: the type is known from the first resource, long before the end`, () => {
      expect(classifyHead(kind, ndsBig.subarray(0, 120), NAME_TABLE_TYPE)).toBe(true);
      expect(classifyHead(kind, big.subarray(0, 120), NAME_TABLE_TYPE)).toBe(false);
      expect(classifyHead(kind, big.subarray(0, 3), NAME_TABLE_TYPE)).toBeUndefined();
    });

    test(`${kind}: subscribe, ACK and NACK requests`, () => {
      const reqType = kind === 'sotw' ? TYPES.DiscoveryRequest : TYPES.DeltaDiscoveryRequest;
      const sub = decodeMessage<Record<string, unknown>>(reqType, subscribeRequest(kind, NAME_TABLE_TYPE));
      expect(sub.type_url).toBe(NAME_TABLE_TYPE);
      const ack = decodeMessage<Record<string, unknown>>(reqType, ackRequest(kind, NAME_TABLE_TYPE, 'v7', 'n7'));
      expect(ack).toMatchObject({ type_url: NAME_TABLE_TYPE, response_nonce: 'n7' });
      expect(ack.error_detail).toBeUndefined();
      if (kind === 'sotw') expect(ack.version_info).toBe('v7');
      const nack = decodeMessage<Record<string, unknown>>(reqType, ackRequest(kind, NAME_TABLE_TYPE, 'v7', 'n8', 'bad table'));
      expect(nack.error_detail).toMatchObject({ code: 13, message: 'bad table' });
    });
  }

  test('a response whose head says nothing within the limit is forwarded', () => {
    // type_url last, first resource without an Any type first: undecidable until the end
    const weird = Buffer.concat([Buffer.from([0x12, 0x82, 0x80, 0x01]), Buffer.alloc(16386, 0)]);
    const r = new ResponseRouter('sotw', NAME_TABLE_TYPE, 1024);
    const out = r.push(frameMessage(weird));
    expect(out.every((o) => 'forward' in o)).toBe(true);
    expect(Buffer.concat(out.map((o) => (o as { forward: Buffer }).forward)).equals(frameMessage(weird))).toBe(true);
  });
});
