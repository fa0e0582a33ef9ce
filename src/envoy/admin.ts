/**
 * Envoy admin client on `node:http` with a keep-alive Agent (no undici: loading it cost
 * 60–140 ms of start-up before the Envoy spawn). Every call has a timeout covering the whole
 * exchange (connect, headers, body) and takes an optional AbortSignal. Paths and query strings
 * are sent byte for byte (`?usedonly&filter=^(server\.state|…)`), as Istio does: Envoy applies
 * the filter regex as a search. Idle connections are unref'd and never keep the process alive.
 * It is the agent's only client of the admin API (readiness, drain, stats polls, hot restart).
 */
import http from 'node:http';

export interface AdminClientOptions {
  /** `127.0.0.1` or `::1` (SPEC §5.2: the IP-mode localhost). */
  host: string;
  port: number;
}

/** One generation of connections; closed once its requests in flight are done. */
interface Pool {
  agent: http.Agent;
  inFlight: number;
  closing: boolean;
  drained: Array<() => void>;
}

export class EnvoyAdminClient {
  readonly origin: string;
  private readonly host: string;
  private readonly port: number;
  private pool: Pool;

  constructor(options: AdminClientOptions) {
    this.origin = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
    this.host = options.host;
    this.port = options.port;
    this.pool = this.newPool();
  }

  private newPool(): Pool {
    // `timeout` is the idle timeout of a free keep-alive socket (and honours the server's Keep-Alive hint).
    return { agent: new http.Agent({ keepAlive: true, maxSockets: 4, timeout: 5_000 }), inFlight: 0, closing: false, drained: [] };
  }

  private static closePool(pool: Pool): Promise<void> {
    pool.closing = true;
    if (pool.inFlight === 0) {
      pool.agent.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve) => pool.drained.push(resolve));
  }

  /**
   * Later calls use new connections; requests in flight finish on the old ones, which are
   * then closed. Used after a hot restart, when keep-alive connections may still reach the
   * parent Envoy's admin while the child owns the admin port.
   */
  resetConnections(): void {
    const old = this.pool;
    this.pool = this.newPool();
    void EnvoyAdminClient.closePool(old);
  }

  /**
   * GET/POST a raw path; resolves with status and body text. Rejects on timeout, abort or a
   * connection error. With `freshConnection` the request uses a connection of its own, closed
   * after the response, never a pooled keep-alive one.
   */
  async call(
    method: 'GET' | 'POST',
    path: string,
    timeoutMs: number,
    signal?: AbortSignal,
    options: { freshConnection?: boolean } = {},
  ): Promise<{ status: number; body: string }> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    combined.throwIfAborted();
    if (options.freshConnection) return this.exchange(false, method, path, combined);
    const pool = this.pool;
    pool.inFlight++;
    try {
      return await this.exchange(pool.agent, method, path, combined);
    } finally {
      pool.inFlight--;
      if (pool.closing && pool.inFlight === 0) {
        pool.agent.destroy();
        for (const d of pool.drained.splice(0)) d();
      }
    }
  }

  private exchange(agent: http.Agent | false, method: 'GET' | 'POST', path: string, combined: AbortSignal): Promise<{ status: number; body: string }> {
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      let settled = false;
      const finish = (err: unknown, value?: { status: number; body: string }) => {
        if (settled) return;
        settled = true;
        combined.removeEventListener('abort', onAbort);
        if (err !== undefined) reject(err);
        else resolve(value!);
      };
      const req = http.request({ agent, host: this.host, port: this.port, method, path, headers: { host: this.origin.slice('http://'.length) } });
      const onAbort = () => {
        const reason: unknown = combined.reason;
        finish(reason);
        req.destroy(reason instanceof Error ? reason : new Error(String(reason)));
      };
      combined.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => finish(err));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => finish(err));
        res.on('aborted', () => finish(new Error(`admin ${method} ${path}: connection closed mid-response`)));
        res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.end();
    });
  }

  /** `/stats?usedonly&filter=<regex>` parsed into name → value (text values kept as strings). */
  async stats(filter: string, timeoutMs: number, signal?: AbortSignal): Promise<{ body: string; stats: Map<string, string> }> {
    const { status, body } = await this.call('GET', `/stats?usedonly&filter=${filter}`, timeoutMs, signal);
    if (status !== 200) throw new Error(`admin /stats returned HTTP ${status}: ${body.slice(0, 200)}`);
    return { body, stats: parseStatsText(body) };
  }

  /**
   * `GET /server_info` → the answering Envoy's state and restart epoch, over a fresh connection
   * (so a keep-alive connection still open to a hot restart's parent cannot answer for the
   * child). Rejects on a transport error, a non-200 status or an unreadable body.
   */
  async serverInfo(timeoutMs: number, signal?: AbortSignal): Promise<ServerInfo> {
    const { status, body } = await this.call('GET', '/server_info', timeoutMs, signal, { freshConnection: true });
    if (status !== 200) throw new Error(`admin /server_info returned HTTP ${status}: ${body.slice(0, 200)}`);
    const info = parseServerInfo(body);
    if (!info) throw new Error(`admin /server_info: unreadable body: ${body.slice(0, 200)}`);
    return info;
  }

  async post(path: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const { status, body } = await this.call('POST', path, timeoutMs, signal);
    if (status !== 200) throw new Error(`admin POST ${path} returned HTTP ${status}: ${body.slice(0, 200)}`);
  }

  /** Waits for requests in flight, then closes every connection. */
  async close(): Promise<void> {
    await EnvoyAdminClient.closePool(this.pool);
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

/** What `/server_info` says of the answering Envoy. */
export interface ServerInfo {
  /** `server.state`: LIVE, DRAINING, PRE_INITIALIZING, INITIALIZING. */
  state: string;
  /** `command_line_options.restart_epoch` (0 when absent). */
  epoch: number;
}

/** PURE: `/server_info` JSON → state and restart epoch; undefined if unreadable. */
export function parseServerInfo(body: string): ServerInfo | undefined {
  try {
    const info = JSON.parse(body) as { state?: unknown; command_line_options?: { restart_epoch?: unknown } };
    const epoch = Number(info.command_line_options?.restart_epoch ?? 0);
    if (typeof info.state !== 'string' || !Number.isInteger(epoch)) return undefined;
    return { state: info.state, epoch };
  } catch {
    return undefined;
  }
}
