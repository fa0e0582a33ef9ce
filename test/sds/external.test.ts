/**
 * `checkExternalSds` (Istio's checkSocket): what counts as a healthy external SDS server on the
 * workload socket — a gRPC connection that becomes ready within the deadline — and what happens
 * to a socket that does not answer like one (removed, so the agent can bind there).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { checkExternalSds } from '../../src/sds/external.js';
import { captureLogger, socketDir } from './helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('external SDS server check', () => {
  test('no path, or a regular file: absent', async () => {
    const d = socketDir();
    const { log } = captureLogger();
    expect(await checkExternalSds(path.join(d, 'socket'), log)).toEqual({ kind: 'absent' });
    fs.writeFileSync(path.join(d, 'file'), '');
    expect(await checkExternalSds(path.join(d, 'file'), log)).toEqual({ kind: 'absent' });
  });

  test('a gRPC server on the socket: healthy, and left in place', async () => {
    const p = path.join(socketDir(), 'socket');
    const server = new grpc.Server();
    await new Promise<void>((res, rej) => server.bindAsync(`unix:${p}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    cleanups.push(() => server.forceShutdown());
    expect(await checkExternalSds(p, captureLogger().log)).toEqual({ kind: 'healthy' });
    expect(fs.lstatSync(p).isSocket()).toBe(true);
  });

  test('a socket that accepts but never speaks HTTP/2 within the deadline: stale, removed', async () => {
    const p = path.join(socketDir(), 'socket');
    const conns = new Set<net.Socket>();
    const mute = net.createServer((c) => void conns.add(c));
    await new Promise<void>((res) => mute.listen(p, res));
    cleanups.push(() => {
      for (const c of conns) c.destroy();
      return new Promise((res) => mute.close(res));
    });
    const r = await checkExternalSds(p, captureLogger().log, 300);
    expect(r.kind).toBe('stale-removed');
    expect(fs.existsSync(p)).toBe(false);
  });
});
