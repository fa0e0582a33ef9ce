/**
 * The DNS proxy (docs/DNS.md): UDP and TCP listeners answering from the NDS lookup table and
 * forwarding everything else to the resolv.conf servers. Started by `DnsServer.start` (rejects
 * with DNS_LISTEN_FAILED naming the address, e.g. a port in use); `updateTable` swaps the
 * table atomically; `close()` / dispose stops listening and ends TCP connections (idempotent).
 *
 * Bounds (bad input must not cost memory): a message that cannot be decoded gets FORMERR (or
 * nothing when shorter than a header); at most `maxInflight` forwarded queries wait at once
 * (beyond: SERVFAIL at once); a TCP connection buffers at most one message (≤ 65,537 bytes),
 * is closed after `tcpIdleMs` without a complete message, and at most `maxTcpConnections` are open.
 *
 * `snapshot()` is the status-page contract: plain JSON facts (addresses, table size, counters,
 * cache figures), never query contents.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Registry } from 'prom-client';
import type { Answer } from 'dns-packet';
import { AgentError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { AnswerCache, cacheKey } from './cache.js';
import { formatAddress } from './listen.js';
import { createDnsMetrics, type DnsMetrics } from './metrics.js';
import type { NameTable } from './nds.js';
import { buildLookupTable, debugNameTable, lookupHost, type LookupTable, type TableContext } from './table.js';
import { Forwarder } from './upstream.js';
import { decodeQuery, encodeWithin, formerrRaw, relayWithin, reply, responseSize, servfail, type Protocol, type Query } from './wire.js';

export interface DnsServerOptions {
  /** Listener addresses (see listen.ts `planListeners`); port 0 = any (UDP and TCP then differ). */
  addresses: { host: string; port: number }[];
  /** resolv.conf servers (`host:port`) and search domains. */
  servers: string[];
  context: TableContext;
  forwardTimeoutMs: number;
  forwardParallel: boolean;
  /** Upstream answer cache entries (0 = no cache). */
  cacheSize: number;
  /** Forward (instead of SERVFAIL) before the first table: Istio's `:53` as root. */
  respondBeforeSync: boolean;
  log: Logger;
  registry?: Registry;
  maxInflight?: number;
  tcpIdleMs?: number;
  maxTcpConnections?: number;
}

export interface DnsSnapshot {
  listening: { udp: string[]; tcp: string[] };
  upstreamServers: string[];
  tableReady: boolean;
  /** Table entries from istiod and the names answered locally (with generated variants). */
  tableEntries: number;
  tableNames: number;
  tableUpdatedAt?: string;
  tableUpdates: number;
  queries: number;
  localAnswers: number;
  forwarded: number;
  upstreamFailures: number;
  malformed: number;
  overloaded: number;
  cache: { maxEntries: number; entries: number; hits: number; misses: number };
}

export class DnsServer implements AsyncDisposable {
  private table: LookupTable | undefined;
  private rawTable: NameTable | undefined;
  private tableUpdatedAt: Date | undefined;
  private tableUpdates = 0;
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly tcpSockets = new Set<net.Socket>();
  private readonly forwarder: Forwarder;
  private readonly cache: AnswerCache;
  private readonly metrics: DnsMetrics;
  private readonly log: Logger;
  private inflight = 0;
  private closing: Promise<void> | undefined;
  private readonly counts = { queries: 0, localAnswers: 0, forwarded: 0, upstreamFailures: 0, malformed: 0, overloaded: 0 };

  private constructor(private readonly o: DnsServerOptions) {
    this.log = o.log;
    this.metrics = createDnsMetrics(o.registry);
    this.cache = new AnswerCache(o.cacheSize);
    this.forwarder = new Forwarder({
      servers: o.servers,
      timeoutMs: o.forwardTimeoutMs,
      parallel: o.forwardParallel,
      onFailure: (s, why) => this.log.info(`upstream failure: ${why}`),
    });
  }

  static async start(o: DnsServerOptions): Promise<DnsServer> {
    const s = new DnsServer(o);
    try {
      for (const a of o.addresses) {
        await s.listenUdp(a);
        await s.listenTcp(a);
      }
    } catch (err) {
      await s.close();
      throw err;
    }
    const l = s.listening();
    o.log.info(`DNS proxy listening on udp ${l.udp.join(',')} tcp ${l.tcp.join(',')}, upstream ${o.servers.join(',') || '(none)'}`);
    return s;
  }

  private listenUdp(a: { host: string; port: number }): Promise<void> {
    const sock = dgram.createSocket({ type: net.isIPv6(a.host) ? 'udp6' : 'udp4', ipv6Only: net.isIPv6(a.host) });
    return new Promise((resolve, reject) => {
      sock.once('error', (err) => reject(listenError('udp', a, err)));
      sock.bind(a.port, a.host, () => {
        sock.removeAllListeners('error');
        sock.on('error', (err) => this.log.warn(`DNS udp ${formatAddress(a)}: ${describeError(err)}`));
        sock.on('message', (msg, rinfo) => this.onUdp(sock, msg, rinfo));
        this.udp.push(sock);
        resolve();
      });
    });
  }

  private listenTcp(a: { host: string; port: number }): Promise<void> {
    const server = net.createServer((c) => this.onTcp(c));
    server.maxConnections = this.o.maxTcpConnections ?? 256;
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(listenError('tcp', a, err)));
      server.listen({ host: a.host, port: a.port, ipv6Only: net.isIPv6(a.host) }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.log.warn(`DNS tcp ${formatAddress(a)}: ${describeError(err)}`));
        this.tcp.push(server);
        resolve();
      });
    });
  }

  /** Bound addresses (`host:port`) per protocol. */
  listening(): { udp: string[]; tcp: string[] } {
    const fmt = (x: { address: string; port: number }) => formatAddress({ host: x.address, port: x.port });
    return {
      udp: this.udp.map((u) => fmt(u.address())),
      tcp: this.tcp.map((t) => fmt(t.address() as net.AddressInfo)),
    };
  }

  /** Replaces the lookup table (the first one makes the proxy ready). */
  updateTable(nt: NameTable): void {
    const t = buildLookupTable(nt, this.o.context);
    this.table = t;
    this.rawTable = nt;
    this.tableUpdatedAt = new Date();
    this.tableUpdates++;
    this.log.info(`DNS lookup table updated: ${t.entries} entries, ${t.hosts.size} names`);
  }

  get ready(): boolean {
    return this.table !== undefined;
  }

  /** The table as /debug/ndsz shows it (with generated names), or undefined before the first. */
  debugTable(): NameTable | undefined {
    return this.rawTable ? debugNameTable(this.rawTable, this.o.context) : undefined;
  }

  snapshot(): DnsSnapshot {
    return {
      listening: this.listening(),
      upstreamServers: [...this.o.servers],
      tableReady: this.ready,
      tableEntries: this.table?.entries ?? 0,
      tableNames: this.table?.hosts.size ?? 0,
      ...(this.tableUpdatedAt ? { tableUpdatedAt: this.tableUpdatedAt.toISOString() } : {}),
      tableUpdates: this.tableUpdates,
      ...this.counts,
      cache: { maxEntries: this.cache.maxEntries, entries: this.cache.size, hits: this.cache.hits, misses: this.cache.misses },
    };
  }

  private onUdp(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const send = (out: Buffer | undefined) => {
      if (out && !this.closing) sock.send(out, rinfo.port, rinfo.address, () => undefined);
    };
    const r = this.answer(msg, 'udp');
    if (r instanceof Promise) r.then(send, () => undefined);
    else send(r);
  }

  private onTcp(c: net.Socket): void {
    this.tcpSockets.add(c);
    c.on('close', () => this.tcpSockets.delete(c));
    c.on('error', () => undefined);
    c.setTimeout(this.o.tcpIdleMs ?? 10_000, () => c.destroy());
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) return; // at most one message (≤ 65,537 bytes) is ever buffered
        const msg = Buffer.from(buf.subarray(2, 2 + n));
        buf = buf.subarray(2 + n);
        const write = (out: Buffer | undefined) => {
          if (!out || c.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length, 0);
          c.write(Buffer.concat([len, out]));
        };
        const r = this.answer(msg, 'tcp');
        if (r instanceof Promise) r.then(write, () => undefined);
        else write(r);
      }
    });
  }

  /** The answer to one message (sync when local), or undefined to send nothing. */
  answer(msg: Buffer, protocol: Protocol): Buffer | undefined | Promise<Buffer | undefined> {
    this.counts.queries++;
    this.metrics.requests.inc();
    let q: Query;
    try {
      q = decodeQuery(msg);
    } catch {
      this.counts.malformed++;
      return formerrRaw(msg);
    }
    if (q.questions.length === 0) return servfail(q);
    const question = q.questions[0] as NonNullable<Query['questions'][number]>;
    const table = this.table;
    if (!table) {
      if (this.o.respondBeforeSync) return this.forward(msg, q, protocol);
      return servfail(q);
    }
    const found = lookupHost(table, question.type, question.name);
    if (found.found) {
      this.counts.localAnswers++;
      return encodeWithin(reply(q, found.answers as Answer[]), responseSize(protocol, q));
    }
    return this.forward(msg, q, protocol);
  }

  private async forward(msg: Buffer, q: Query, protocol: Protocol): Promise<Buffer | undefined> {
    const question = q.questions[0] as NonNullable<Query['questions'][number]>;
    const size = responseSize(protocol, q);
    const key = this.cache.maxEntries > 0 ? cacheKey(question.name, question.type, question.class ?? 'IN', protocol, q.dnssecOk) : undefined;
    if (key !== undefined) {
      const hit = this.cache.get(key, q.id, Date.now());
      if (hit) {
        this.metrics.cacheHits.inc();
        return relayWithin(hit, q.id, size);
      }
      this.metrics.cacheMisses.inc();
    }
    if (this.inflight >= (this.o.maxInflight ?? 1024)) {
      this.counts.overloaded++;
      return servfail(q);
    }
    this.inflight++;
    this.counts.forwarded++;
    this.metrics.upstreamRequests.inc();
    const started = performance.now();
    try {
      const answer = await this.forwarder.forward(msg, protocol);
      this.metrics.upstreamDuration.observe((performance.now() - started) / 1000);
      if (!answer) {
        this.counts.upstreamFailures++;
        this.metrics.upstreamFailures.inc();
        return servfail(q);
      }
      if (key !== undefined) this.cache.put(key, answer, Date.now());
      try {
        return relayWithin(answer, q.id, size);
      } catch {
        return servfail(q); // the upstream answered something dns-packet cannot read and it was too large to relay whole
      }
    } finally {
      this.inflight--;
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const u of this.udp) await new Promise<void>((r) => u.close(() => r()));
      for (const c of this.tcpSockets) c.destroy();
      await Promise.all(this.tcp.map((t) => new Promise<void>((r) => t.close(() => r()))));
      this.log.debug('DNS proxy closed');
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function listenError(proto: string, a: { host: string; port: number }, err: Error): AgentError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'EADDRINUSE' ? 'the address is already in use' : describeError(err);
  return new AgentError('DNS_LISTEN_FAILED', `DNS proxy: cannot listen on ${proto} ${formatAddress(a)}: ${why}`, { cause: err });
}
