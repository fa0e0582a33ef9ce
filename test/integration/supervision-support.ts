/**
 * Shared pieces of the supervision integration tests: an upstream app whose responses the
 * test releases, a TCP echo server, an `ISTIO_BOOTSTRAP_OVERRIDE` that adds non-excluded
 * listeners in front of them, and a deadline-bounded poll. All loopback, port 0 where possible.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

import { waitUntil } from '../support/wait.js';

export { waitUntil };

/**
 * The app behind Envoy: `GET /hold/<name>` is answered only when the test calls
 * `release(name)`; any other path answers `hello` at once.
 */
export class UpstreamApp {
  readonly held = new Map<string, http.ServerResponse>();
  private constructor(
    private readonly server: http.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<UpstreamApp> {
    let app: UpstreamApp | undefined;
    const server = http.createServer((req, res) => {
      const m = /^\/hold\/([\w-]+)/.exec(req.url ?? '');
      if (m) {
        app?.held.set(m[1] as string, res);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
    });
    server.keepAliveTimeout = 0;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    app = new UpstreamApp(server, (server.address() as AddressInfo).port);
    return app;
  }

  waitHeld(name: string): Promise<http.ServerResponse> {
    return waitUntil(`upstream request ${name}`, () => this.held.get(name));
  }

  release(name: string, body = `released ${name}`): void {
    this.held.get(name)?.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  }

  async close(): Promise<void> {
    for (const res of this.held.values()) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A TCP echo server (what a held-open raw TCP connection through Envoy reaches). */
export class EchoServer {
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<EchoServer> {
    let echo: EchoServer | undefined;
    const server = net.createServer((s) => {
      echo?.sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => echo?.sockets.delete(s));
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    echo = new EchoServer(server, (server.address() as AddressInfo).port);
    return echo;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A client TCP connection with line-oriented echo checks. */
export class EchoClient {
  private buf = '';
  readonly closed: Promise<void>;
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (this.buf += d));
    socket.on('error', () => undefined);
    this.closed = new Promise((r) => socket.once('close', () => r()));
  }

  static connect(port: number): Promise<EchoClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => resolve(new EchoClient(s)));
      s.once('error', reject);
    });
  }

  /** Sends `text` and waits for it to come back. */
  async roundTrip(text: string, timeoutMs = 5000): Promise<void> {
    const want = `${text}\n`;
    this.buf = '';
    this.socket.write(want);
    await waitUntil(`echo of ${text}`, () => this.buf.includes(want), timeoutMs);
  }

  end(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}

export interface ExtraListeners {
  /** An HTTP listener (INBOUND, like Istio's virtualInbound) routing to the upstream app. */
  httpPort: number;
  appPort: number;
  /** A TCP proxy listener (INBOUND) to the echo server. */
  tcpPort?: number;
  echoPort?: number;
}

/** `ISTIO_BOOTSTRAP_OVERRIDE` content adding the listeners and their clusters (merged by Envoy). */
export function extraListenersOverride(x: ExtraListeners): string {
  const cluster = (name: string, port: number) => ({
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  });
  const listeners: unknown[] = [
    {
      name: 'inbound_app',
      traffic_direction: 'INBOUND',
      address: { socket_address: { address: '127.0.0.1', port_value: x.httpPort } },
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: 'inbound_app',
                route_config: { virtual_hosts: [{ name: 'app', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } }] }] },
                http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
              },
            },
          ],
        },
      ],
    },
  ];
  const clusters: unknown[] = [cluster('app', x.appPort)];
  if (x.tcpPort !== undefined && x.echoPort !== undefined) {
    listeners.push({
      name: 'inbound_tcp',
      traffic_direction: 'INBOUND',
      address: { socket_address: { address: '127.0.0.1', port_value: x.tcpPort } },
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.tcp_proxy',
              typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'inbound_tcp', cluster: 'echo' },
            },
          ],
        },
      ],
    });
    clusters.push(cluster('echo', x.echoPort));
  }
  return JSON.stringify({ static_resources: { listeners, clusters } });
}

/** One HTTP/1.1 request on its own connection; resolves with status, headers and body. */
export function httpGet(port: number, path: string, agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Admin `GET` over a fresh connection (answered by whichever Envoy owns the admin port). */
export async function adminGet(port: number, path: string): Promise<string> {
  const r = await httpGet(port, path);
  if (r.status !== 200) throw new Error(`admin ${path}: HTTP ${r.status}`);
  return r.body;
}

/** Admin calls the double recorded (`ENVOY_DOUBLE_ADMIN_LOG`). */
export function readAdminLog(text: string): Array<{ pid: number; method: string; path: string; at: string }> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { pid: number; method: string; path: string; at: string });
}
