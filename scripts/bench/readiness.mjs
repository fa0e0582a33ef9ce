#!/usr/bin/env node
/**
 * Readiness probe latency under a slow Envoy admin (issue 4). Run after `npm run build`:
 *   node scripts/bench/readiness.mjs [--rate 500] [--seconds 5] [--admin-delay-ms 2000]
 *
 * Starts the built CLI (standalone, the seed pod's args/env) with the Envoy double as Envoy,
 * every admin call delayed by --admin-delay-ms, then sends GET /healthz/ready to the agent's
 * status port at --rate requests per second for --seconds (open loop: a request is sent on
 * schedule whether or not earlier ones finished; each on its own keep-alive connection pool
 * of 32 sockets), and prints p50/p99/max latency and the status codes seen. Target: p99 ≤ 5 ms
 * (the probe must never wait on admin). Also prints the agent's RSS (VmRSS) idle, before load.
 *
 * --with-status-page [--status-poll-ms 1000]: meanwhile keep a status page client open, as a
 * browser tab would: GET / once, then GET /status every --status-poll-ms on one keep-alive
 * connection (the page's own poll interval is 1 s); prints that client's latencies too.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AGENT_ARGS, agentEnv, arg, spawnAgent } from './agent.mjs';
const rate = arg('rate', 500);
const seconds = arg('seconds', 5);
const adminDelay = arg('admin-delay-ms', 2000);
const withStatusPage = process.argv.includes('--with-status-page');
const statusPollMs = arg('status-poll-ms', 1000);

const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-bench-ready-'));
const {
  env,
  ports: { status },
} = await agentEnv({ ENVOY_DOUBLE_ADMIN_DELAY_MS: String(adminDelay) });
const child = spawnAgent(AGENT_ARGS, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
let err = '';
child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
const exited = new Promise((r) => child.once('exit', r));

const agentPool = new http.Agent({ keepAlive: true, maxSockets: 32 });
function get() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get({ host: '127.0.0.1', port: status, path: '/healthz/ready', agent: agentPool }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode }));
    });
    req.on('error', () => resolve({ ms: performance.now() - t0, status: 0 }));
  });
}

/** A status page tab: GET / once, then GET /status every statusPollMs until stop(). */
function startPageClient() {
  const pool = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ms = [];
  let failed = 0;
  let stopped = false;
  let timer;
  const once = (p) =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = http.get({ host: '127.0.0.1', port: status, path: p, agent: pool }, (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode }));
      });
      req.on('error', () => resolve({ ms: performance.now() - t0, status: 0 }));
    });
  let pageStatus = 0;
  let inFlight = Promise.resolve();
  const tick = () => {
    if (stopped) return;
    inFlight = once('/status').then((r) => {
      if (r.status === 200) ms.push(r.ms);
      else failed++;
      if (!stopped) timer = setTimeout(tick, statusPollMs);
    });
  };
  const first = once('/').then((r) => {
    pageStatus = r.status;
    tick();
  });
  return {
    first,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
      pool.destroy();
      return { ms, failed, pageStatus };
    },
  };
}

try {
  // Wait until the status server answers and Envoy (the double) is running.
  for (let i = 0; i < 200; i++) {
    const r = await get();
    if (r.status !== 0 && /Envoy started/.test(err)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  const page = withStatusPage ? startPageClient() : undefined;
  if (page) await page.first;
  const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
  const total = rate * seconds;
  const results = [];
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    results.push(get());
  }
  const done = await Promise.all(results);
  const pageStats = page ? await page.stop() : undefined;
  const ms = done.map((d) => d.ms).sort((a, b) => a - b);
  const pct = (p) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))].toFixed(2);
  const codes = {};
  for (const d of done) codes[d.status] = (codes[d.status] ?? 0) + 1;
  const reason = await new Promise((resolve) =>
    http.get({ host: '127.0.0.1', port: status, path: '/healthz/ready', agent: agentPool }, (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (c) => (b += c)).on('end', () => resolve(b.trim()));
    }),
  );
  console.log(`admin delay ${adminDelay} ms; ${total} probes at ${rate}/s over ${seconds}s`);
  console.log(`/healthz/ready latency: p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${ms[ms.length - 1].toFixed(2)} ms (target p99 <= 5 ms)`);
  console.log(`status codes: ${JSON.stringify(codes)}; last reason: ${reason}`);
  if (pageStats) {
    const p = pageStats.ms.sort((a, b) => a - b);
    const q = (x) => (p.length ? p[Math.min(p.length - 1, Math.floor((x / 100) * p.length))].toFixed(2) : 'n/a');
    console.log(`status page client open: GET / ${pageStats.pageStatus}, ${p.length} polls of /status every ${statusPollMs} ms (${pageStats.failed} failed): p50 ${q(50)} ms, max ${p.length ? p[p.length - 1].toFixed(2) : 'n/a'} ms`);
  }
  console.log(`agent RSS idle (before load, standalone; scripts/bench/idle.mjs measures the seed configuration): ${(Number(rss) / 1024).toFixed(1)} MiB`);
} finally {
  agentPool.destroy();
  child.kill('SIGTERM');
  await exited;
  fs.rmSync(cwd, { recursive: true, force: true });
}
