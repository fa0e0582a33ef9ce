#!/usr/bin/env node
/**
 * xDS proxy benchmark (SPEC §7.1). Run after `npm run build`:
 *   node scripts/bench/xds.mjs [--runs 30] [--mb 5] [--pushes 10] [--swaps 10] [--no-overhead] [--no-rss]
 *        [--node <path> | --node-both]
 *
 * 1. Overhead: an ADS client (Envoy's role) asks for a ~5 MB DiscoveryResponse (real Cluster
 *    protos) and times request → whole response, directly from a gRPC server over TCP (istiod's
 *    role, its own process) vs through the agent's proxy (its own process: UDS in, TCP out).
 *    Prints p50/p99 of both and the ratio (target ≤ 1.1×), for SotW and Delta.
 * 2. Memory: the real agent (`pilot-agent proxy sidecar`, Envoy double, test control plane)
 *    while the control plane pushes `--pushes` × 5 MB CDS responses through the proxy to the
 *    double, which decodes and ACKs each one. Prints the agent's RSS, RssAnon and Pss_Anon
 *    (procmem.mjs) before, their peak during (sampled every 10 ms), 10 s and 30 s after, against
 *    the private-memory budgets (peak <= 28 MiB, <= 22 MiB at +30 s).
 * 3. Podinfo: kubelet-style label swaps (`--swaps` [10], 5.2 s apart because the agent resets
 *    Envoy's stream at most once per 5 s) → the time until the control plane sees the new LABELS
 *    on a new stream (p50/p99; target p99 ≤ 1 s). Uses the agent's podinfo watcher.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_FLAGS, spawnAgent as execLauncher } from './agent.mjs';
import { BUDGETS, memLine, readMem, rerunUnderNodes, sampleMem, sleep } from './procmem.mjs';

const rerun = rerunUnderNodes(fileURLToPath(import.meta.url));
if (rerun !== undefined) process.exit(rerun);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (rel) => new URL(`file://${path.join(ROOT, 'dist', rel)}`).href;

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const ADS = {
  sotw: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
  delta: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
};
const CLUSTER = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

// ---------------------------------------------------------------- proxy (child process)
async function runProxy() {
  const [socketPath, upstream] = process.argv.slice(3);
  const { XdsProxy } = await import(dist('src/xds/proxy.js'));
  const { createLogger } = await import(dist('src/log.js'));
  const proxy = await XdsProxy.start({
    socketPath,
    upstream: { address: upstream, plaintext: true },
    headers: () => ({}),
    node: () => ({ id: 'sidecar~10.0.0.1~bench.ns~ns.svc.cluster.local', cluster: 'bench.ns', metadata: { LABELS: { app: 'bench' } } }),
    log: createLogger({ outputLevel: 'none' }),
  });
  process.send?.('ready');
  process.on('message', async (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
    if (m === 'stop') {
      await proxy.close();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------- upstream (child process)
// Answers every request on an ADS stream with the prepared response (istiod's role).
async function runUpstream() {
  const [sizeMb] = process.argv.slice(3).map(Number);
  const grpc = await import('@grpc/grpc-js');
  const { responses } = await prepared(sizeMb);
  const id = (b) => b;
  const def = (kind) => ({ path: ADS[kind], requestStream: true, responseStream: true, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  const answer = (kind) => (call) => {
    call.on('data', () => call.write(responses[kind]));
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  };
  server.addService({ StreamAggregatedResources: def('sotw'), DeltaAggregatedResources: def('delta') }, { StreamAggregatedResources: answer('sotw'), DeltaAggregatedResources: answer('delta') });
  const port = await new Promise((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  process.send?.({ port });
  process.on('message', (m) => {
    if (m === 'stop') {
      server.forceShutdown();
      process.exit(0);
    }
  });
}

async function prepared(sizeMb) {
  const { TYPES, encodeMessage, packAny } = await import(dist('test/support/control-plane-protos.js'));
  const clusters = await bigClusters(sizeMb);
  const anys = clusters.map((c) => packAny(CLUSTER, c));
  return {
    responses: {
      sotw: encodeMessage(TYPES.DiscoveryResponse, { version_info: 'v1', resources: anys, type_url: CLUSTER, nonce: 'n' }),
      delta: encodeMessage(TYPES.DeltaDiscoveryResponse, {
        system_version_info: 'v1',
        resources: anys.map((a, i) => ({ name: clusters[i].name, version: 'v1', resource: a })),
        type_url: CLUSTER,
        nonce: 'n',
      }),
    },
    requests: {
      sotw: encodeMessage(TYPES.DiscoveryRequest, { type_url: CLUSTER }),
      delta: encodeMessage(TYPES.DeltaDiscoveryRequest, { type_url: CLUSTER }),
    },
  };
}

// ---------------------------------------------------------------- helpers
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(1)} ms`;

async function waitFor(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function bigClusters(targetMb) {
  return import(dist('test/support/control-plane.js')).then(({ testCluster }) => {
    const pad = 'x'.repeat(2500);
    const n = Math.ceil((targetMb * 1_000_000) / 2600);
    return Array.from({ length: n }, (_, i) => ({ ...testCluster(`outbound|80||svc-${i}.bench.svc.cluster.local`), alt_stat_name: pad }));
  });
}

// ---------------------------------------------------------------- 1. overhead
async function overhead(runs, sizeMb) {
  const grpc = await import('@grpc/grpc-js');
  const { responses, requests } = await prepared(sizeMb);
  const id = (b) => b;
  // istiod and the agent each in their own process; the client (Envoy's role) here.
  const upstream = fork(fileURLToPath(import.meta.url), ['upstream', String(sizeMb)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await new Promise((r) => upstream.once('message', r));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xds-bench-'));
  const socketPath = path.join(dir, 'XDS');
  const profDir = process.env.BENCH_CPU_PROF; // a directory: the proxy process writes its CPU profile there
  const child = fork(fileURLToPath(import.meta.url), ['proxy', socketPath, `127.0.0.1:${port}`], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...(profDir ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}),
  });
  await new Promise((r) => child.once('message', r));

  // One ADS stream per path; requests alternate between them so both see the same machine load.
  function openStream(target, kind) {
    // Envoy's HTTP/2 windows are 256 MiB by default; give the client (both paths) the same.
    const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1, 'grpc-node.flow_control_window': 256 * 1024 * 1024 });
    const call = client.makeBidiStreamRequest(ADS[kind], id, id, new grpc.Metadata());
    call.on('error', () => undefined);
    let resolveOne;
    call.on('data', (b) => {
      if (b.length !== responses[kind].length) throw new Error(`bad response size ${b.length}`);
      resolveOne();
    });
    return {
      once: async () => {
        const t0 = performance.now();
        await new Promise((r) => {
          resolveOne = r;
          call.write(requests[kind]);
        });
        return performance.now() - t0;
      },
      close: () => {
        call.cancel();
        client.close();
      },
    };
  }

  const proxyCpu = async () => {
    child.send('cpu');
    const { cpu } = await new Promise((r) => child.once('message', r));
    return (cpu.user + cpu.system) / 1000;
  };
  const out = {};
  for (const kind of ['sotw', 'delta']) {
    const d = openStream(`127.0.0.1:${port}`, kind);
    const p = openStream(`unix:${socketPath}`, kind);
    const direct = [];
    const proxied = [];
    let cpuMs = 0;
    for (let i = 0; i < runs + 3; i++) {
      const td = await d.once();
      const c0 = await proxyCpu();
      const tp = await p.once();
      const c1 = await proxyCpu();
      if (i < 3) continue; // warm-up
      direct.push(td);
      proxied.push(tp);
      cpuMs += c1 - c0;
    }
    d.close();
    p.close();
    out[kind] = { direct, proxied };
    const ratio = pct(proxied, 50) / pct(direct, 50);
    console.log(
      `${kind.padEnd(5)} ${(responses[kind].length / 1e6).toFixed(2)} MB response: direct p50 ${ms(pct(direct, 50))} p99 ${ms(pct(direct, 99))} | via proxy p50 ${ms(pct(proxied, 50))} p99 ${ms(pct(proxied, 99))} | ratio p50 ${ratio.toFixed(2)}× (target ≤ 1.1×) | proxy CPU ${(cpuMs / runs).toFixed(1)} ms per response`,
    );
  }
  child.send('stop');
  upstream.send('stop');
  await Promise.all([new Promise((r) => child.once('exit', r)), new Promise((r) => upstream.once('exit', r))]);
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

// ---------------------------------------------------------------- 2. agent RSS
/** The real CLI in a temp cwd with the Envoy double as Envoy (as test/support/agent-process.ts does). */
async function spawnAgent(cp, setup = () => undefined) {
  const { freePorts } = await import(dist('test/support/ports.js'));
  const { SEED_ARGS, SEED_ENV } = await import(dist('test/support/seed.js'));
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'xds-bench-agent-'));
  setup(cwd);
  const [admin, status, envoyStatus, prometheus] = await freePorts(4);
  const proxyConfig = {
    binaryPath: path.join(ROOT, 'test', 'support', 'bin', 'envoy'),
    discoveryAddress: cp.address,
    controlPlaneAuthPolicy: 'NONE',
    terminationDrainDuration: '0.1s',
    proxyAdminPort: admin,
    statusPort: status,
    proxyMetadata: { DNS_AGENT: '' },
  };
  const stateFile = path.join(cwd, 'double-state.json');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...SEED_ENV,
    INSTANCE_IP: '127.0.0.1',
    JWT_POLICY: 'none',
    PROXY_CONFIG: JSON.stringify(proxyConfig),
    ENVOY_STATUS_PORT: String(envoyStatus),
    ENVOY_PROMETHEUS_PORT: String(prometheus),
    ENVOY_DOUBLE_STATE: stateFile,
  };
  const child = execLauncher(['proxy', ...SEED_ARGS], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const exited = new Promise((r) => child.once('exit', r));
  return {
    pid: child.pid,
    stateFile,
    stderr: () => stderr,
    dispose: async () => {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(cwd, { recursive: true, force: true });
    },
  };
}

async function agentRss(pushes, sizeMb) {
  const { ControlPlane } = await import(dist('test/support/control-plane.js'));
  const clusters = await bigClusters(sizeMb);
  const cp = await ControlPlane.start({ clusters: clusters.slice(0, 2), listeners: [] });
  const agent = await spawnAgent(cp);
  try {
    const state = () => {
      try {
        return JSON.parse(fs.readFileSync(agent.stateFile, 'utf8'));
      } catch {
        return undefined;
      }
    };
    await waitFor('the double to be LIVE', () => state()?.state === 'LIVE').catch((err) => {
      throw new Error(`${err.message}\n--- agent stderr ---\n${agent.stderr().slice(-3000)}`);
    });
    await sleep(500);
    const before = readMem(agent.pid);
    const sampler = sampleMem(agent.pid);
    const t0 = performance.now();
    const accepted0 = state().ads.cds.accepted;
    for (let i = 0; i < pushes; i++) {
      cp.setResources({ clusters: clusters.map((c) => ({ ...c, name: `${c.name}-${i}` })) });
    }
    await waitFor('every push ACKed', () => cp.allRequests().filter((r) => r.typeUrl === CLUSTER && r.nonce !== '').length >= accepted0 + pushes, 120_000);
    const elapsed = performance.now() - t0;
    const peak = sampler.stop();
    await sleep(10_000);
    const after10 = readMem(agent.pid);
    await sleep(20_000);
    const after = readMem(agent.pid);
    const bytes = cp.streams.flatMap((s) => s.responses).slice(-pushes).reduce((n, r) => n + r.bytes, 0);
    console.log(`agent (node ${process.version}, flags: ${AGENT_NODE_FLAGS.join(' ') || '(none)'}) with ${pushes} × ${(bytes / pushes / 1e6).toFixed(2)} MB CDS pushes through the proxy; all ACKed in ${ms(elapsed)}`);
    console.log(memLine('  before the pushes', before));
    console.log(memLine('  peak during the pushes', peak, BUDGETS.peak));
    console.log(memLine('  10 s after', after10));
    console.log(memLine('  30 s after', after, BUDGETS.after));
    return { before, peak, after, elapsed };
  } finally {
    await agent.dispose();
    await cp.close();
  }
}

// ---------------------------------------------------------------- 3. podinfo swap → control plane
// (the Envoy double reconnects after its own jittered backoff, [0, 500 ms) by default, as Envoy)
async function podinfoLatency(swaps) {
  const { ControlPlane, testCluster } = await import(dist('test/support/control-plane.js'));
  const { kubeletWrite, podInfoText } = await import(dist('test/support/kubelet-volume.js'));
  const cp = await ControlPlane.start({ clusters: [testCluster('c')], listeners: [] });
  let podDir = '';
  const write = (version) => kubeletWrite(podDir, { labels: podInfoText({ app: 'bench', version }), annotations: '' });
  const agent = await spawnAgent(cp, (cwd) => {
    podDir = path.join(cwd, 'etc/istio/pod');
    write('v0');
  });
  const version = () => cp.lastNode()?.metadata?.LABELS?.version;
  try {
    await waitFor('the first node', () => version() === 'v0');
    const times = [];
    for (let i = 1; i <= swaps; i++) {
      // The agent resets Envoy's stream at most once per 5 s (SPEC §7.2): space the swaps beyond that.
      await new Promise((r) => setTimeout(r, 5200));
      const t0 = performance.now();
      write(`v${i}`);
      await waitFor(`labels v${i}`, () => version() === `v${i}`, 30_000);
      times.push(performance.now() - t0);
    }
    console.log(`podinfo swap → control plane sees the new LABELS (${swaps} swaps): p50 ${ms(pct(times, 50))}, p99 ${ms(pct(times, 99))}, max ${ms(Math.max(...times))} (target p99 ≤ 1 s)`);
  } finally {
    await agent.dispose();
    await cp.close();
  }
}

if (process.argv[2] === 'proxy') {
  await runProxy();
} else if (process.argv[2] === 'upstream') {
  await runUpstream();
} else {
  const runs = arg('runs', 30);
  const size = arg('mb', 5);
  const pushes = arg('pushes', 10);
  console.log(`node ${process.version}, ${os.cpus().length} CPU(s), ${os.cpus()[0]?.model ?? ''}`);
  if (!process.argv.includes('--no-overhead')) await overhead(runs, size);
  if (!process.argv.includes('--no-rss')) await agentRss(pushes, size);
  const swaps = arg('swaps', 10);
  if (swaps > 0) await podinfoLatency(swaps);
}
