/**
 * Starts a real StatusServer on a loopback port with test routes, a fresh agent registry and
 * the given metrics sources / app probers. `close()` stops it and everything it owns.
 */
import type { StatusRegistry } from '../../src/status/registry.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StatusServer, type StatusServerOptions } from '../../src/status/server.js';
import { AppProbers, type Prober } from '../../src/status/app-probe.js';
import { createAgentMetrics, type AgentMetrics } from '../../src/metrics/registry.js';
import type { AppScrapeTarget } from '../../src/metrics/annotations.js';
import { quietLogger } from './metrics-servers.js';

export interface StatusHarnessOptions {
  /** The status page's providers (`/`, `/status`); none: those paths are 404. */
  status?: StatusRegistry;
  envoyPort?: number;
  app?: AppScrapeTarget;
  appBodyLimitBytes?: number;
  /** Merged scrapes at once / waiting (METRICS_MERGE_CONCURRENCY / METRICS_MERGE_QUEUE). */
  mergeConcurrency?: number;
  mergeQueue?: number;
  metricsLocalhostOnly?: boolean;
  probers?: Map<string, Prober>;
  /** Probe destination (default 127.0.0.1). */
  probeDestination?: string;
  appProbers?: AppProbers;
  host?: string;
  port?: number;
  ready?: (req: IncomingMessage, res: ServerResponse) => void;
  defaultMetrics?: boolean;
}

export interface StatusHarness {
  server: StatusServer;
  metrics: AgentMetrics;
  port: number;
  calls: { quit: number; drain: number };
  close(): Promise<void>;
}

export async function startStatus(options: StatusHarnessOptions = {}): Promise<StatusHarness> {
  const metrics = createAgentMetrics({ defaultMetrics: options.defaultMetrics ?? false });
  const calls = { quit: 0, drain: 0 };
  const log = quietLogger();
  const appProbers =
    options.appProbers ??
    new AppProbers({ probers: options.probers ?? new Map(), destination: options.probeDestination ?? '127.0.0.1', ipv6: false, http2: true, log });
  const serverOptions: StatusServerOptions = {
    port: options.port ?? 0,
    ...(options.host ? { host: options.host } : {}),
    log,
    routes: {
      ready:
        options.ready ??
        ((_req, res) => {
          res.writeHead(200, { 'Content-Length': '0' });
          res.end();
        }),
      quit: () => void calls.quit++,
      drain: () => void calls.drain++,
    },
    metrics: {
      metrics,
      localhost: '127.0.0.1',
      ...(options.envoyPort !== undefined ? { envoyPort: options.envoyPort } : {}),
      ...(options.app ? { app: options.app } : {}),
      ...(options.appBodyLimitBytes !== undefined ? { appBodyLimitBytes: options.appBodyLimitBytes } : {}),
      ...(options.mergeConcurrency !== undefined ? { mergeConcurrency: options.mergeConcurrency } : {}),
      ...(options.mergeQueue !== undefined ? { mergeQueue: options.mergeQueue } : {}),
    },
    appProbers,
    metricsLocalhostOnly: options.metricsLocalhostOnly ?? false,
    ...(options.status ? { status: options.status } : {}),
    closeGraceMs: 200,
  };
  const server = await StatusServer.start(serverOptions);
  return { server, metrics, port: server.port, calls, close: () => server.close() };
}
