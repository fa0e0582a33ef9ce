#!/usr/bin/env node
/**
 * The agent's resident memory in a steady state (issue 4: idle RSS ≤ 48,940 KiB, the Go
 * pilot-agent's RSS in the seed's `ps`). Run after `npm run build`:
 *   node scripts/bench/idle.mjs [--standalone] [--scrapes 20] [--settle-s 10] [--prom-fixture <file>]
 *
 * Execs the launcher as the image does, with the seed pod's args/env and the Envoy double as
 * Envoy serving the real istio-proxy capture on its Prometheus port. By default the agent runs
 * as in the seed pod, not standalone: the test control plane as istiod's xDS (the double takes
 * its CDS/LDS through the agent's xDS proxy), the test CA over TLS as istiod's CA (the agent
 * sends a CSR and serves the chain over SDS, which the double fetches before going LIVE), and
 * the podinfo files. `--standalone` measures the agent without a control plane.
 * Prints VmRSS:
 *   1. when `/healthz/ready` first answers 200;
 *   2. after --settle-s seconds without traffic;
 *   3. after --scrapes merged scrapes of `/stats/prometheus` (one every 100 ms, as a busy
 *      Prometheus would not) and --settle-s seconds more.
 * Also the breakdown of (3) into the node binary's pages, other files, and anonymous memory.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { AGENT_ARGS, LAUNCHER_NODE_FLAGS, ROOT, agentEnv, arg, spawnAgent } from './agent.mjs';

const scrapes = arg('scrapes', 20);
const settleMs = arg('settle-s', 10) * 1000;
const fixtureArg = process.argv.indexOf('--prom-fixture');
const promFixture = fixtureArg >= 0 ? path.resolve(process.argv[fixtureArg + 1]) : path.join(ROOT, 'test/fixtures/envoy/stats-prometheus.istio-proxy.datadog.txt');

const standalone = process.argv.includes('--standalone');
const dist = (rel) => new URL(`file://${path.join(ROOT, 'dist', rel)}`).href;
const cleanups = [];
const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-bench-idle-'));
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
const rss = () => kib('VmRSS', fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
const mib = (k) => `${(k / 1024).toFixed(1)} MiB`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function get(urlPath) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: status, path: urlPath, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes }));
    });
    req.on('error', () => resolve({ status: 0, bytes: 0 }));
  });
}

try {
  const deadline = Date.now() + 30_000;
  while ((await get('/healthz/ready')).status !== 200) {
    if (Date.now() > deadline) throw new Error(`the agent did not become ready:\n${stderr}`);
    await sleep(20);
  }
  const atReady = rss();
  await sleep(settleMs);
  const settled = rss();
  let body = 0;
  for (let i = 0; i < scrapes; i++) {
    const r = await get('/stats/prometheus');
    if (r.status !== 200) throw new Error(`scrape answered ${r.status}`);
    body = r.bytes;
    await sleep(100);
  }
  await sleep(settleMs);
  const afterScrapes = rss();
  const rollup = fs.readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8');
  let nodeBinary = 0;
  let name = '';
  for (const line of fs.readFileSync(`/proc/${child.pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) name = m[1];
    else if (line.startsWith('Rss:') && path.basename(name) === 'node') nodeBinary += Number(line.split(/\s+/)[1]);
  }
  const anon = kib('Anonymous', rollup);
  const total = kib('Rss', rollup);
  console.log(`${standalone ? 'standalone (no control plane)' : 'as in the seed pod (xDS proxy, CA client, SDS)'}`);
  console.log(`agent RSS when first ready      : ${mib(atReady)}`);
  console.log(`agent RSS idle ${settleMs / 1000} s later         : ${mib(settled)}   (target <= 47.8 MiB = 48,940 KiB, the Go pilot-agent in the seed)`);
  console.log(`after ${scrapes} merged scrapes (${(body / 1024).toFixed(0)} KiB each) + ${settleMs / 1000} s: ${mib(afterScrapes)}`);
  console.log(`  of which: node binary pages ${mib(nodeBinary)}, other files ${mib(total - anon - nodeBinary)}, anonymous ${mib(anon)}`);
  // For scale, with the launcher's flags: a bare node doing nothing, and a node that only loads
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
    ['a node with only grpc-js, protobufjs, and idle http/http2/gRPC servers', ['-e', floorScript]],
  ]) {
    const p = spawn(process.execPath, [...LAUNCHER_NODE_FLAGS, ...args], { stdio: 'ignore', cwd: ROOT, env: { PATH: env.PATH } }); // the agent's clean env
    await sleep(1500);
    console.log(`(${label}, same flags: ${mib(kib('VmRSS', fs.readFileSync(`/proc/${p.pid}/status`, 'utf8')))})`);
    p.kill();
  }
} finally {
  child.kill('SIGTERM');
  await exited;
  for (const c of cleanups.reverse()) await c();
  fs.rmSync(cwd, { recursive: true, force: true });
}
