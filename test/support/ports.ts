/**
 * Free loopback ports for tests whose servers cannot bind port 0 (ports named in a bootstrap).
 *
 * A port learnt by binding port 0 and closing comes from the kernel's ephemeral range, so between
 * the check and the real bind any outgoing connection on the machine (another Jest worker's HTTP
 * client, say) may be given it as its local port, and the later bind fails with EADDRINUSE. That
 * happened in CI. The kernel never picks an ephemeral port outside `ip_local_port_range`, so ports
 * are handed out from below that range instead, each Jest worker from its own block, starting at a
 * per-file offset and checked by binding both the wildcard and the loopback address. Only
 * another explicit bind can take such a port, and those are what the block and the check rule out.
 */
import fs from 'node:fs';
import net from 'node:net';

const BLOCK = 1000;
const LOWEST = 10000;

function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // not Linux: fall through to the usual default
  }
  return [32768, 60999];
}

/** This process's block of ports, or null when no block fits below the ephemeral range. */
function block(): { start: number; size: number } | null {
  const [ephLo] = ephemeralRange();
  const blocks = Math.floor((ephLo - LOWEST) / BLOCK);
  if (blocks < 1) return null;
  const worker = Number(process.env.JEST_WORKER_ID ?? '1');
  const index = (Number.isInteger(worker) && worker > 0 ? worker - 1 : 0) % blocks;
  return { start: LOWEST + index * BLOCK, size: BLOCK };
}

const range = block();
// Jest loads this module afresh for every test file, so the offset mixes in the clock too.
let next = range ? (process.pid * 7919 + Date.now()) % range.size : 0;

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function ephemeralPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  if (!range) return ephemeralPort(host);
  for (let tries = 0; tries < range.size; tries++) {
    const port = range.start + (next++ % range.size);
    if ((await canBind(port, '0.0.0.0')) && (await canBind(port, host))) return port;
  }
  return ephemeralPort(host);
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
