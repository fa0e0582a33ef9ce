#!/usr/bin/env node
/**
 * Workload-certificate benchmark (issue 7). Run after `npm run build`:
 *   node scripts/bench/certs.mjs [--runs 10] [--renewals 20]
 *
 * A test CA (dist/test/support/ca-server.js, TLS, ECDSA root) runs in a child process, so the
 * CPU measured here is the agent side only. The agent side is the production wiring
 * (`startWorkloadCertificates`, from a config built like the seed pod's, CA_ADDR → the child).
 *
 * 1. Start → `default` served, per run (fresh socket, fresh key each time), after loading the
 *    module once (also timed; the CA client and its X.509 library load with the first CSR):
 *    - start → SDS socket listening (startWorkloadCertificates resolved);
 *    - start → first certificate held (RSA 2048 key, CSR, TLS dial, CreateCertificate, checks);
 *    - start → the Envoy double (spawned once the socket listens, as the agent spawns Envoy)
 *      has accepted `default` over SDS — includes the double's own Node start-up.
 * 2. CPU cost of one renewal (process.cpuUsage, user+system, all threads, so WebCrypto's key
 *    generation on the libuv pool counts): `CaClient.issue()` repeated, RSA 2048 and ECDSA
 *    P-256; and the cost of encoding one SDS push of `default`.
 * Prints p50 / min / max per figure.
 */
import { fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (rel) => new URL(`file://${path.join(ROOT, 'dist', rel)}`).href;
const ENVOY = path.join(ROOT, 'test', 'support', 'bin', 'envoy');
const TOKEN = 'bench-token';
const IDENTITY = 'spiffe://cluster.local/ns/jiuxi-ns/sa/default';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

// ---------------------------------------------------------------- CA (child process)
async function runCa() {
  const { CaServer, TestCa } = await import(dist('test/support/ca-server.js'));
  const ca = await TestCa.create();
  const server = await CaServer.start({ ca, tokens: { [TOKEN]: IDENTITY } });
  process.send({ port: server.port, root: ca.rootCertPem });
  process.on('disconnect', () => void server.close().then(() => process.exit(0)));
}

// ---------------------------------------------------------------- helpers
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: s[Math.floor((s.length - 1) / 2)], min: s[0], max: s[s.length - 1] };
};
const fmt = (ms) => (ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`);
const row = (label, xs) => {
  const { p50, min, max } = stats(xs);
  console.log(`  ${label.padEnd(62)} p50 ${fmt(p50).padStart(9)}   min ${fmt(min).padStart(9)}   max ${fmt(max).padStart(9)}`);
};

function bootstrap(socketPath) {
  const sds = { api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] }, initial_fetch_timeout: '0s', resource_api_version: 'V3' };
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      clusters: [
        {
          name: 'upstream',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: { cluster_name: 'upstream', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } }] }] },
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
              common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: sds }], combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: sds } } },
            },
          },
        },
        { name: 'sds-grpc', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'sds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: socketPath } } } }] }] } },
      ],
    },
  };
}

async function waitFor(fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
}

// ---------------------------------------------------------------- main
async function main() {
  const runs = arg('runs', 10);
  const renewals = arg('renewals', 20);
  const child = fork(fileURLToPath(import.meta.url), ['ca'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port, root } = await new Promise((resolve) => child.once('message', resolve));

  const l0 = performance.now();
  const { startWorkloadCertificates } = await import(dist('src/sds/workload.js'));
  const loadMs = performance.now() - l0;
  const { buildConfig } = await import(dist('src/config/load.js'));
  const { SEED_ARGS, SEED_ENV } = await import(dist('test/support/seed.js'));
  const { CaClient } = await import(dist('src/ca/client.js'));
  const { certOptionsFromConfig } = await import(dist('src/ca/options.js'));
  const { secretResource } = await import(dist('src/sds/sotw.js'));
  const { encodeDiscoveryResponse, encodeSecret, SECRET_TYPE_URL } = await import(dist('src/sds/proto.js'));
  const { createLogger } = await import(dist('src/log.js'));
  const log = createLogger({ outputLevel: 'none' });

  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-certs-'));
  fs.mkdirSync(path.join(cwd, 'var/run/secrets/tokens'), { recursive: true });
  fs.mkdirSync(path.join(cwd, 'var/run/secrets/istio'), { recursive: true });
  fs.writeFileSync(path.join(cwd, 'var/run/secrets/tokens/istio-token'), TOKEN);
  fs.writeFileSync(path.join(cwd, 'var/run/secrets/istio/root-cert.pem'), root);
  const config = (extra = {}) =>
    buildConfig({ argv: SEED_ARGS, env: { ...SEED_ENV, JWT_POLICY: 'third-party-jwt', CA_ADDR: `localhost:${port}`, ...extra }, cwd, meshConfigPath: path.join(cwd, 'mesh') }).config;

  console.log(`workload certificates: ${runs} start-ups, ${renewals} renewals per key type (CA in a child process on :${port})\n`);
  const listening = [];
  const issued = [];
  const served = [];
  for (let i = 0; i < runs; i++) {
    const socketPath = path.join(cwd, `SDS-${i}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-double-'));
    fs.writeFileSync(path.join(dir, 'envoy.json'), JSON.stringify(bootstrap(socketPath)));
    const stateFile = path.join(dir, 'state.json');
    const t0 = performance.now();
    const certs = await startWorkloadCertificates({ config: config(), socketPath, log });
    listening.push(performance.now() - t0);
    const double = spawn(ENVOY, ['-c', path.join(dir, 'envoy.json')], { cwd: dir, env: { PATH: process.env.PATH, ENVOY_DOUBLE_STATE: stateFile }, stdio: 'ignore' });
    await certs.manager.waitForCertificate();
    issued.push(performance.now() - t0);
    await waitFor(() => {
      try {
        return JSON.parse(fs.readFileSync(stateFile, 'utf8')).sds?.default?.updates >= 1;
      } catch {
        return false;
      }
    });
    served.push(performance.now() - t0);
    double.kill('SIGTERM');
    await new Promise((r) => double.once('exit', r));
    await certs.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log('1. start → default served');
  console.log(`  ${'loading src/sds/workload.js (once per process, cold)'.padEnd(62)} ${fmt(loadMs)}`);
  row('start → SDS socket listening', listening);
  row('start → first certificate held (RSA 2048)', issued);
  row('start → Envoy double accepted `default` (incl. its start-up)', served);

  console.log('\n2. CPU cost of one renewal (agent side; CA in another process)');
  for (const [label, extra] of [
    ['RSA 2048', {}],
    ['ECDSA P-256', { ECC_SIGNATURE_ALGORITHM: 'ECDSA' }],
  ]) {
    const client = new CaClient(certOptionsFromConfig(config(extra)).ca);
    await client.issue(); // warm-up
    const cpu = [];
    const wall = [];
    let last;
    for (let i = 0; i < renewals; i++) {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      last = (await client.issue()).certificate;
      wall.push(performance.now() - w0);
      const d = process.cpuUsage(c0);
      cpu.push((d.user + d.system) / 1000);
    }
    row(`${label}: CPU (user+system) per renewal`, cpu);
    row(`${label}: wall time per renewal`, wall);
    const pushes = 1000;
    const c0 = process.cpuUsage();
    for (let i = 0; i < pushes; i++) {
      encodeDiscoveryResponse({ version_info: `v${i}`, type_url: SECRET_TYPE_URL, nonce: `n${i}`, resources: [{ type_url: SECRET_TYPE_URL, value: encodeSecret(secretResource('default', last)) }] });
    }
    const d = process.cpuUsage(c0);
    console.log(`  ${`${label}: encoding one SDS push of default`.padEnd(62)} ${((d.user + d.system) / pushes).toFixed(1)} µs CPU`);
  }

  fs.rmSync(cwd, { recursive: true, force: true });
  child.disconnect();
  await new Promise((r) => child.once('exit', r));
}

if (process.argv[2] === 'ca') await runCa();
else await main();
