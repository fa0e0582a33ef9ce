/**
 * What the agent benchmarks share: repository paths, the seed pod's args/env (from the compiled
 * test support in dist/), free ports, and the environment that runs the built CLI standalone with
 * the Envoy double as Envoy. Run `npm run build` first.
 */
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
export async function agentEnv(extra = {}) {
  const [admin, status, envoyStatus, prometheus] = await freePorts(4);
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...SEED_ENV,
    INSTANCE_IP: '127.0.0.1',
    PROXY_CONFIG: JSON.stringify({ binaryPath: ENVOY, proxyAdminPort: admin, statusPort: status, proxyMetadata: { DNS_AGENT: '' }, terminationDrainDuration: '0.1s' }),
    ENVOY_STATUS_PORT: String(envoyStatus),
    ENVOY_PROMETHEUS_PORT: String(prometheus),
    ...extra,
  };
  return { env, ports: { admin, status, envoyStatus, prometheus } };
}

/** argv for the built CLI: `proxy` with the seed's args, standalone. */
export const AGENT_ARGV = [CLI, 'proxy', ...SEED_ARGS, '--standalone'];
