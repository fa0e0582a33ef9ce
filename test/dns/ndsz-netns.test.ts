/**
 * `/debug/ndsz` on the status server: the name table as JSON for loopback peers, 403 for a
 * real non-loopback peer (an address inside a network namespace this test creates), 404 `{}`
 * without a table. Runs the compiled StatusServer inside the namespace; root only.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../support/agent-process.js';

const NS = `pa-ndsz-${process.pid}`;
const SERVER_IP = '10.212.0.1';
const CLIENT_IP = '10.212.0.2';
const dist = (rel: string) => pathToFileURL(path.join(REPO_ROOT, 'dist', rel)).href;

const SCRIPT = `
import http from 'node:http';
import { StatusServer } from '${dist('src/status/server.js')}';
import { ndszHandler } from '${dist('src/status/ndsz.js')}';
import { debugNameTable } from '${dist('src/dns/table.js')}';
import { AppProbers } from '${dist('src/status/app-probe.js')}';
import { createAgentMetrics } from '${dist('src/metrics/registry.js')}';
import { createLogger } from '${dist('src/log.js')}';

const log = createLogger({ outputLevel: 'none' });
let table;
const ctx = { namespace: 'ns1', domain: 'ns1.svc.cluster.local', search: [] };
const server = await StatusServer.start({
  port: 0,
  log,
  routes: { ready: (_q, r) => r.end(), quit: () => {}, drain: () => {}, ndsz: ndszHandler(() => (table ? debugNameTable(table, ctx) : undefined)) },
  metrics: { metrics: createAgentMetrics({ defaultMetrics: false }), localhost: '127.0.0.1' },
  appProbers: new AppProbers({ probers: new Map(), destination: '127.0.0.1', ipv6: false, http2: false, log }),
  metricsLocalhostOnly: false,
  closeGraceMs: 100,
});
const get = (host, localAddress) =>
  new Promise((resolve, reject) => {
    http.get({ host, port: server.port, localAddress, path: '/debug/ndsz', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    }).on('error', reject);
  });
const out = { none: await get('127.0.0.1', '127.0.0.1') };
table = { 'svc.ns1.svc.cluster.local': { ips: ['10.0.0.1'], registry: 'Kubernetes', shortname: 'svc', namespace: 'ns1', altHosts: [] } };
out.loopback = await get('127.0.0.1', '127.0.0.1');
out.remote = await get('${SERVER_IP}', '${CLIENT_IP}');
await server.close();
process.stdout.write(JSON.stringify(out));
`;

const IS_ROOT = process.getuid?.() === 0;
if (!IS_ROOT) console.warn('test/dns/ndsz-netns.test.ts skipped: not root (needs a private network namespace)');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ndsz-netns-'));
  if (!IS_ROOT) return;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  ip('netns', 'add', NS);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  ip('-n', NS, 'link', 'add', 'pa0', 'type', 'veth', 'peer', 'name', 'pa1');
  ip('-n', NS, 'addr', 'add', `${SERVER_IP}/24`, 'dev', 'pa0');
  ip('-n', NS, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'pa1');
  ip('-n', NS, 'link', 'set', 'pa0', 'up');
  ip('-n', NS, 'link', 'set', 'pa1', 'up');
});
afterAll(() => {
  if (IS_ROOT) {
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'pipe' });
    } catch {
      // already gone
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('/debug/ndsz', () => {
  (IS_ROOT ? test : test.skip)('loopback: 404 {} without a table, then the table with generated names; a remote peer: 403', async () => {
    const script = path.join(dir, 'run.mjs');
    fs.writeFileSync(script, SCRIPT);
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile('ip', ['netns', 'exec', NS, process.execPath, script], { timeout: 20_000 }, (err, so, se) => (err ? reject(new Error(`${err.message}\n${se}`)) : resolve(so))),
    );
    const out = JSON.parse(stdout) as Record<string, { status: number; type: string; body: string }>;
    expect(out.none).toEqual({ status: 404, type: 'application/json', body: '{}' });
    expect(out.remote).toEqual({ status: 403, type: 'text/plain; charset=utf-8', body: 'Only requests from localhost are allowed\n' });
    expect(out.loopback?.status).toBe(200);
    expect(JSON.parse(out.loopback?.body ?? '')).toEqual({
      table: {
        'svc.ns1.svc.cluster.local': { ips: ['10.0.0.1'], registry: 'Kubernetes', shortname: 'svc', namespace: 'ns1' },
        'svc.ns1.svc.cluster.local.': { ips: ['10.0.0.1'] },
        'svc.ns1.': { ips: ['10.0.0.1'] },
        'svc.': { ips: ['10.0.0.1'] },
        'svc.ns1.svc.': { ips: ['10.0.0.1'] },
      },
    });
  });
});
