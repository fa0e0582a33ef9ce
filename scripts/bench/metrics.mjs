#!/usr/bin/env node
/**
 * Merged-metrics benchmark (SPEC §6.2). Run after `npm run build`:
 *   node scripts/bench/metrics.mjs [--runs 40] [--envoy-mb 10] [--app-mb 1] [--concurrency 20]
 *        [--node <path> | --node-both]
 *
 * The agent's status server runs in a child process (compiled `dist/`), so its RSS is its own;
 * a loopback server stands in for Envoy (10 MB body built from the real istio-proxy capture)
 * and another for the app (1 MB text). The child runs with the launcher's node flags
 * (bin/pilot-agent.js's `#!` line). Prints, in one run (series interleaved run by run):
 *   - merged scrape p50/p99 vs fetching the Envoy body alone (target ratio ≤ 1.2×), and a plain
 *     relay (node:http in and out, no merging) as the floor any relay pays on this machine;
 *   - the child's RSS, RssAnon and Pss_Anon (read from /proc by this process, procmem.mjs) at
 *     start, idle after the runs, their peak during N concurrent merged scrapes (sampled every
 *     10 ms) and 10 s / 30 s after, against the private-memory budgets (issue 12).
 * The child runs with the agent's node flags only (AGENT_NODE_FLAGS: the launcher's, or
 * BENCH_LAUNCHER_FLAGS), so a flag's effect on the scrape path is what is measured.
 * Knobs (env): BENCH_ONLY=merged|floor (skip the other relay series), BENCH_MEMDIAG=1 (where the
 * memory is), BENCH_CPU_PROF=<dir> (the child's CPU profile), BENCH_NODE_FLAGS / BENCH_CHILD_ENV
 * (extra node flags / env JSON for the child, to try runtime tuning).
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (rel) => new URL(`file://${path.join(ROOT, 'dist', rel)}`).href;

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

// ---------------------------------------------------------------- agent (child process)
async function runAgent() {
  const [envoyPort, appPort] = process.argv.slice(3).map(Number);
  const { StatusServer } = await import(dist('src/status/server.js'));
  const { AppProbers } = await import(dist('src/status/app-probe.js'));
  const { createAgentMetrics } = await import(dist('src/metrics/registry.js'));
  const { createLogger } = await import(dist('src/log.js'));
  const log = createLogger({ outputLevel: 'none' });
  const server = await StatusServer.start({
    port: 0,
    host: '127.0.0.1',
    log,
    routes: { ready: (_q, r) => r.end(), quit: () => {}, drain: () => {} },
    metrics: { metrics: createAgentMetrics(), localhost: '127.0.0.1', envoyPort, ...(appPort ? { app: { port: appPort, path: '/metrics' } } : {}) },
    appProbers: new AppProbers({ probers: new Map(), destination: '127.0.0.1', ipv6: false, http2: false, log }),
    metricsLocalhostOnly: false,
  });
  // The floor: the same hop (node:http in and out, the agent's own fetch helpers) with no merging.
  const http = await import('node:http');
  const { get, consume } = await import(dist('src/metrics/fetch.js'));
  const upstream = new http.Agent({ keepAlive: true });
  const passthrough = http.createServer(async (_req, res) => {
    const up = await get(upstream, { host: '127.0.0.1', port: envoyPort, path: '/stats/prometheus', headers: {}, signal: new AbortController().signal });
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    await consume(up, (chunk) => (res.write(chunk) ? undefined : new Promise((resolve) => res.once('drain', resolve))));
    res.end();
  });
  await new Promise((resolve) => passthrough.listen(0, '127.0.0.1', resolve));
  let sampler;
  let peak = 0;
  let peakUsage;
  const mib = (b) => +(b / 1048576).toFixed(1);
  const mibs = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, mib(v)]));
  process.on('message', async (msg) => {
    if (msg.type === 'idle') {
      globalThis.gc?.();
      if (process.env.BENCH_MEMDIAG) {
        // Where the resident memory is: malloc's brk heap, other anonymous maps, V8's heap.
        const { getHeapStatistics } = await import('node:v8');
        const { readFileSync } = await import('node:fs');
        const agg = new Map();
        let cur = '';
        for (const l of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
          const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
          if (m) cur = m[1] || '[anon]';
          else if (/^Rss:/.test(l)) agg.set(cur, (agg.get(cur) ?? 0) + Number(l.split(/\s+/)[1]));
        }
        console.error('memory', JSON.stringify({ brkHeap: mib(agg.get('[heap]') * 1024), anon: mib(agg.get('[anon]') * 1024), v8Physical: mib(getHeapStatistics().total_physical_size), ...mibs(process.memoryUsage()) }));
      }
      process.send({ type: 'idle', rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed });
    } else if (msg.type === 'sample-start') {
      peak = process.memoryUsage.rss();
      sampler = setInterval(() => {
        const r = process.memoryUsage.rss();
        if (r > peak) {
          peak = r;
          if (process.env.BENCH_MEMDIAG) peakUsage = process.memoryUsage();
        }
      }, 5);
      process.send({ type: 'sampling' });
    } else if (msg.type === 'sample-stop') {
      clearInterval(sampler);
      if (peakUsage) console.error('memory at the peak', JSON.stringify(mibs(peakUsage)));
      process.send({ type: 'peak', rss: peak });
    } else if (msg.type === 'exit') {
      passthrough.closeAllConnections();
      passthrough.close();
      server.close().then(() => process.exit(0));
    }
  });
  process.send({ type: 'ready', port: server.port, passthroughPort: passthrough.address().port });
}

// ---------------------------------------------------------------- bench driver
function appBody(targetBytes) {
  const lines = [];
  let size = 0;
  for (let i = 0; size < targetBytes; i++) {
    const block = `# HELP app_requests_${i} Requests.\n# TYPE app_requests_${i} counter\n${Array.from({ length: 10 }, (_, j) => `app_requests_${i}{path="/api/v1/items/${j}",code="200"} ${i * j}\n`).join('')}`;
    lines.push(block);
    size += block.length;
  }
  return Buffer.from(lines.join(''));
}

function serve(body, contentType) {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': body.length });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const agentOpts = { keepAlive: true, maxSockets: 64 };
const client = new http.Agent(agentOpts);

function get(port, urlPath) {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: client, headers: { accept: 'text/plain;version=0.0.4' }, timeout: 60_000 }, (res) => {
        let bytes = 0;
        let first;
        res.on('data', (c) => { first ??= performance.now() - t0; bytes += c.length; });
        res.on('end', () => resolve({ ms: performance.now() - t0, first, bytes, status: res.statusCode }));
        res.on('error', reject);
      })
      .on('timeout', function onTimeout() {
        this.destroy(new Error(`GET 127.0.0.1:${port}${urlPath}: no progress for 60 s`));
      })
      .on('error', reject);
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

function ask(child, msg, replyType) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (m.type === replyType) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
    child.send(msg);
  });
}

async function main() {
  // Not in the child: its memory is measured.
  const { AGENT_NODE_FLAGS, envoyBody } = await import('./agent.mjs');
  const { BUDGETS, memLine, readMem, sampleMem, sleep } = await import('./procmem.mjs');
  const runs = arg('runs', 40);
  const envoyMb = arg('envoy-mb', 10);
  const appMb = arg('app-mb', 1);
  const concurrency = arg('concurrency', 20);
  const envoy = await serve(envoyBody(envoyMb * 1e6), 'text/plain; version=0.0.4; charset=utf-8');
  const appPayload = appBody(appMb * 1e6);
  const app = await serve(appPayload, 'text/plain; version=0.0.4; charset=utf-8');
  const envoyPort = envoy.address().port;
  const child = fork(fileURLToPath(import.meta.url), ['--agent', String(envoyPort), String(appMb > 0 ? app.address().port : 0)], {
    // The agent's node flags (as in the image), plus any BENCH_NODE_FLAGS.
    execArgv: [...new Set([...AGENT_NODE_FLAGS, ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)]), ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...(process.env.BENCH_CHILD_ENV ? JSON.parse(process.env.BENCH_CHILD_ENV) : {}) },
  });
  const { port, passthroughPort } = await new Promise((resolve) => child.once('message', resolve));
  const atStart = await ask(child, { type: 'idle' }, 'idle');
  const memAtStart = readMem(child.pid);

  // The three series are interleaved run by run, so machine noise hits them alike.
  const series = {
    alone: () => get(envoyPort, '/stats/prometheus'),
    floor: () => get(passthroughPort, '/'),
    merged: () => get(port, '/stats/prometheus'),
  };
  const times = { alone: [], floor: [], merged: [] };
  const bytes = {};
  for (let i = 0; i < runs + 5; i++) {
    for (const [name, fn] of Object.entries(series)) {
      if (process.env.BENCH_ONLY && name !== process.env.BENCH_ONLY && name !== 'alone') continue;
      const r = await fn();
      if (r.status !== 200) throw new Error(`${name}: status ${r.status}`);
      if (i >= 5) { times[name].push(r.ms); (times[name + '_first'] ??= []).push(r.first); }
      bytes[name] = r.bytes;
    }
  }
  const stat = (name) => (times[name].length ? { p50: pct(times[name], 50), p99: pct(times[name], 99), bytes: bytes[name] } : { p50: NaN, p99: NaN, bytes: 0 });
  const alone = stat('alone');
  const floor = stat('floor');
  const merged = stat('merged');

  const afterRuns = await ask(child, { type: 'idle' }, 'idle');
  const idle = afterRuns.rss;
  const memIdle = readMem(child.pid);
  const sampler = sampleMem(child.pid);
  await ask(child, { type: 'sample-start' }, 'sampling');
  const t0 = performance.now();
  const all = await Promise.all(Array.from({ length: concurrency }, () => get(port, '/stats/prometheus')));
  const concurrentMs = performance.now() - t0;
  const peak = (await ask(child, { type: 'sample-stop' }, 'peak')).rss;
  const memPeak = sampler.stop();
  if (all.some((r) => r.status !== 200 || r.bytes < merged.bytes * 0.9)) throw new Error('a concurrent scrape failed');
  await sleep(10_000);
  const memAfter10 = readMem(child.pid);
  await sleep(20_000);
  const memAfter30 = readMem(child.pid);

  const mb = (b) => (b / 1024 / 1024).toFixed(1);
  const f = (x) => x.toFixed(1);
  console.log(`Envoy body ${mb(alone.bytes)} MiB, app body ${mb(appPayload.length)} MiB, merged body ${mb(merged.bytes)} MiB, ${runs} runs each`);
  console.log(`fetch Envoy alone : p50 ${f(alone.p50)} ms  p99 ${f(alone.p99)} ms`);
  console.log(`plain proxy hop   : p50 ${f(floor.p50)} ms  p99 ${f(floor.p99)} ms  (node:http in -> out, no merging: the floor for a relay)`);
  console.log(`merged scrape     : p50 ${f(merged.p50)} ms  p99 ${f(merged.p99)} ms`);
  console.log(`first byte p50    : alone ${f(pct(times.alone_first, 50))} ms, merged ${f(pct(times.merged_first ?? [NaN], 50))} ms`);
  console.log(`ratio merged/alone: p50 ${(merged.p50 / alone.p50).toFixed(2)}x  p99 ${(merged.p99 / alone.p99).toFixed(2)}x  (target <= 1.2x)`);
  console.log(`agent RSS at start ${mb(atStart.rss)} MiB (heap used ${mb(atStart.heapUsed)} MiB); idle after ${runs + 5} scrapes ${mb(idle)} MiB (heap used after GC ${mb(afterRuns.heapUsed)} MiB)`);
  console.log(`agent RSS idle ${mb(idle)} MiB; peak during ${concurrency} concurrent scrapes ${mb(peak)} MiB; growth ${mb(peak - idle)} MiB (target <= 32 MiB); wall ${f(concurrentMs)} ms`);
  console.log(`agent code on node ${process.version}, flags: ${AGENT_NODE_FLAGS.join(' ') || '(none)'}`);
  console.log(memLine('agent at start', memAtStart));
  console.log(memLine(`idle after ${runs + 5} scrapes`, memIdle, BUDGETS.idle));
  console.log(memLine(`peak during ${concurrency} concurrent merged scrapes`, memPeak, BUDGETS.peak));
  console.log(memLine('10 s after', memAfter10));
  console.log(memLine('30 s after', memAfter30, BUDGETS.after));

  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send({ type: 'exit' });
  await exited;
  client.destroy();
  await Promise.all([envoy, app].map((s) => new Promise((resolve) => s.close(resolve))));
}

if (process.argv[2] === '--agent') await runAgent();
else {
  const { rerunUnderNodes } = await import('./procmem.mjs');
  const rerun = rerunUnderNodes(fileURLToPath(import.meta.url));
  if (rerun !== undefined) process.exit(rerun);
  await main();
}
