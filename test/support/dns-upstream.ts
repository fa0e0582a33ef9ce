/**
 * A test upstream DNS server on loopback (UDP and TCP on the same port), built on dns-packet:
 * answers A queries for names in `records` (TTL `ttl`), NXDOMAIN otherwise; `mode` 'silent'
 * never answers (a dead resolver), 'big' answers with `bigCount` A records. Counts queries.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';

export interface UpstreamOptions {
  host?: string;
  port?: number;
  records?: Record<string, string[]>;
  ttl?: number;
  mode?: 'answer' | 'silent';
  bigCount?: number;
}

export class DnsUpstream {
  queries = 0;
  readonly seen: Array<{ protocol: 'udp' | 'tcp'; name: string; type: string }> = [];
  mode: 'answer' | 'silent';
  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly host: string,
    readonly port: number,
    private readonly o: UpstreamOptions,
  ) {
    this.mode = o.mode ?? 'answer';
  }

  static async start(o: UpstreamOptions = {}): Promise<DnsUpstream> {
    const host = o.host ?? '127.0.0.1';
    const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(o.port ?? 0, host, () => resolve());
    });
    const port = udp.address().port;
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, host, () => resolve());
    });
    const u = new DnsUpstream(udp, tcp, host, port, o);
    udp.on('message', (msg, rinfo) => {
      const out = u.answer(msg, 'udp');
      if (out) udp.send(out, rinfo.port, rinfo.address);
    });
    tcp.on('connection', (c) => {
      c.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const n = buf.readUInt16BE(0);
          const out = u.answer(buf.subarray(2, 2 + n), 'tcp');
          buf = buf.subarray(2 + n);
          if (out) {
            const len = Buffer.alloc(2);
            len.writeUInt16BE(out.length);
            c.write(Buffer.concat([len, out]));
          }
        }
      });
    });
    return u;
  }

  get address(): string {
    return net.isIPv6(this.host) ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  private answer(msg: Buffer, protocol: 'udp' | 'tcp'): Buffer | undefined {
    this.queries++;
    if (this.mode === 'silent') return undefined;
    const q = dnsPacket.decode(msg);
    const question = q.questions?.[0];
    if (!question) return undefined;
    this.seen.push({ protocol, name: question.name, type: question.type });
    const ttl = this.o.ttl ?? 60;
    let answers: Answer[] = [];
    if (question.name === 'big.upstream.test') {
      answers = Array.from({ length: this.o.bigCount ?? 200 }, (_, i) => ({ type: 'A', name: question.name, ttl, class: 'IN', data: `10.200.${i >> 8}.${i & 255}` }));
    } else {
      const ips = question.type === 'A' ? this.o.records?.[question.name] : undefined;
      answers = (ips ?? []).map((data) => ({ type: 'A', name: question.name, ttl, class: 'IN', data }));
    }
    const known = question.name === 'big.upstream.test' || this.o.records?.[question.name] !== undefined;
    return dnsPacket.encode({
      type: 'response',
      id: q.id ?? 0,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3),
      questions: [question],
      answers,
    });
  }

  private closing: Promise<void> | undefined;

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await new Promise<void>((r) => this.udp.close(() => r()));
      await new Promise<void>((r) => this.tcp.close(() => r()));
    })();
    return this.closing;
  }
}

/** A decoded reply with its records' data loosely typed (tests compare it) and the rcode name. */
export type Reply = Omit<dnsPacket.DecodedPacket, 'answers'> & {
  rcode: string;
  answers?: Array<{ type: string; name: string; ttl?: number; class?: string; flush?: boolean; data?: unknown }>;
};

/** One query over UDP or TCP to `host:port`; resolves with the decoded answer (rejects after `timeoutMs`). */
export function ask(
  host: string,
  port: number,
  name: string,
  opts: { type?: dnsPacket.RecordType; protocol?: 'udp' | 'tcp'; id?: number; ednsSize?: number; raw?: Buffer; timeoutMs?: number } = {},
): Promise<{ packet: Reply; bytes: Buffer; ms: number }> {
  const id = opts.id ?? Math.floor(Math.random() * 65535);
  const query =
    opts.raw ??
    dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: opts.type ?? 'A', name }],
      ...(opts.ednsSize ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: opts.ednsSize } as Answer] } : {}),
    });
  const started = performance.now();
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const done = (bytes: Buffer) => resolve({ packet: dnsPacket.decode(bytes) as unknown as Reply, bytes, ms: performance.now() - started });
    if ((opts.protocol ?? 'udp') === 'udp') {
      const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      const t = setTimeout(() => {
        s.close();
        reject(new Error(`no UDP answer from ${host}:${port} for ${name} within ${timeoutMs}ms`));
      }, timeoutMs);
      s.on('message', (m) => {
        clearTimeout(t);
        s.close();
        done(m);
      });
      s.send(query, port, host);
    } else {
      const c = net.connect({ host, port });
      let buf = Buffer.alloc(0);
      const t = setTimeout(() => {
        c.destroy();
        reject(new Error(`no TCP answer from ${host}:${port} for ${name} within ${timeoutMs}ms`));
      }, timeoutMs);
      c.on('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      c.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length);
        c.write(Buffer.concat([len, query]));
      });
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          clearTimeout(t);
          c.destroy();
          done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        }
      });
    }
  });
}
