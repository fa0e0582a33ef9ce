/**
 * `ISTIO_PROMETHEUS_ANNOTATIONS` (SPEC §6.2): which application endpoint the merged metrics
 * include. Validated once at start; every error is a ConfigError naming the variable.
 */
import { ConfigError } from '../errors.js';

export const PROMETHEUS_ANNOTATIONS_ENV = 'ISTIO_PROMETHEUS_ANNOTATIONS';

export interface AppScrapeTarget {
  /** Starts with `/`; default `/metrics`. */
  path: string;
  /** Default 80. */
  port: number;
}

/**
 * Parses the raw env value. `undefined` (unset) → no application scrape; `""` is invalid
 * JSON, as in Istio; `scrape: "false"` disables; only `scrape`, `path`, `port` are read.
 * `port` equal to `statusPort` is an error (the agent would scrape itself in a loop).
 */
export function parsePrometheusAnnotations(raw: string | undefined, statusPort: number): AppScrapeTarget | undefined {
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`${PROMETHEUS_ANNOTATIONS_ENV}: invalid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${PROMETHEUS_ANNOTATIONS_ENV}: expected a JSON object like {"scrape":"true","path":"/metrics","port":"8080"}, got ${raw}`);
  }
  const obj = value as Record<string, unknown>;
  const field = (name: string): string => {
    const v = obj[name];
    if (v === undefined || v === null) return '';
    // Istio reads strings only; a JSON integer port is accepted as well.
    if (name === 'port' && typeof v === 'number' && Number.isInteger(v)) return String(v);
    if (typeof v !== 'string') throw new ConfigError(`${PROMETHEUS_ANNOTATIONS_ENV}.${name}: expected a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const scrape = field('scrape');
  const pathText = field('path');
  const portText = field('port');
  if (scrape === 'false') return undefined;
  let path = pathText === '' ? '/metrics' : pathText;
  if (!path.startsWith('/')) path = `/${path}`;
  if (/[\s#]/.test(path)) throw new ConfigError(`${PROMETHEUS_ANNOTATIONS_ENV}.path: invalid path ${JSON.stringify(pathText)}`);
  const portString = portText === '' ? '80' : portText;
  if (!/^\d+$/.test(portString) || Number(portString) < 1 || Number(portString) > 65535) {
    throw new ConfigError(`${PROMETHEUS_ANNOTATIONS_ENV}.port: expected a port 1-65535, got ${JSON.stringify(portText)}`);
  }
  const port = Number(portString);
  if (port === statusPort) {
    throw new ConfigError(
      `${PROMETHEUS_ANNOTATIONS_ENV}.port: the application port is the agent's status port ${statusPort}, which would make the agent scrape itself; ` +
        `make sure the pod has no prometheus.io/port=${statusPort} annotation and is not injected twice`,
    );
  }
  return { path, port };
}
