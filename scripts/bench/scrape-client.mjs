#!/usr/bin/env node
/**
 * The scrape path's HTTP client: node:http (the agent's, src/metrics/fetch.ts) vs undici, for
 * issue 12 item 6. Run after `npm run build`:
 *   node scripts/bench/scrape-client.mjs [--runs 30] [--mb 10] [--concurrency 20] [--node <path> | --node-both]
 *
 * Each client runs in its own process with the agent's node flags: it loads only its client,
 * then GETs a --mb MB body from a loopback server (another process) --runs times one after the
 * other and once --concurrency at a time, reading every chunk. Prints, per client, the private
 * memory (RssAnon, Pss_Anon) when loaded and idle (both clients get fetch.ts's minor GC every
 * 4 MiB read when `gc` is exposed), its sampled peak during the concurrent GETs
 * and 10 s after, and the sequential p50/p99 (the two clients interleaved run by run).
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};

// ---------------------------------------------------------------- client (child process)
async function runClient(kind, port) {
  let getOnce;
  if (kind === 'node:http') {
    const { get, consume } = await import(new URL(`file://${path.join(ROOT, 'dist/src/metrics/fetch.js')}`).href);
    const agent = new http.Agent({ keepAlive: true });
    getOnce = async () => {
      const res = await get(agent, { host: '127.0.0.1', port, path: '/', headers: {}, signal: new AbortController().signal });
      let n = 0;
      await consume(res, (c) => void (n += c.length));
      return n;
    };
  } else {
    const { Agent, request } = await import('undici');
    const dispatcher = new Agent({ keepAliveTimeout: 30_000 });
    // The same help as fetch.ts gives node:http: a minor GC every 4 MiB read, when gc is exposed.
    let sinceGc = 0;
    getOnce = async () => {
      const { body } = await request(`http://127.0.0.1:${port}/`, { dispatcher });
      let n = 0;
      for await (const c of body) {
        n += c.length;
        sinceGc += c.length;
        if (globalThis.gc && sinceGc >= 4 * 1024 * 1024) {
          sinceGc = 0;
          globalThis.gc({ type: 'minor' });
        }
      }
      return n;
    };
  }
  process.on('message', async (m) => {
    if (m.type === 'get') {
      const t0 = performance.now();
      const bytes = await Promise.all(Array.from({ length: m.n }, getOnce));
      process.send({ type: 'done', ms: performance.now() - t0, bytes });
    } else if (m.type === 'exit') process.exit(0);
  });
  process.send({ type: 'ready' });
}

// ---------------------------------------------------------------- driver
async function main() {
  const { AGENT_NODE_FLAGS } = await import('./agent.mjs');
  const { memLine, readMem, rerunUnderNodes, sampleMem, sleep } = await import('./procmem.mjs');
  const rerun = rerunUnderNodes(fileURLToPath(import.meta.url));
  if (rerun !== undefined) process.exit(rerun);
  const runs = arg('runs', 30);
  const mb = arg('mb', 10);
  const concurrency = arg('concurrency', 20);
  // The server in its own process, so its memory and CPU are not ours.
  const server = fork(fileURLToPath(import.meta.url), ['--server', String(mb)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await new Promise((resolve) => server.once('message', resolve));
  const clients = {};
  for (const kind of ['node:http', 'undici']) {
    const child = fork(fileURLToPath(import.meta.url), ['--client', kind, String(port)], { execArgv: AGENT_NODE_FLAGS, cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise((resolve) => child.once('message', resolve));
    clients[kind] = { child, times: [] };
  }
  const ask = (child, msg) => new Promise((resolve) => {
    child.once('message', resolve);
    child.send(msg);
  });
  await sleep(2000);
  for (const c of Object.values(clients)) c.loaded = readMem(c.child.pid);
  for (let i = 0; i < runs + 3; i++) {
    for (const c of Object.values(clients)) {
      const r = await ask(c.child, { type: 'get', n: 1 });
      if (r.bytes[0] < mb * 1e6) throw new Error(`short body: ${r.bytes[0]}`);
      if (i >= 3) c.times.push(r.ms);
    }
  }
  for (const c of Object.values(clients)) c.idle = readMem(c.child.pid);
  for (const c of Object.values(clients)) {
    const s = sampleMem(c.child.pid);
    const r = await ask(c.child, { type: 'get', n: concurrency });
    c.peak = s.stop();
    c.concurrentMs = r.ms;
  }
  await sleep(10_000);
  for (const c of Object.values(clients)) c.after = readMem(c.child.pid);
  const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
  console.log(`node ${process.version}, flags ${AGENT_NODE_FLAGS.join(' ') || '(none)'}: GET of a ${mb} MB body over loopback, ${runs} sequential runs each (interleaved), then ${concurrency} at once`);
  for (const [kind, c] of Object.entries(clients)) {
    console.log(`${kind}: p50 ${pct(c.times, 50).toFixed(1)} ms, p99 ${pct(c.times, 99).toFixed(1)} ms; ${concurrency} at once ${c.concurrentMs.toFixed(0)} ms`);
    console.log(memLine(`  ${kind} loaded, idle`, c.loaded));
    console.log(memLine(`  ${kind} after ${runs + 3} GETs`, c.idle));
    console.log(memLine(`  ${kind} peak during ${concurrency} at once`, c.peak));
    console.log(memLine(`  ${kind} 10 s after`, c.after));
  }
  for (const c of Object.values(clients)) c.child.send({ type: 'exit' });
  server.kill();
}

if (process.argv[2] === '--client') await runClient(process.argv[3], Number(process.argv[4]));
else if (process.argv[2] === '--server') {
  const body = Buffer.alloc(Number(process.argv[3]) * 1e6, 'x\n');
  const s = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
  });
  s.listen(0, '127.0.0.1', () => process.send({ port: s.address().port }));
} else await main();
