/**
 * The one gRPC health codec and client (src/probe/grpc-health.ts): the codec against the
 * proto3 wire bytes, and the client against real @grpc/grpc-js servers.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { healthCodec, probeGrpcHealth, servingStatusName } from '../../src/probe/grpc-health.js';
import { ProbeNetwork } from '../../src/probe/network.js';
import { startHealthServer } from '../support/status-grpc-health.js';
import { freePort } from '../support/ports.js';
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
    expect(health.userAgents.at(-1)).toMatch(/^kube-probe\/1\.31 /);

    const bare = new grpc.Server();
    const port = await new Promise<number>((res, rej) => bare.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    closers.push(() => bare.forceShutdown());
    expect(await probeGrpcHealth({ ...base, port, service: '' })).toMatchObject({ ok: false, kind: 'rpc', code: 'UNIMPLEMENTED' });
  });

  test('nothing listening: the call waits for the connection until the deadline', async () => {
    const r = await probeGrpcHealth({ host: '127.0.0.1', port: await freePort(), service: '', timeoutMs: 300 });
    expect(r).toMatchObject({ ok: false, kind: 'rpc', code: 'DEADLINE_EXCEEDED' });
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
