/**
 * StreamingBody over real sockets, under this node and under Node 24 (the image's runtime):
 * corked batches under backpressure must never wait for a 'drain' that does not come. Node 24
 * emits it inside uncork() (before a waiter can listen) or not at all when the socket took the
 * batch without needing a drain of its own; both stalled the merged scrape.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { once } from 'node:events';
import zlib from 'node:zlib';
import { REPO_ROOT } from '../support/agent-process.js';
import { ENVOY_FIXTURE, FIXTURES, fixture } from '../support/metrics-servers.js';
import { findNode24 } from '../support/node24.js';
import { slowGet } from '../support/slow-reader.js';

const SERVER = path.join(REPO_ROOT, 'dist', 'test', 'support', 'streaming-body-server.js');
const node24 = findNode24();
if (node24.path === undefined) console.log(`SKIP the Node 24 cases: ${node24.reason}`);

const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) {
    c.stdin?.end();
    if (c.exitCode === null) await once(c, 'exit');
  }
});

async function startServer(node: string): Promise<number> {
  const child = spawn(node, [SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  for await (const d of child.stdout as AsyncIterable<Buffer>) {
    out += d.toString();
    if (out.includes('\n')) break;
  }
  return (JSON.parse(out.split('\n')[0] as string) as { port: number }).port;
}

const runtimes: [string, string | undefined][] = [
  [`this node (${process.version})`, process.execPath],
  [`Node 24 (${node24.path === undefined ? 'unavailable' : node24.version})`, node24.path],
];

describe.each(runtimes)('StreamingBody under %s', (_name, node) => {
  const run = node ? test : test.skip;
  let port = 0;
  const server = async () => (port ||= await startServer(node as string));

  run('the real 387 KiB capture in corked batches of 4 × 64 KiB arrives byte-complete', async () => {
    const p = await server();
    const file = path.join(FIXTURES, ENVOY_FIXTURE);
    const r = await slowGet(p, `/capture?file=${encodeURIComponent(file)}&chunk=65536&batch=4`, { keep: true });
    expect(r.status).toBe(200);
    const want = Buffer.concat([fixture(ENVOY_FIXTURE), Buffer.from(`#end ${fixture(ENVOY_FIXTURE).length}\n`)]);
    expect(r.bytes).toBe(want.length);
    expect(r.body.equals(want)).toBe(true);
  });

  run('gzip-encoded when accepted: the capture in corked batches decompresses byte-complete', async () => {
    const p = await server();
    const file = path.join(FIXTURES, ENVOY_FIXTURE);
    const r = await slowGet(p, `/capture?file=${encodeURIComponent(file)}&chunk=16384&batch=8`, { keep: true, headers: { 'accept-encoding': 'gzip' } });
    expect(r.status).toBe(200);
    const want = Buffer.concat([fixture(ENVOY_FIXTURE), Buffer.from(`#end ${fixture(ENVOY_FIXTURE).length}\n`)]);
    expect(zlib.gunzipSync(r.body).equals(want)).toBe(true);
  });

  run('20 concurrent 10 MB bodies in corked batches of 4 × 20,000 bytes all complete', async () => {
    const p = await server();
    const total = 10_000_000;
    const results = await Promise.all(Array.from({ length: 20 }, () => slowGet(p, `/bytes?total=${total}&chunk=20000&batch=4`)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.bytes).toBe(total + `#end ${total}\n`.length);
      expect(r.body.toString().endsWith(`x#end ${total}\n`)).toBe(true);
    }
  }, 120_000);
});
