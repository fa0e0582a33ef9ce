#!/usr/bin/env node
/**
 * The agent's memory as the seed pod runs it, against issue 12's private-memory budgets (idle
 * <= 20 MiB; <= 28 MiB peak during a burst; <= 22 MiB within 30 s after). Run after `npm run build`:
 *   node scripts/bench/idle.mjs [--standalone] [--scrapes 20] [--settle-s 10] [--burst 20] [--burst-mb 10]
 *        [--prom-fixture <file>] [--node <path> | --node-both]
 *
 * Execs the launcher as the image does, with the seed pod's args/env and the Envoy double as
 * Envoy serving the real istio-proxy capture on its Prometheus port. By default the agent runs
 * as in the seed pod, not standalone: the test control plane as istiod's xDS (the double takes
 * its CDS/LDS through the agent's xDS proxy), the test CA over TLS as istiod's CA (the agent
 * sends a CSR and serves the chain over SDS, which the double fetches before going LIVE), and
 * the podinfo files. `--standalone` measures the agent without a control plane.
 * Prints RSS, RssAnon and Pss_Anon (scripts/bench/procmem.mjs):
 *   1. when `/healthz/ready` first answers 200;
 *   2. after --settle-s seconds without traffic (budget: idle);
 *   3. after --scrapes merged scrapes of `/stats/prometheus` (one every 100 ms) and --settle-s more;
 *   4. the peak (sampled every 10 ms) during --burst concurrent merged scrapes of a --burst-mb MB
 *      Envoy body (the capture's series repeated; budget: peak), then 10 s and 30 s after it
 *      (budget: after, at +30 s);
 * the breakdown of (3) into the node binary's pages, other files and anonymous memory; and, for
 * scale, a bare `node` and a node that only loads grpc-js and protobufjs and opens idle HTTP,
 * HTTP/2 and gRPC servers. `--node <path>` runs it all under that node, `--node-both` under this
 * node and then node 24; BENCH_LAUNCHER_FLAGS replaces the launcher's node flags (agent.mjs).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { AGENT_ARGS, AGENT_NODE_FLAGS, CAPTURE, ROOT, agentEnv, arg, envoyBody, spawnAgent } from './agent.mjs';
import { BUDGETS, memLine, mib, readMem, rerunUnderNodes, rssByMapping, sampleMem, sleep } from './procmem.mjs';
import { fileURLToPath } from 'node:url';

const rerun = rerunUnderNodes(fileURLToPath(import.meta.url));
if (rerun !== undefined) process.exit(rerun);

const scrapes = arg('scrapes', 20);
const settleMs = arg('settle-s', 10) * 1000;
const burst = arg('burst', 20);
const burstMb = arg('burst-mb', 10);
const fixtureArg = process.argv.indexOf('--prom-fixture');
const sourceFixture = fixtureArg >= 0 ? path.resolve(process.argv[fixtureArg + 1]) : CAPTURE;

const standalone = process.argv.includes('--standalone');
const dist = (rel) => new URL(`file://${path.join(ROOT, 'dist', rel)}`).href;
const cleanups = [];
const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-bench-idle-'));
// The double reads its fixture on every scrape: the burst swaps the file for the big body.
const promFixture = path.join(cwd, 'stats-prometheus.txt');
fs.copyFileSync(sourceFixture, promFixture);
const extraEnv = { ENVOY_DOUBLE_PROM_FIXTURE: promFixture, ...JSON.parse(process.env.BENCH_CHILD_ENV ?? '{}') };
let proxyConfig = {};
if (!standalone) {
  // The seed pod's control plane, as test/e2e/certificates.test.ts sets it up.
  const { CaServer, TestCa } = await import(dist('test/support/ca-server.js'));
  const { ControlPlane, testCluster, testListener } = await import(dist('test/support/control-plane.js'));
  const { SEED_ANNOTATIONS, SEED_LABELS } = await import(dist('test/support/seed.js'));
  const token = 'bench-token';
  const ca = await TestCa.create();
  const caServer = await CaServer.start({ ca, tokens: { [token]: 'spiffe://cluster.local/ns/jiuxi-ns/sa/default' } });
  cleanups.push(() => caServer.close());
  const sds = { api_config_source: { api_type: 'GRPC', set_node_on_first_message_only: true, transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] }, initial_fetch_timeout: { seconds: 0 }, resource_api_version: 'V3' };
  const mtls = {
    ...testCluster('outbound|80||backend.jiuxi-ns.svc.cluster.local', 9),
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        common_tls_context: {
          tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: sds }],
          combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: sds } },
        },
      },
    },
  };
  const cp = await ControlPlane.start({ clusters: [mtls, testCluster('BlackHoleCluster')], listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')], token });
  cleanups.push(() => cp.close());
  for (const [rel, content] of Object.entries({
    'etc/istio/pod/labels': SEED_LABELS,
    'etc/istio/pod/annotations': SEED_ANNOTATIONS,
    'var/run/secrets/tokens/istio-token': `${token}\n`,
    'var/run/secrets/istio/root-cert.pem': ca.rootCertPem,
  })) {
    fs.mkdirSync(path.dirname(path.join(cwd, rel)), { recursive: true });
    fs.writeFileSync(path.join(cwd, rel), content);
  }
  Object.assign(extraEnv, { JWT_POLICY: 'third-party-jwt', CA_ADDR: `localhost:${caServer.port}` });
  proxyConfig = { discoveryAddress: cp.address, controlPlaneAuthPolicy: 'NONE' };
}
const {
  env,
  ports: { status },
} = await agentEnv(extraEnv, proxyConfig);
const child = spawnAgent(standalone ? AGENT_ARGS : AGENT_ARGS.filter((a) => a !== '--standalone'), { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
let stderr = '';
child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
const exited = new Promise((resolve) => child.once('exit', resolve));

const kib = (key, text) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
const mem = () => {
  const m = readMem(child.pid);
  if (!m) throw new Error(`the agent exited:\n${stderr}`);
  return m;
};

function get(urlPath) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: status, path: urlPath, agent: false, timeout: 60_000 }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes }));
      res.on('error', (err) => resolve({ status: 0, bytes, error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no progress for 60 s on ${urlPath}`)));
    req.on('error', (err) => resolve({ status: 0, bytes: 0, error: err.message }));
  });
}

try {
  const deadline = Date.now() + 30_000;
  while ((await get('/healthz/ready')).status !== 200) {
    if (Date.now() > deadline) throw new Error(`the agent did not become ready:\n${stderr}`);
    await sleep(20);
  }
  const atReady = mem();
  await sleep(settleMs);
  const settled = mem();
  let body = 0;
  for (let i = 0; i < scrapes; i++) {
    const r = await get('/stats/prometheus');
    if (r.status !== 200) throw new Error(`scrape answered ${r.status} ${r.error ?? ""}\n${stderr.slice(-3000)}`);
    body = r.bytes;
    await sleep(100);
  }
  await sleep(settleMs);
  const afterScrapes = mem();
  const byMapping = rssByMapping(child.pid);
  const nodeBinary = [...byMapping].filter(([name]) => path.basename(name) === 'node').reduce((n, [, kb]) => n + kb, 0);
  const rollup = fs.readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8');
  const anon = kib('Anonymous', rollup);
  const total = kib('Rss', rollup);

  const big = envoyBody(burstMb * 1e6);
  fs.writeFileSync(`${promFixture}.new`, big);
  fs.renameSync(`${promFixture}.new`, promFixture);
  const sampler = sampleMem(child.pid);
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: burst }, () => get('/stats/prometheus')));
  const burstMs = performance.now() - t0;
  const peak = sampler.stop();
  // A failed scrape is reported, not fatal: the memory figures still stand (a loaded machine can
  // make the agent's Envoy source time out).
  const failed = results.filter((r) => r.status !== 200 || r.bytes < big.length);
  await sleep(10_000);
  const after10 = mem();
  await sleep(20_000);
  const after30 = mem();

  console.log(`node ${process.version}, agent node flags: ${AGENT_NODE_FLAGS.join(' ') || '(none)'}; ${standalone ? 'standalone (no control plane)' : 'as in the seed pod (xDS proxy, CA client, SDS)'}`);
  console.log(memLine('agent when first ready', atReady));
  console.log(memLine(`idle ${settleMs / 1000} s later`, settled, BUDGETS.idle));
  console.log(memLine(`after ${scrapes} scrapes (${(body / 1024).toFixed(0)} KiB) + ${settleMs / 1000} s`, afterScrapes, BUDGETS.idle));
  console.log(`  of which: node binary pages ${mib(nodeBinary)}, other files ${mib(total - anon - nodeBinary)}, anonymous ${mib(anon)}`);
  console.log(memLine(`peak during ${burst} x ${(big.length / 1e6).toFixed(1)} MB merged scrapes`, peak, BUDGETS.peak) + `  (${burstMs.toFixed(0)} ms)`);
  if (failed.length > 0) console.log(`  ${failed.length} of ${burst} burst scrapes failed or came back short: ${JSON.stringify(failed.map((r) => [r.status, r.bytes, r.error]))}`);
  console.log(memLine('10 s after the burst', after10));
  console.log(memLine('30 s after the burst', after30, BUDGETS.after));
  console.log(`(RSS target <= 47.8 MiB = 48,940 KiB, the Go pilot-agent in the seed's ps)`);
  // For scale, with the agent's flags: a bare node doing nothing, and a node that only loads
  // the libraries the agent cannot do without (grpc-js, protobufjs) and opens what it serves
  // (an HTTP server, an HTTP/2 server, a gRPC server; node:tls loaded), running nothing.
  const floorScript = `
    const http = require('node:http'), http2 = require('node:http2'); require('node:tls');
    const grpc = require('@grpc/grpc-js'); require('protobufjs');
    http.createServer().listen(0, '127.0.0.1'); http2.createServer().listen(0, '127.0.0.1');
    new grpc.Server().bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), () => {});
    setTimeout(() => process.exit(0), 5000);`;
  for (const [label, args] of [
    ['a bare `node`', ['-e', 'setTimeout(() => {}, 5000)']],
    ['node + grpc-js, protobufjs, idle servers', ['-e', floorScript]],
  ]) {
    const p = spawn(process.execPath, [...AGENT_NODE_FLAGS, ...args], { stdio: 'ignore', cwd: ROOT, env: { PATH: env.PATH } }); // the agent's clean env
    await sleep(1500);
    console.log(memLine(`(for scale) ${label}`, readMem(p.pid)));
    p.kill();
  }
} finally {
  child.kill('SIGTERM');
  await exited;
  for (const c of cleanups.reverse()) await c();
  fs.rmSync(cwd, { recursive: true, force: true });
}
