/**
 * The source-address rule and the TCP prober (src/probe/network.ts, tcp.ts) against real
 * loopback sockets: which address a probe connects from is read off the server's side.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import { PROBE_SOURCE_ADDRESSES, ProbeNetwork } from '../../src/probe/network.js';
import { probeTcp } from '../../src/probe/tcp.js';
import { freePort } from '../support/ports.js';
import { waitUntil } from '../support/envoy-double-harness.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A TCP server recording each peer's address; `close()` destroys its sockets. */
async function peers(host = '127.0.0.1'): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    seen.push(s.remoteAddress ?? '');
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, host, r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return { port: (srv.address() as net.AddressInfo).port, seen };
}

const canBind = (address: string) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, address, () => s.close(() => resolve(true)));
  });

describe('ProbeNetwork', () => {
  test('an IPv4 destination is dialled from 127.0.0.6; a literal is not resolved; brackets are stripped', async () => {
    const n = ProbeNetwork.forPod(false);
    expect(await n.endpoint('127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4, localAddress: '127.0.0.6' });
    const v6 = await n.endpoint('[::1]');
    expect(v6).toMatchObject({ address: '::1', family: 6 });
    // ::6 is used only when this host can bind it.
    expect(v6.localAddress).toBe((await canBind('::6')) ? '::6' : undefined);
  });

  test('an unbindable source address is skipped (the kernel picks); null never binds', async () => {
    // 192.0.2.1 (TEST-NET-1) is on no interface here, so it cannot be bound.
    const unbindable = new ProbeNetwork({ family: 4, sourceAddresses: { v4: '192.0.2.1', v6: '::6' } });
    expect(await unbindable.endpoint('127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(await new ProbeNetwork({ family: 4, sourceAddresses: null }).endpoint('127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4 });
  });

  test('localhost resolves in the preferred family', async () => {
    expect(await ProbeNetwork.forPod(false).endpoint('localhost')).toMatchObject({ address: '127.0.0.1', family: 4, localAddress: PROBE_SOURCE_ADDRESSES.v4 });
    const v6 = await ProbeNetwork.forPod(true).endpoint('localhost');
    // Without an IPv6 localhost entry the lookup falls back to the other family.
    expect(['::1', '127.0.0.1']).toContain(v6.address);
  });
});

describe('probeTcp', () => {
  test('connect passes; with a network the peer sees 127.0.0.6, without one the kernel default', async () => {
    const app = await peers();
    expect(await probeTcp({ host: '127.0.0.1', port: app.port, timeoutMs: 1000, network: ProbeNetwork.forPod(false) })).toEqual({ ok: true });
    expect(await probeTcp({ host: '127.0.0.1', port: app.port, timeoutMs: 1000 })).toEqual({ ok: true });
    expect(await probeTcp({ host: 'localhost', port: app.port, timeoutMs: 1000 })).toEqual({ ok: true });
    await waitUntil('three connections seen by the server', () => app.seen.length >= 3);
    expect(app.seen.slice(0, 2)).toEqual(['127.0.0.6', '127.0.0.1']);
  });

  test('refused → the socket error, not a timeout', async () => {
    const refused = await probeTcp({ host: '127.0.0.1', port: await freePort(), timeoutMs: 1000, network: ProbeNetwork.forPod(false) });
    expect(refused).toMatchObject({ ok: false, timedOut: false, error: expect.objectContaining({ code: 'ECONNREFUSED' }) });
  });
});
