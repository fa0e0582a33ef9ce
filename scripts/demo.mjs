#!/usr/bin/env node
/**
 * `npm start`: a live demo of pilot-agent on this machine (issue 17). Not shipped.
 *
 *   npm start                    status port 15020, admin 15000, Envoy's 15021/15090
 *   npm start -- --free-ports    any free loopback ports instead (several demos, or tests)
 *
 * Builds dist/ when it is missing or older than src/ or test/support/ (tsc), then runs the
 * agent (`bin/pilot-agent.js proxy sidecar --standalone`) in the scratch directory .demo/
 * (git-ignored, recreated each run) with the repository's Envoy double
 * (test/support/bin/envoy) as its explicit `binaryPath`, and a small demo app on a free port
 * whose /metrics the agent merges (ISTIO_PROMETHEUS_ANNOTATIONS and the prometheus.io pod
 * annotations, as the injector writes them). Prints the URLs once the agent is ready.
 * Ctrl-C (SIGINT) or SIGTERM: the agent drains and exits, the app closes, and this script
 * exits with the agent's status (0). The agent runs in its own process group so it gets one
 * signal, from here, whatever the terminal or npm also send.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCRATCH = path.join(ROOT, '.demo');
const ENVOY_DOUBLE = path.join(ROOT, 'test', 'support', 'bin', 'envoy');
const say = (line) => process.stdout.write(`demo: ${line}\n`);

const args = process.argv.slice(2);
for (const a of args) {
  if (a !== '--free-ports') {
    process.stderr.write(`demo: unknown argument ${JSON.stringify(a)}; expected none or --free-ports\n`);
    process.exit(2);
  }
}
const freePortsWanted = args.includes('--free-ports');

function newestMtime(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

function buildIfNeeded() {
  const marker = path.join(ROOT, 'dist', 'src', 'cli.js');
  const double = path.join(ROOT, 'dist', 'test', 'support', 'envoy-double', 'main.js');
  const built = fs.existsSync(marker) && fs.existsSync(double) ? Math.min(fs.statSync(marker).mtimeMs, fs.statSync(double).mtimeMs) : 0;
  const sources = Math.max(newestMtime(path.join(ROOT, 'src')), newestMtime(path.join(ROOT, 'test', 'support')));
  if (built >= sources) return;
  const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
  if (!fs.existsSync(tsc)) {
    process.stderr.write(`demo: ${path.relative(ROOT, tsc)} not found: run \`npm ci\` first\n`);
    process.exit(1);
  }
  say(built === 0 ? 'building dist/ (tsc, first run)…' : 'sources changed: rebuilding dist/ (tsc)…');
  try {
    execFileSync(tsc, ['-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  } catch {
    process.stderr.write('demo: the build failed (tsc output above)\n');
    process.exit(1);
  }
  // tsc leaves unchanged outputs alone: touch the markers so the next start skips the build.
  const now = new Date();
  fs.utimesSync(marker, now, now);
  fs.utimesSync(double, now, now);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The demo app: a tiny HTTP service with Prometheus metrics of its own. */
function startDemoApp() {
  let requests = 0;
  const started = Date.now() / 1000;
  const server = http.createServer((req, res) => {
    requests++;
    if (req.url === '/metrics') {
      const body = [
        '# HELP demo_app_requests_total Requests served by the demo app.',
        '# TYPE demo_app_requests_total counter',
        `demo_app_requests_total ${requests}`,
        '# HELP demo_app_start_time_seconds When the demo app started.',
        '# TYPE demo_app_start_time_seconds gauge',
        `demo_app_start_time_seconds ${started.toFixed(3)}`,
        '',
      ].join('\n');
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('hello from the pilot-agent demo app\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function get(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

buildIfNeeded();
fs.rmSync(SCRATCH, { recursive: true, force: true });
fs.mkdirSync(path.join(SCRATCH, 'etc', 'istio', 'pod'), { recursive: true });
const app = await startDemoApp();
const appPort = app.address().port;
const [status, admin, envoyStatus, prometheus] = freePortsWanted
  ? [await freePort(), await freePort(), await freePort(), await freePort()]
  : [15020, 15000, 15021, 15090];

// What the injector writes: the pod's prometheus.io annotations point at the agent's merged
// endpoint; the app's own values move to ISTIO_PROMETHEUS_ANNOTATIONS.
const appAnnotations = { scrape: 'true', path: '/metrics', port: String(appPort) };
const annotations = {
  'prometheus.io/scrape': 'true',
  'prometheus.io/port': String(status),
  'prometheus.io/path': '/stats/prometheus',
  'sidecar.istio.io/status': '{"containers":["istio-proxy"]}',
};
const labels = { app: 'demo', version: 'v1', 'security.istio.io/tlsMode': 'istio', 'service.istio.io/canonical-name': 'demo' };
const podFile = (obj) => Object.entries(obj).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n');
fs.writeFileSync(path.join(SCRATCH, 'etc', 'istio', 'pod', 'labels'), podFile(labels));
fs.writeFileSync(path.join(SCRATCH, 'etc', 'istio', 'pod', 'annotations'), podFile(annotations));

const env = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? '/root',
  POD_NAME: 'demo-7d9c8-abcde',
  POD_NAMESPACE: 'demo',
  INSTANCE_IP: '127.0.0.1',
  SERVICE_ACCOUNT: 'default',
  ISTIO_META_WORKLOAD_NAME: 'demo',
  ISTIO_META_CLUSTER_ID: 'Kubernetes',
  ISTIO_META_MESH_ID: 'cluster.local',
  CA_ADDR: '127.0.0.1:1',
  ENVOY_STATUS_PORT: String(envoyStatus),
  ENVOY_PROMETHEUS_PORT: String(prometheus),
  ISTIO_PROMETHEUS_ANNOTATIONS: JSON.stringify(appAnnotations),
  ENVOY_DOUBLE_STATE: path.join(SCRATCH, 'envoy-double-state.json'),
  PROXY_CONFIG: JSON.stringify({
    binaryPath: ENVOY_DOUBLE,
    discoveryAddress: '127.0.0.1:1',
    proxyAdminPort: admin,
    statusPort: status,
    terminationDrainDuration: '2s',
    proxyMetadata: { DNS_AGENT: '' },
  }),
};
const agentArgs = ['proxy', 'sidecar', '--standalone', '--domain', 'demo.svc.cluster.local', '--proxyLogLevel=warning'];
say(`scratch dir ${path.relative(ROOT, SCRATCH)}/, Envoy = the repository's double (${path.relative(ROOT, ENVOY_DOUBLE)}), demo app on 127.0.0.1:${appPort}`);
const agent = spawn(process.execPath, [path.join(ROOT, 'bin', 'pilot-agent.js'), ...agentArgs], { cwd: SCRATCH, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
const exited = new Promise((resolve) => agent.once('exit', (code, signal) => resolve({ code, signal })));

let stopping = false;
const stop = (sig) => {
  if (stopping) return;
  stopping = true;
  say(`${sig}: stopping the agent (it drains Envoy, then exits)…`);
  if (agent.exitCode === null && agent.signalCode === null) agent.kill(sig);
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

const ready = (async () => {
  for (;;) {
    if (stopping || agent.exitCode !== null || agent.signalCode !== null) return false;
    if ((await get(status, '/healthz/ready')) === 200) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
})();
void ready.then((ok) => {
  if (!ok) return;
  const base = `http://127.0.0.1:${status}`;
  process.stdout.write(
    [
      '',
      'pilot-agent demo is ready:',
      `  status page      ${base}/`,
      `  status JSON      ${base}/status        (or: node bin/pilot-agent.js status --port ${status})`,
      `  readiness        ${base}/healthz/ready`,
      `  merged metrics   ${base}/stats/prometheus   (agent + Envoy + the demo app's demo_app_*)`,
      `  Envoy admin      http://127.0.0.1:${admin}/`,
      'Press Ctrl-C to drain and stop.',
      '',
    ].join('\n'),
  );
});

const { code, signal } = await exited;
await new Promise((r) => app.close(() => r()));
if (code !== 0) say(`agent exited with ${signal ?? `code ${code}`}${!freePortsWanted && !stopping ? ' (ports in use? try: npm start -- --free-ports)' : ''}`);
else say('agent exited 0');
process.exit(code ?? 1);
