/**
 * The one gRPC health codec and client (src/probe/grpc-health.ts): the codec against the
 * proto3 wire bytes and protobufjs, and the client against real @grpc/grpc-js servers.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import net from 'node:net';
import { evaluate, healthCodec, type GrpcHeaders, probeGrpcHealth, servingStatusName } from '../../src/probe/grpc-health.js';
import { ProbeNetwork } from '../../src/probe/network.js';
import { startHealthServer } from '../support/status-grpc-health.js';
import { freePort } from '../support/ports.js';
import { waitUntil } from '../support/envoy-double-harness.js';
import { grpcMessage } from '../../src/xds/health-checks.js';
import { grpcProbeMessage } from '../../src/status/app-probe.js';

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe('codec and status table', () => {
  test('grpc.health.v1 wire bytes (proto3: defaults omitted)', () => {
    expect(healthCodec.encodeRequest({ service: 'api' }).toString('hex')).toBe('0a03617069');
    expect(healthCodec.encodeRequest({ service: '' }).length).toBe(0);
    expect(healthCodec.decodeRequest(Buffer.from('0a03617069', 'hex'))).toEqual({ service: 'api' });
    expect(healthCodec.decodeRequest(Buffer.alloc(0))).toEqual({ service: '' });
    expect(healthCodec.encodeResponse({ status: 2 }).toString('hex')).toBe('0802');
    expect(healthCodec.encodeResponse({ status: 0 }).length).toBe(0);
    expect(healthCodec.decodeResponse(Buffer.from('0801', 'hex'))).toEqual({ status: 1 });
    // An absent status is UNKNOWN (0); an unknown field is skipped.
    expect(healthCodec.decodeResponse(Buffer.from('1001', 'hex'))).toEqual({ status: 0 });
  });

  test('agrees with protobufjs (an independent implementation) both ways, unknown fields skipped', () => {
    const root = protobuf.Root.fromJSON({
      nested: { Req: { fields: { service: { type: 'string', id: 1 }, extra: { type: 'int64', id: 9 } } }, Res: { fields: { status: { type: 'int32', id: 1 }, note: { type: 'string', id: 2 } } } },
    });
    const Req = root.lookupType('Req');
    const Res = root.lookupType('Res');
    for (const service of ['', 'a', 'grpc.health.v1.Health', 'ü'.repeat(300)]) {
      const theirs = Buffer.from(Req.encode(Req.create(service ? { service } : {})).finish());
      expect(healthCodec.encodeRequest({ service })).toEqual(theirs);
      expect(healthCodec.decodeRequest(Buffer.from(Req.encode(Req.create({ service, extra: 7 })).finish()))).toEqual({ service });
      expect((Req.decode(healthCodec.encodeRequest({ service })) as unknown as { service: string }).service).toBe(service);
    }
    for (const status of [0, 1, 2, 3, 200]) {
      const theirs = Buffer.from(Res.encode(Res.create(status ? { status } : {})).finish());
      expect(healthCodec.encodeResponse({ status })).toEqual(theirs);
      expect(healthCodec.decodeResponse(Buffer.from(Res.encode(Res.create({ note: 'x', status })).finish()))).toEqual({ status });
    }
    expect(() => healthCodec.decodeResponse(Buffer.from([0x08]))).toThrow('truncated varint');
  });

  test.each([
    [0, 'UNKNOWN'],
    [1, 'SERVING'],
    [2, 'NOT_SERVING'],
    [3, 'SERVICE_UNKNOWN'],
    [7, '7'],
  ])('ServingStatus %i is %s', (n, name) => expect(servingStatusName(n)).toBe(name));
});

describe('probeGrpcHealth', () => {
  test('SERVING passes; other statuses, unknown services and a missing health service fail with what happened', async () => {
    const health = await startHealthServer({ '': 1, batch: 2 });
    closers.push(() => health.close());
    const base = { host: '127.0.0.1', port: health.port, timeoutMs: 2000 };
    expect(await probeGrpcHealth({ ...base, service: '' })).toEqual({ ok: true });
    expect(await probeGrpcHealth({ ...base, service: 'batch' })).toEqual({ ok: false, kind: 'status', status: 2, statusName: 'NOT_SERVING' });
    expect(await probeGrpcHealth({ ...base, service: 'nope' })).toMatchObject({ ok: false, kind: 'rpc', code: 'NOT_FOUND', details: 'unknown service' });
    // Through a network (the host is resolved first), with the caller's user agent.
    expect(await probeGrpcHealth({ ...base, host: 'localhost', service: '', userAgent: 'kube-probe/1.31', network: ProbeNetwork.forPod(false) })).toEqual({ ok: true });
    expect(health.userAgents.at(-1)).toBe('kube-probe/1.31');
    // The source rule applies through a network (127.0.0.6), not without one.
    expect(health.peers.at(-1)).toMatch(/^127\.0\.0\.6:\d+$/);
    expect(health.peers[0]).toMatch(/^127\.0\.0\.1:\d+$/);

    const bare = new grpc.Server();
    const port = await new Promise<number>((res, rej) => bare.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    closers.push(() => bare.forceShutdown());
    expect(await probeGrpcHealth({ ...base, port, service: '' })).toMatchObject({ ok: false, kind: 'rpc', code: 'UNIMPLEMENTED' });
  });

  test('IPv6: a bracketed authority, from ::6 when it can be bound (else the kernel default)', async () => {
    const v6Bindable = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(0, '::6', () => s.close(() => resolve(true)));
    });
    const health = await startHealthServer({ '': 1 }, '::1');
    closers.push(() => health.close());
    expect(await probeGrpcHealth({ host: '::1', port: health.port, service: '', timeoutMs: 2000, network: ProbeNetwork.forPod(true) })).toEqual({ ok: true });
    expect(health.peers[0]?.replace(/:\d+$/, '')).toBe(v6Bindable ? '::6' : '::1');
  });

  test('a connection that fails before an answer is retried with backoff: the server coming up within the timeout passes', async () => {
    // First a listener that drops every connection, then (once one was dropped) the real server on the same port.
    let dropped = 0;
    const dropper = net.createServer((sock) => {
      dropped++;
      sock.destroy();
    });
    const port = await new Promise<number>((r) => dropper.listen(0, '127.0.0.1', () => r((dropper.address() as net.AddressInfo).port)));
    const probe = probeGrpcHealth({ host: '127.0.0.1', port, service: '', timeoutMs: 5000 });
    await waitUntil('the first attempt to be dropped', () => dropped >= 1);
    await new Promise<void>((r) => dropper.close(() => r()));
    const health = await startHealthServer({ '': 1 }, '127.0.0.1', port);
    closers.push(() => health.close());
    expect(await probe).toEqual({ ok: true });
    expect(dropped).toBe(1);
  });

  test('nothing listening: the call waits for the connection until the deadline', async () => {
    const r = await probeGrpcHealth({ host: '127.0.0.1', port: await freePort(), service: '', timeoutMs: 300 });
    expect(r).toMatchObject({ ok: false, kind: 'rpc', code: 'DEADLINE_EXCEEDED' });
  });
});

describe('evaluate (PURE): response headers, trailers and messages → outcome', () => {
  const ok = { ':status': 200, 'content-type': 'application/grpc' };
  const serving = [healthCodec.encodeResponse({ status: 1 })];
  test.each<[string, GrpcHeaders, GrpcHeaders | undefined, Buffer[], object]>([
    ['SERVING', ok, { 'grpc-status': '0' }, serving, { ok: true }],
    ['NOT_SERVING', ok, { 'grpc-status': '0' }, [healthCodec.encodeResponse({ status: 2 })], { ok: false, kind: 'status', status: 2, statusName: 'NOT_SERVING' }],
    ['trailers-only error, percent-encoded message', { ...ok, 'grpc-status': '12', 'grpc-message': 'no %E2%9C%93 here' }, undefined, [], { kind: 'rpc', code: 'UNIMPLEMENTED', details: 'no ✓ here', message: '12 UNIMPLEMENTED: no ✓ here' }],
    ['HTTP 404', { ':status': 404 }, undefined, [], { kind: 'rpc', code: 'UNIMPLEMENTED', details: 'Received HTTP status code 404' }],
    ['HTTP 503', { ':status': 503 }, undefined, [], { kind: 'rpc', code: 'UNAVAILABLE' }],
    ['no grpc-status', ok, {}, serving, { kind: 'rpc', code: 'UNKNOWN', details: 'No status received' }],
    ['OK without a message', ok, { 'grpc-status': '0' }, [], { kind: 'rpc', code: 'UNIMPLEMENTED' }],
    ['truncated message', ok, { 'grpc-status': '0' }, [Buffer.from([0x08])], { kind: 'rpc', code: 'INTERNAL' }],
  ])('%s', (_name, headers, trailers, messages, expected) => {
    expect(evaluate(headers, trailers, messages)).toMatchObject(expected);
  });
});

describe('outcome → message (PURE, one per consumer)', () => {
  const outcomes = [
    { ok: true } as const,
    { ok: false, kind: 'status', status: 3, statusName: 'SERVICE_UNKNOWN' } as const,
    { ok: false, kind: 'rpc', code: 'DEADLINE_EXCEEDED', details: 'Deadline exceeded', message: '4 DEADLINE_EXCEEDED: Deadline exceeded' } as const,
    { ok: false, kind: 'rpc', code: 'UNIMPLEMENTED', details: 'no Check', message: '12 UNIMPLEMENTED: no Check' } as const,
    { ok: false, kind: 'rpc', code: 'UNAVAILABLE', details: '', message: '14 UNAVAILABLE: No connection established' } as const,
  ];
  test('xDS health report messages', () => {
    expect(outcomes.map((o) => grpcMessage(o, '10.0.0.1:9090', 1000))).toEqual([
      undefined,
      'gRPC probe of 10.0.0.1:9090: status SERVICE_UNKNOWN',
      'gRPC probe of 10.0.0.1:9090 failed: timed out after 1000ms',
      'gRPC probe of 10.0.0.1:9090 failed: no Check',
      'gRPC probe of 10.0.0.1:9090 failed: 14 UNAVAILABLE: No connection established',
    ]);
  });
  test("app probe log reasons (the kubelet's wording)", () => {
    expect(outcomes.map((o) => grpcProbeMessage(o))).toEqual([
      undefined,
      'health check status SERVICE_UNKNOWN',
      'grpc request not finished within timeout: Deadline exceeded',
      'server does not implement the grpc health protocol (grpc.health.v1.Health): no Check',
      'grpc probe failed: 14 UNAVAILABLE: No connection established',
    ]);
  });
});
