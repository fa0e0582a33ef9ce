/**
 * Envoy admin client (undici). Every call has a timeout and takes an optional AbortSignal.
 * Query strings are sent literally (`?usedonly&filter=^(server\.state|…)`), as Istio does:
 * Envoy applies the filter regex as a search.
 */
import { Pool } from 'undici';

export interface AdminClientOptions {
  /** `127.0.0.1` or `::1` (SPEC §5.2: the IP-mode localhost). */
  host: string;
  port: number;
}

export class EnvoyAdminClient {
  readonly origin: string;
  private pool: Pool;

  constructor(options: AdminClientOptions) {
    this.origin = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
    // A pool sends `path` byte for byte (no URL re-encoding of the filter regex).
    this.pool = this.newPool();
  }

  private newPool(): Pool {
    return new Pool(this.origin, { connections: 4, keepAliveTimeout: 5_000 });
  }

  /**
   * Later calls use new connections; requests in flight finish on the old ones, which are
   * then closed. Used after a hot restart, when keep-alive connections may still reach the
   * parent Envoy's admin while the child owns the admin port.
   */
  resetConnections(): void {
    const old = this.pool;
    this.pool = this.newPool();
    void old.close().catch(() => undefined);
  }

  /** GET/POST a raw path; resolves with status and body text. */
  async call(method: 'GET' | 'POST', path: string, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number; body: string }> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const res = await this.pool.request({
      path,
      method,
      signal: combined,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const body = await res.body.text();
    return { status: res.statusCode, body };
  }

  /** `/stats?usedonly&filter=<regex>` parsed into name → value (text values kept as strings). */
  async stats(filter: string, timeoutMs: number, signal?: AbortSignal): Promise<{ body: string; stats: Map<string, string> }> {
    const { status, body } = await this.call('GET', `/stats?usedonly&filter=${filter}`, timeoutMs, signal);
    if (status !== 200) throw new Error(`admin /stats returned HTTP ${status}: ${body.slice(0, 200)}`);
    return { body, stats: parseStatsText(body) };
  }

  async post(path: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const { status, body } = await this.call('POST', path, timeoutMs, signal);
    if (status !== 200) throw new Error(`admin POST ${path} returned HTTP ${status}: ${body.slice(0, 200)}`);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** Envoy's `/stats` text: `name: value` per line. Lines without exactly one `: ` split are skipped. */
export function parseStatsText(body: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of body.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    out.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return out;
}
