/**
 * A child process for test/status/respond.test.ts: an HTTP server on 127.0.0.1:0 whose
 * responses are written through StreamingBody in corked batches, so the test can run the same
 * code under another node (Node 24). Prints `{"port":N}` on stdout once listening; exits when
 * stdin closes.
 *
 * GET /capture?file=<path>&chunk=<bytes>&batch=<n>  the file, in batches of n chunks
 * GET /bytes?total=<bytes>&chunk=<bytes>&batch=<n>  `total` bytes of 'x', same batching
 * Every response ends with a trailer line `#end <bytes written>\n`.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamingBody } from '../../src/status/respond.js';

async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const chunk = Number(url.searchParams.get('chunk') ?? 65536);
  const batch = Number(url.searchParams.get('batch') ?? 4);
  let source: Buffer;
  if (url.pathname === '/capture') source = fs.readFileSync(url.searchParams.get('file') ?? '');
  else source = Buffer.alloc(Number(url.searchParams.get('total') ?? 0), 'x');
  const body = new StreamingBody(req, res);
  body.start(200, { 'Content-Type': 'text/plain' });
  let off = 0;
  while (off < source.length) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < batch && off < source.length; i++, off += chunk) chunks.push(source.subarray(off, off + chunk));
    const wait = body.write(chunks);
    if (wait) await wait;
  }
  const trailer = body.write([Buffer.from(`#end ${source.length}\n`)]);
  if (trailer) await trailer;
  await body.end();
}

const server = http.createServer((req, res) => {
  serve(req, res).catch(() => res.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
