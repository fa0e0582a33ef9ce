/**
 * gRPC framing as the proxy follows it: whole requests reassembled from arbitrary chunking,
 * response boundaries followed without keeping bytes, `grpc-message` percent-encoding, and
 * Istio's expected-vs-error classification of stream ends.
 */
import { describe, expect, test } from '@jest/globals';
import { FrameScanner, FramingError, MessageReader, decodeGrpcMessage, encodeGrpcMessage, frameMessage } from '../../src/xds/grpc-wire.js';
import { expectedTermination } from '../../src/xds/grpc-status.js';

const msgs = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last message')];
const stream = Buffer.concat(msgs.map(frameMessage));

/** Every split of the stream into chunks of `size` bytes. */
function chunks(size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += size) out.push(stream.subarray(i, i + size));
  return out;
}

describe('framing', () => {
  test.each([1, 2, 5, 6, 4096, 16_384, stream.length])('MessageReader and FrameScanner agree at chunk size %i', (size) => {
    const reader = new MessageReader();
    const scanner = new FrameScanner();
    const got: Buffer[] = [];
    const sizes: number[] = [];
    for (const c of chunks(size)) {
      got.push(...reader.push(c));
      sizes.push(...scanner.push(c));
    }
    expect(got.map((b) => b.toString('hex'))).toEqual(msgs.map((b) => b.toString('hex')));
    expect(sizes).toEqual(msgs.map((b) => b.length));
    expect(scanner.inMessage).toBe(false);
  });

  test('compressed or oversized messages are refused', () => {
    expect(() => new MessageReader().push(Buffer.from([1, 0, 0, 0, 1, 9]))).toThrow(FramingError);
    expect(() => new MessageReader(10).push(Buffer.from([0, 0, 0, 0, 11]))).toThrow('exceeds 10');
    expect(() => new MessageReader(10).push(Buffer.from([0, 0, 0, 0, 11]))).toThrow(expect.objectContaining({ code: 'XDS_GRPC_FRAMING', name: 'FramingError' }));
  });
});

describe('grpc-message', () => {
  test('percent-encoding round trip (spaces kept, % and non-ASCII encoded)', () => {
    const text = 'failed: 100% ✗ bad\nline';
    const enc = encodeGrpcMessage(text);
    expect(enc).toBe('failed: 100%25 %E2%9C%97 bad%0Aline');
    expect(decodeGrpcMessage(enc)).toBe(text);
    expect(decodeGrpcMessage('istiod%20restarting')).toBe('istiod restarting');
  });
});

describe('expectedTermination (Istio GRPCErrorType)', () => {
  test.each([
    [{ code: 0, details: '' }, true],
    [{ code: 1, details: 'Cancelled on client' }, true],
    [{ code: 4, details: 'deadline' }, true],
    [{ code: 14, details: 'transport is closing' }, true],
    [{ code: 14, details: 'istiod restarting' }, false],
    [{ code: 16, details: 'authentication failure' }, false],
    [{ code: 13, details: 'boom' }, false],
  ])('%j → %s', (s, expected) => {
    expect(expectedTermination(s)).toBe(expected);
  });
});
