#!/usr/bin/env node
/**
 * DNS proxy benchmark (docs/DNS.md). Run after `npm run build`:
 *   node scripts/bench/dns.mjs [--qps 5000] [--seconds 5] [--hosts 10000] [--fwd-qps 1000]
 *
 * The proxy (src/dns/server.ts from dist/) runs in its own process with a table of `--hosts`
 * Kubernetes services; the load generator is this process, over UDP on loopback.
 * 1. Local answers: open loop at `--qps` (target p99 ≤ 1 ms at 5,000 qps) for `--seconds`,
 *    random names from the table: p50/p99/max latency, answered/sent, achieved rate; then a
 *    closed loop (64 in flight) for the saturation throughput.
 * 2. Forwarded answers: a test upstream resolver in a third process; p50/p99 asking it
 *    directly vs through the proxy (names not in the table, no cache) at `--fwd-qps`.
 * 3. Memory: the proxy process's private memory (RssAnon from /proc/<pid>/status, Pss_Anon from
 *    smaps_rollup) with an empty table and after the `--hosts` table is loaded.
 */
import { fork } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import dnsPacket from 'dns-packet';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (rel) => pathToFileURL(path.join(ROOT, 'dist', rel)).href;
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};

const pct = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);
const ms = (x) => +x.toFixed(3);

// ---------------------------------------------------------------- child processes
if (process.argv[2] === '--proxy' || process.argv[2] === '--upstream') process.on('disconnect', () => process.exit(0));
if (process.argv[2] === '--proxy') {
  const { DnsServer } = await import(dist('src/dns/server.js'));
  const { createLogger } = await import(dist('src/log.js'));
  const upstream = process.argv[3];
  const dns = await DnsServer.start({
    addresses: [{ host: '127.0.0.1', port: 0 }],
    servers: [upstream],
    context: { namespace: 'ns0', domain: 'ns0.svc.cluster.local', search: ['ns0.svc.cluster.local', 'svc.cluster.local', 'cluster.local'] },
    forwardTimeoutMs: 5000,
    forwardParallel: false,
    cacheSize: 0,
    respondBeforeSync: false,
    log: createLogger({ outputLevel: 'none' }),
    maxInflight: 4096,
  });
  process.on('message', (m) => {
    if (m.table) {
      const t = {};
      for (let i = 0; i < m.table; i++) {
        t[`svc-${i}.ns${i % 50}.svc.cluster.local`] = { ips: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], registry: 'Kubernetes', shortname: `svc-${i}`, namespace: `ns${i % 50}`, altHosts: [] };
      }
      dns.updateTable(t);
      globalThis.gc?.();
      process.send({ loaded: dns.snapshot().tableNames });
    }
    if (m.gc) {
      globalThis.gc?.();
      process.send({ gced: true });
    }
  });
  process.send({ port: Number(dns.listening().udp[0].split(':').pop()) });
} else if (process.argv[2] === '--upstream') {
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, r) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions[0];
    s.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: [question], answers: [{ type: 'A', name: question.name, ttl: 60, data: '192.0.2.1' }] }), r.port, r.address);
  });
  s.bind(0, '127.0.0.1', () => process.send({ port: s.address().port }));
} else {
  await main();
}

// ---------------------------------------------------------------- load generator
function child(args) {
  const c = fork(fileURLToPath(import.meta.url), args, { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = () => new Promise((r) => c.once('message', r));
  return { c, next };
}

function memory(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssAnon = Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  let pssAnon = NaN;
  try {
    pssAnon = Number(/Pss_Anon:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN);
  } catch {
    // older kernels
  }
  return { rssAnonMiB: +(rssAnon / 1024).toFixed(1), pssAnonMiB: +(pssAnon / 1024).toFixed(1) };
}


/** Open loop at `qps` for `seconds`: latency per answered query (ms). */
async function openLoop(port, qps, seconds, name) {
  const s = dgram.createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  s.setRecvBufferSize?.(8 * 1024 * 1024);
  const sentAt = new Map();
  const lat = [];
  s.on('message', (m) => {
    const id = m.readUInt16BE(0);
    const t = sentAt.get(id);
    if (t !== undefined) {
      lat.push(performance.now() - t);
      sentAt.delete(id);
    }
  });
  const start = performance.now();
  const total = qps * seconds;
  let sent = 0;
  let id = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * qps));
    while (sent < due) {
      id = (id + 1) & 0xffff;
      const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: name(sent) }] });
      sentAt.set(id, performance.now());
      s.send(q, port, '127.0.0.1');
      sent++;
    }
    // Sleep between batches (≈1 ms): a spinning generator would take the CPU the proxy needs.
    await new Promise((r) => setTimeout(r, 1));
  }
  const elapsed = (performance.now() - start) / 1000;
  const until = performance.now() + 2000;
  while (lat.length < sent && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
  s.close();
  lat.sort((a, b) => a - b);
  return { sent, answered: lat.length, rate: Math.round(sent / elapsed), p50: ms(pct(lat, 50)), p99: ms(pct(lat, 99)), max: ms(lat[lat.length - 1] ?? NaN) };
}

/** Closed loop: `inflight` queries outstanding for `seconds`; answers per second. */
async function closedLoop(port, inflight, seconds, name) {
  const s = dgram.createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  let done = 0;
  let id = 0;
  const send = () => {
    id = (id + 1) & 0xffff;
    s.send(dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name: name(id) }] }), port, '127.0.0.1');
  };
  const end = performance.now() + seconds * 1000;
  await new Promise((resolve) => {
    s.on('message', () => {
      done++;
      if (performance.now() < end) send();
      else resolve();
    });
    for (let i = 0; i < inflight; i++) send();
  });
  s.close();
  return Math.round(done / seconds);
}

async function main() {
  const qps = arg('qps', 5000);
  const seconds = arg('seconds', 5);
  const hosts = arg('hosts', 10000);
  const fwdQps = arg('fwd-qps', 1000);
  const up = child(['--upstream']);
  const upPort = (await up.next()).port;
  const px = child(['--proxy', `127.0.0.1:${upPort}`]);
  const pxPort = (await px.next()).port;
  px.c.send({ gc: true });
  await px.next();
  const memEmpty = memory(px.c.pid);

  px.c.send({ table: hosts });
  const loaded = (await px.next()).loaded;
  const memTable = memory(px.c.pid);
  const localName = (i) => `svc-${(i * 7919) % hosts}.ns${((i * 7919) % hosts) % 50}`;
  // warm-up
  await openLoop(pxPort, 2000, 1, localName);

  const local = await openLoop(pxPort, qps, seconds, localName);

  const saturation = await closedLoop(pxPort, 64, 3, localName);
  const fwdName = (i) => `ext-${i}.example.org`;
  await openLoop(pxPort, fwdQps, 1, fwdName);

  const direct = await openLoop(upPort, fwdQps, seconds, fwdName);
  const forwarded = await openLoop(pxPort, fwdQps, seconds, fwdName);
  const memAfter = memory(px.c.pid);
  px.c.kill();
  up.c.kill();
  const out = {
    node: process.version,
    table: { hosts, namesAnswered: loaded },
    local: { ...local, targetP99Ms: 1, saturationQps: saturation },
    forwarded: { qps: fwdQps, direct, viaProxy: forwarded, addedP50Ms: ms(forwarded.p50 - direct.p50), addedP99Ms: ms(forwarded.p99 - direct.p99) },
    memory: { emptyTable: memEmpty, withTable: memTable, afterLoad: memAfter, tableCostMiB: { rssAnon: +(memTable.rssAnonMiB - memEmpty.rssAnonMiB).toFixed(1), pssAnon: +(memTable.pssAnonMiB - memEmpty.pssAnonMiB).toFixed(1) } },
  };
  console.log(JSON.stringify(out, null, 2));
}
