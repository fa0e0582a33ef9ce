/**
 * DNS message handling over dns-packet: replies mirror the query (id, opcode, RD, CD, first
 * question), SERVFAIL/FORMERR, the size a client accepts, and truncation with TC.
 */
import { describe, expect, test } from '@jest/globals';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import { MIN_UDP_SIZE, decodeQuery, encodeWithin, formerrRaw, relayWithin, reply, responseSize, servfail } from '../../src/dns/wire.js';

const query = (extra: Partial<dnsPacket.Packet> = {}) =>
  dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'big.example' }], ...extra });

const manyA = (n: number): Answer[] => Array.from({ length: n }, (_, i) => ({ type: 'A', name: 'big.example', ttl: 30, class: 'IN', data: `10.0.${i >> 8}.${i & 255}` }));

describe('DNS wire', () => {
  test('reply mirrors id, RD and the question; AA set', () => {
    const q = decodeQuery(query());
    const out = dnsPacket.decode(encodeWithin(reply(q, manyA(1)), 512));
    expect(out.id).toBe(4242);
    expect(out.flag_rd).toBe(true);
    expect(out.flag_aa).toBe(true);
    expect(out.flag_qr).toBe(true);
    expect(out.questions).toEqual([{ type: 'A', name: 'big.example', class: 'IN' }]);
    expect(out.answers?.length).toBe(1);
  });

  test('UDP size: 512 minimum, the EDNS0 size otherwise; TCP 65535', () => {
    expect(responseSize('udp', decodeQuery(query()))).toBe(MIN_UDP_SIZE);
    const edns = decodeQuery(query({ additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as Answer] }));
    expect(edns.ednsSize).toBe(1232);
    expect(responseSize('udp', edns)).toBe(1232);
    expect(responseSize('udp', { ednsSize: 100 })).toBe(512);
    expect(responseSize('tcp', edns)).toBe(65535);
  });

  test('truncation keeps what fits and sets TC; a fitting answer is whole and TC clear', () => {
    const q = decodeQuery(query());
    const big = encodeWithin(reply(q, manyA(100)), 512);
    expect(big.length).toBeLessThanOrEqual(512);
    const p = dnsPacket.decode(big);
    expect(p.flag_tc).toBe(true);
    expect(p.answers?.length).toBeGreaterThan(10);
    expect(p.answers?.length).toBeLessThan(100);
    const tcp = dnsPacket.decode(encodeWithin(reply(q, manyA(100)), 65535));
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers?.length).toBe(100);
    // A relayed upstream answer gets the client's id, and is cut the same way when too large.
    const upstream = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'big.example' }], answers: manyA(100) });
    const relayed = dnsPacket.decode(relayWithin(upstream, 77, 512));
    expect(relayed.id).toBe(77);
    expect(relayed.flag_tc).toBe(true);
    expect(dnsPacket.decode(relayWithin(upstream, 78, 65535)).answers?.length).toBe(100);
  });

  test('SERVFAIL and FORMERR', () => {
    const q = decodeQuery(query());
    const sf = dnsPacket.decode(servfail(q)) as dnsPacket.DecodedPacket & { rcode: string };
    expect(sf.rcode).toBe('SERVFAIL');
    expect(sf.id).toBe(4242);
    const fe = formerrRaw(Buffer.from([0x12, 0x34, 0x01, 0x00, 0xff]));
    expect(fe && (dnsPacket.decode(fe) as unknown as { rcode: string }).rcode).toBe('FORMERR');
    expect(fe && fe.readUInt16BE(0)).toBe(0x1234);
    expect(formerrRaw(Buffer.from([1]))).toBeUndefined();
    expect(() => decodeQuery(Buffer.from([0, 1, 0, 0, 0, 1]))).toThrow();
  });
});
