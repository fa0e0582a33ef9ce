#!/usr/bin/env node
/**
 * Where a node runtime's private memory goes, before the agent does anything (issue 12: a bare
 * node with one idle HTTP server holds ~9 MiB more private memory on Node 24 than on Node 20).
 * Run: node scripts/bench/runtime.mjs [--settle-s 30] [--flags '<set>;<set>;…'] [--node <path> | --node-both]
 *
 * For each flag set (default: none; the launcher's; and candidates that may take memory back),
 * starts `node <flags> -e <script>`: one HTTP server on loopback that answers one request to
 * itself (so the `Date` header path runs), then idles --settle-s seconds and collects garbage
 * (gc reached through v8.setFlagsFromString, so the flag set is not changed). All variants run
 * at once (memory figures barely depend on CPU load). Prints per variant RSS / RssAnon /
 * Pss_Anon, anonymous resident memory by mapping (malloc's brk heap, other anonymous maps,
 * thread stacks), V8's heap spaces (committed / physical) and external memory, and the
 * number of threads.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LAUNCHER_NODE_FLAGS, ROOT } from './agent.mjs';
import { memLine, mib, readMem, rerunUnderNodes, rssByMapping } from './procmem.mjs';

const rerun = rerunUnderNodes(fileURLToPath(import.meta.url));
if (rerun !== undefined) process.exit(rerun);

const settleS = (() => {
  const i = process.argv.indexOf('--settle-s');
  return i >= 0 ? Number(process.argv[i + 1]) : 30;
})();
const flagsArg = process.argv.indexOf('--flags');
const sets = flagsArg >= 0
  ? process.argv[flagsArg + 1].split(';').map((s) => s.split(' ').filter(Boolean))
  : [[], LAUNCHER_NODE_FLAGS, ['--max-semi-space-size=2'], ['--expose-gc'], ['--v8-pool-size=1'], ['--no-maglev'], ['--max-lazy'], ['--no-opt', '--no-maglev'], ['--jitless'], ['--single-threaded'], ['--max-semi-space-size=2', '--no-maglev', '--v8-pool-size=1']];

const script = `
  const http = require('node:http'), v8 = require('node:v8'), vm = require('node:vm');
  const server = http.createServer((req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1', () => {
    http.get({ host: '127.0.0.1', port: server.address().port, agent: false }, (res) => {
      res.resume();
      res.on('end', () => setTimeout(() => {
        v8.setFlagsFromString('--expose-gc');
        vm.runInNewContext('gc')();
        setTimeout(() => {
          const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, [s.space_size, s.physical_space_size]]));
          process.stdout.write(JSON.stringify({ spaces, usage: process.memoryUsage(), code: v8.getHeapCodeStatistics() }) + '\\n');
        }, 200);
      }, ${settleS * 1000}));
    });
  });`;

const runs = sets.map((flags) => {
  const child = spawn(process.execPath, [...flags, '-e', script], { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const report = new Promise((resolve, reject) => {
    const check = setInterval(() => {
      if (!out.includes('\n')) return;
      clearInterval(check);
      try {
        const v8 = JSON.parse(out);
        const mem = readMem(child.pid);
        const byMap = rssByMapping(child.pid, 'Anonymous');
        const threads = fs.readdirSync(`/proc/${child.pid}/task`).length;
        resolve({ flags, v8, mem, byMap, threads });
      } catch (err) {
        reject(err);
      } finally {
        child.kill();
      }
    }, 50);
    child.once('exit', (code) => {
      if (!out.includes('\n')) {
        clearInterval(check);
        reject(new Error(`node ${flags.join(' ')} exited ${code} before reporting`));
      }
    });
  });
  return report.catch((err) => ({ flags, error: err.message }));
});

console.log(`node ${process.version}: a node with one idle HTTP server, ${settleS} s after one request, after a GC`);
const kb = (b) => b / 1024;
for (const r of await Promise.all(runs)) {
  const label = r.flags.join(' ') || '(no flags)';
  if (r.error) {
    console.log(`${label}: ${r.error}`);
    continue;
  }
  console.log(memLine(label, r.mem));
  const anonMaps = [...r.byMap].filter(([, k]) => k > 0).sort((a, b) => b[1] - a[1]);
  console.log(`    anonymous by mapping: ${anonMaps.slice(0, 6).map(([n, k]) => `${n} ${mib(k)}`).join(', ')}; threads ${r.threads}`);
  const sp = Object.entries(r.v8.spaces).filter(([, [, phys]]) => phys > 0).map(([n, [size, phys]]) => `${n.replace('_space', '')} ${mib(kb(size))}/${mib(kb(phys))}`);
  console.log(`    V8 spaces (committed/physical): ${sp.join(', ')}`);
  console.log(`    V8 heapTotal ${mib(kb(r.v8.usage.heapTotal))}, heapUsed ${mib(kb(r.v8.usage.heapUsed))}, external ${mib(kb(r.v8.usage.external))}, arrayBuffers ${mib(kb(r.v8.usage.arrayBuffers))}; code+metadata ${mib(kb(r.v8.code.code_and_metadata_size))}, bytecode+metadata ${mib(kb(r.v8.code.bytecode_and_metadata_size))}`);
}
