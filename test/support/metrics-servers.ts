/**
 * Loopback HTTP servers for the metrics and status tests: stand-ins for Envoy's
 * `/stats/prometheus` and an application's `/metrics`, plus a client helper. Every server
 * tracks its sockets so `close()` never leaves a handle behind.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../../src/log.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = path.join(REPO, 'test', 'fixtures');
export const fixture = (rel: string): Buffer => fs.readFileSync(path.join(FIXTURES, rel));

export const ENVOY_FIXTURE = 'envoy/stats-prometheus.istio-proxy.datadog.txt';
export const OPENMETRICS_APP_FIXTURE = 'app/openmetrics.alltypes-5mfs.txt';
export const TEXT_APP_FIXTURE = 'app/prometheus-text.go-client.txt';
export const OPENMETRICS_CT = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
export const TEXT_CT = 'text/plain; version=0.0.4; charset=utf-8';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  remoteAddress: string | undefined;
}

export interface TestServer {
  readonly port: number;
  readonly host: string;
  readonly requests: RecordedRequest[];
  readonly server: http.Server;
  close(): Promise<void>;
}

export async function startServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  host = '127.0.0.1',
): Promise<TestServer> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, remoteAddress: req.socket.remoteAddress });
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    host,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Serves a fixed body with a content type. */
export function serveBody(body: Buffer | string, contentType = 'text/plain; version=0.0.4; charset=utf-8', status = 200) {
  return (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(status, { 'Content-Type': contentType });
    res.end(body);
  };
}

/** Streams `total` bytes of valid exposition lines, respecting backpressure; records bytes sent. */
export function streamLines(total: number, counter: { sent: number; closed: boolean }, prefix = 'app_big') {
  return (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.write(`# TYPE ${prefix} gauge\n`);
    const line = Buffer.from(`${prefix}{l="${'x'.repeat(60)}"} 1\n`);
    const block = Buffer.concat(Array.from({ length: 512 }, () => line));
    res.on('close', () => (counter.closed = true));
    const pump = () => {
      while (counter.sent < total) {
        if (res.destroyed) return;
        counter.sent += block.length;
        if (!res.write(block)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  };
}

export interface FetchResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  ms: number;
}

/** A plain HTTP request; gunzips when the response is gzip-encoded. */
export function fetch(
  port: number,
  urlPath: string,
  options: { method?: string; headers?: Record<string, string>; host?: string; localAddress?: string; body?: string } = {},
): Promise<FetchResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: options.host ?? '127.0.0.1',
        port,
        path: urlPath,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let body = Buffer.concat(chunks);
          if (res.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8'), ms: performance.now() - t0 });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A logger that drops everything (tests assert on behaviour, not log lines). */
export function quietLogger(): Logger {
  return createLogger({ outputLevel: 'none' });
}

/** Reads one sample value from an exposition, e.g. `istio_agent_scrape_failures_total{type="envoy"}`. */
export function sampleValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1).split(' ')[0]);
  }
  return undefined;
}
