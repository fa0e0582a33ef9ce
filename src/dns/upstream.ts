/**
 * Forwarding a query to the resolv.conf servers over the protocol it came in on (Istio's
 * `queryUpstream`): one exchange per try, each bounded by `timeoutMs`; serially over the
 * servers in a shuffled order until one answers, or (`parallel`) to all at once, first answer
 * wins. `undefined` when every server failed; failures are reported to `onFailure`.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { shuffleInPlace } from './table.js';
import { splitHostPort } from './resolv.js';
import type { Protocol } from './wire.js';

export interface ForwarderOptions {
  /** `host:port` of each server. */
  servers: readonly string[];
  timeoutMs: number;
  parallel: boolean;
  onFailure?: (server: string, why: string) => void;
}

export class Forwarder {
  constructor(private readonly o: ForwarderOptions) {}

  get servers(): readonly string[] {
    return this.o.servers;
  }

  async forward(query: Buffer, protocol: Protocol): Promise<Buffer | undefined> {
    const servers = [...this.o.servers];
    if (servers.length === 0) return undefined;
    if (this.o.parallel) return this.parallel(servers, query, protocol);
    for (const s of shuffleInPlace(servers)) {
      try {
        return await exchange(s, protocol, query, this.o.timeoutMs);
      } catch (err) {
        this.o.onFailure?.(s, (err as Error).message);
      }
    }
    return undefined;
  }

  private parallel(servers: string[], query: Buffer, protocol: Protocol): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      let failed = 0;
      let done = false;
      for (const s of servers) {
        exchange(s, protocol, query, this.o.timeoutMs).then(
          (r) => {
            if (!done) {
              done = true;
              resolve(r);
            }
          },
          (err: Error) => {
            this.o.onFailure?.(s, err.message);
            if (++failed === servers.length && !done) {
              done = true;
              resolve(undefined);
            }
          },
        );
      }
    });
  }
}

/** One query/answer with `server` (`host:port`); rejects with a message naming the server. */
export function exchange(server: string, protocol: Protocol, query: Buffer, timeoutMs: number): Promise<Buffer> {
  const hp = splitHostPort(server);
  if (!hp) return Promise.reject(new Error(`${server}: not a host:port`));
  return protocol === 'udp' ? exchangeUdp(hp.host, hp.port, server, query, timeoutMs) : exchangeTcp(hp.host, hp.port, server, query, timeoutMs);
}

function exchangeUdp(host: string, port: number, server: string, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host.split('%')[0] as string) ? 'udp6' : 'udp4');
    const id = query.readUInt16BE(0);
    let settled = false;
    const finish = (err: Error | undefined, msg?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(msg as Buffer);
    };
    const timer = setTimeout(() => finish(new Error(`${server}: no answer within ${timeoutMs}ms (udp)`)), timeoutMs);
    sock.on('error', (err) => finish(new Error(`${server}: ${err.message} (udp)`)));
    sock.on('message', (msg) => {
      if (msg.length >= 12 && msg.readUInt16BE(0) === id && (msg[2] as number) & 0x80) finish(undefined, msg);
    });
    sock.connect(port, host, () => {
      sock.send(query, (err) => {
        if (err) finish(new Error(`${server}: ${err.message} (udp)`));
      });
    });
  });
}

function exchangeTcp(host: string, port: number, server: string, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, msg?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(msg as Buffer);
    };
    const timer = setTimeout(() => finish(new Error(`${server}: no answer within ${timeoutMs}ms (tcp)`)), timeoutMs);
    sock.on('error', (err) => finish(new Error(`${server}: ${err.message} (tcp)`)));
    sock.on('end', () => finish(new Error(`${server}: connection closed before an answer (tcp)`)));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length, 0);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2) return;
      const n = buf.readUInt16BE(0);
      if (buf.length >= 2 + n) finish(undefined, buf.subarray(2, 2 + n));
    });
  });
}
