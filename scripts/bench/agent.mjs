/**
 * What the agent benchmarks share: repository paths, the seed pod's args/env (from the compiled
 * test support in dist/), free ports, and the environment that runs the built CLI standalone with
 * the Envoy double as Envoy. Run `npm run build` first.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'bin', 'pilot-agent.js');
export const ENVOY = path.join(ROOT, 'test', 'support', 'bin', 'envoy');
const dist = (rel) => new URL(`file://${path.join(ROOT, 'dist', rel)}`).href;
export const { SEED_ARGS, SEED_ENV } = await import(dist('test/support/seed.js'));
export const { freePorts } = await import(dist('test/support/ports.js'));

/** A numeric `--name value` option, or `def`. */
export function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

/** Free ports for admin, status, Envoy's 15021 and 15090 listeners, and the env that uses them. */
export async function agentEnv(extra = {}, proxyConfig = {}) {
  const [admin, status, envoyStatus, prometheus] = await freePorts(4);
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...SEED_ENV,
    INSTANCE_IP: '127.0.0.1',
    PROXY_CONFIG: JSON.stringify({ binaryPath: ENVOY, proxyAdminPort: admin, statusPort: status, proxyMetadata: { DNS_AGENT: '' }, terminationDrainDuration: '0.1s', ...proxyConfig }),
    ENVOY_STATUS_PORT: String(envoyStatus),
    ENVOY_PROMETHEUS_PORT: String(prometheus),
    ...extra,
  };
  return { env, ports: { admin, status, envoyStatus, prometheus } };
}

/** The CLI's args: `proxy` with the seed's args, standalone. */
export const AGENT_ARGS = ['proxy', ...SEED_ARGS, '--standalone'];

/**
 * The node flags the launcher's `#!/usr/bin/env -S node …` line gives the agent in the image;
 * for benchmarks that run agent code in a process of their own.
 */
export const LAUNCHER_NODE_FLAGS = (() => {
  const first = fs.readFileSync(CLI, 'utf8').split('\n')[0];
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  if (!m) throw new Error(`${CLI}: unexpected first line ${first}`);
  return m[1].split(' ').filter(Boolean);
})();

/**
 * `BENCH_LAUNCHER_FLAGS` (env, space-separated; `none` for no flag) replaces the launcher's node
 * flags for an experiment: the agent then runs as `node <flags> bin/pilot-agent.js …`.
 */
export const EXPERIMENT_FLAGS = process.env.BENCH_LAUNCHER_FLAGS === undefined ? undefined : process.env.BENCH_LAUNCHER_FLAGS.split(' ').filter((f) => f !== '' && f !== 'none');

/** The node flags the agent runs with in this benchmark run. */
export const AGENT_NODE_FLAGS = EXPERIMENT_FLAGS ?? LAUNCHER_NODE_FLAGS;

/**
 * `BENCH_CLI` (env, a path) runs another entry point instead of the launcher, as
 * `node <AGENT_NODE_FLAGS> <path> …`: for build experiments (e.g. the CLI compiled to CommonJS).
 */
const EXPERIMENT_CLI = process.env.BENCH_CLI ? path.resolve(process.env.BENCH_CLI) : undefined;

/**
 * Runs the launcher as the image does: exec'd directly (its `#!` line applies), node from the
 * PATH (this node first). With BENCH_LAUNCHER_FLAGS or BENCH_CLI, node runs the entry itself.
 */
/**
 * `BENCH_AGENT_ENV` (env, space-separated `NAME=value` pairs, e.g. `MALLOC_ARENA_MAX=2`) is added
 * to the agent's environment for an experiment.
 */
const EXPERIMENT_ENV = Object.fromEntries(
  (process.env.BENCH_AGENT_ENV ?? '')
    .split(' ')
    .filter((kv) => kv.includes('='))
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);

export function spawnAgent(args, options) {
  const env = { ...options.env, ...EXPERIMENT_ENV, PATH: `${path.dirname(process.execPath)}:${options.env?.PATH ?? process.env.PATH ?? '/usr/bin:/bin'}` };
  if (EXPERIMENT_FLAGS || EXPERIMENT_CLI) return spawn(process.execPath, [...AGENT_NODE_FLAGS, EXPERIMENT_CLI ?? CLI, ...args], { ...options, env });
  return spawn(CLI, args, { ...options, env });
}

/** The real istio-proxy capture (the double's default `/stats/prometheus` fixture). */
export const CAPTURE = path.join(ROOT, 'test/fixtures/envoy/stats-prometheus.istio-proxy.datadog.txt');

/**
 * An Envoy `/stats/prometheus` body of about `targetBytes`, like an Envoy with many clusters:
 * the capture's families, its series repeated with a distinguishing label (# TYPE lines once),
 * no final newline (Envoy's quirk).
 */
export function envoyBody(targetBytes) {
  const capture = fs.readFileSync(CAPTURE, 'utf8');
  const parts = [`${capture}\n`];
  let size = parts[0].length;
  const samples = capture.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  for (let copy = 1; size < targetBytes; copy++) {
    const text = `${samples.map((l) => l.replace(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{\}|\{)?/, (_m, name, brace) => (brace === '{' ? `${name}{bench_copy="${copy}",` : `${name}{bench_copy="${copy}"}`))).join('\n')}\n`;
    parts.push(text);
    size += text.length;
  }
  return Buffer.from(parts.join('').slice(0, -1));
}
