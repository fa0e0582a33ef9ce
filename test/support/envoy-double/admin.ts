/**
 * The double's admin API, routed as Envoy's AdminImpl does: the path (before `?`) must equal a
 * handler's prefix; mutating handlers answer 405 `Method GET not allowed, POST required.` to
 * any other method; an unknown path is 404 `invalid path. admin commands are: …`.
 * Query strings are parsed raw (`?usedonly&filter=^(a\.b|c)`) or percent-encoded alike.
 *
 * Faults applied to every admin request: `adminDelayMs` (answer late) and `adminHang` (never
 * answer; the connection stays open until the client gives up or the double exits).
 * Admin connections are counted (`listener.admin.downstream_cx_active`, `http.admin.*`).
 */
import fs from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';
import { commandLineOptionsJson, ENVOY_BUILD_VERSION, ENVOY_REVISION, ENVOY_VERSION } from './cli.js';
import { addressString } from './bootstrap.js';
import { re2ToJs } from './regex.js';
import type { RenderQuery } from './stats.js';
import type { EnvoyDouble } from './server.js';

type Handler = (d: EnvoyDouble, q: Map<string, string>, req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

interface Route {
  help: string;
  mutates: boolean;
  handler: Handler;
}

const TEXT = 'text/plain; charset=UTF-8';
const JSON_TYPE = 'application/json';

function send(res: http.ServerResponse, status: number, body: string, type = TEXT): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-cache, max-age=0',
    'x-content-type-options': 'nosniff',
    server: 'envoy',
    'content-length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** Envoy's query parsing: `k`, `k=v`, first value wins; `%XX` decoded, invalid escapes kept. */
export function parseQuery(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === '') return out;
  const decode = (s: string): string => s.replace(/(?:%[0-9a-fA-F]{2})+/g, (seq) => {
    try {
      return decodeURIComponent(seq);
    } catch {
      return seq;
    }
  });
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decode(eq >= 0 ? part.slice(0, eq) : part);
    const v = decode(eq >= 0 ? part.slice(eq + 1) : '');
    if (!out.has(k)) out.set(k, v);
  }
  return out;
}

/** `usedonly` / `filter` → a render query, or an error body (400). */
function statsQuery(q: Map<string, string>): RenderQuery | string {
  const rq: RenderQuery = { usedOnly: q.has('usedonly') };
  const filter = q.get('filter');
  if (filter !== undefined && filter !== '') {
    try {
      rq.filter = re2ToJs(filter);
    } catch {
      return 'Invalid re2 regex';
    }
  }
  return rq;
}

const ROUTES: Record<string, Route> = {
  '/': {
    help: 'Admin home page',
    mutates: false,
    handler: (_d, _q, _req, res) => send(res, 200, '<html><head><title>Envoy Admin</title></head><body><a href="/help">help</a></body></html>\n', 'text/html; charset=UTF-8'),
  },
  '/help': { help: 'print out list of admin commands', mutates: false, handler: (_d, _q, _req, res) => send(res, 200, helpText()) },
  '/ready': {
    help: 'print server state, return 200 if LIVE, otherwise return 503',
    mutates: false,
    handler: (d, _q, _req, res) => {
      const state = d.state();
      send(res, state === 'LIVE' ? 200 : 503, `${state}\n`);
    },
  },
  '/server_info': { help: 'print server version/status information', mutates: false, handler: (d, _q, _req, res) => send(res, 200, JSON.stringify(serverInfo(d), null, 2), JSON_TYPE) },
  '/stats': {
    help: 'print server stats',
    mutates: false,
    handler: (d, q, _req, res) => {
      const rq = statsQuery(q);
      if (typeof rq === 'string') return send(res, 400, rq);
      const format = q.get('format') ?? 'text';
      if (format === 'json') return send(res, 200, d.stats.renderJson(rq), JSON_TYPE);
      if (format === 'prometheus') return send(res, 200, d.stats.renderPrometheus(rq));
      if (format !== 'text') return send(res, 400, 'usage: /stats?format=(html|active-html|json|prometheus|text)\n\n');
      send(res, 200, d.stats.renderText(rq));
    },
  },
  '/stats/prometheus': { help: 'print server stats in prometheus format', mutates: false, handler: (d, q, _req, res) => prometheus(d, q, res) },
  '/config_dump': { help: 'dump current Envoy configs (experimental)', mutates: false, handler: (d, _q, _req, res) => send(res, 200, JSON.stringify(configDump(d), null, 2), JSON_TYPE) },
  '/listeners': {
    help: 'print listener info',
    mutates: false,
    handler: (d, q, _req, res) => {
      if (q.get('format') === 'json') {
        const statuses = d.listeners.map((l) => ({
          name: l.spec.name,
          local_address: l.bound?.kind === 'pipe' ? { pipe: { path: l.bound.path } } : { socket_address: { address: l.bound?.host, port_value: l.bound?.port } },
        }));
        return send(res, 200, JSON.stringify({ listener_statuses: statuses }, null, 2), JSON_TYPE);
      }
      send(res, 200, d.listeners.map((l) => `${l.spec.name}::${l.bound ? addressString(l.bound) : ''}\n`).join(''));
    },
  },
  '/clusters': {
    help: 'upstream cluster status',
    mutates: false,
    handler: (d, _q, _req, res) => {
      const lines: string[] = [];
      for (const c of d.bootstrap.clusters.values()) {
        lines.push(`${c.name}::observability_name::${c.statName}`, `${c.name}::added_via_api::false`);
        for (const ep of c.endpoints) lines.push(`${c.name}::${addressString(ep)}::health_flags::healthy`);
      }
      send(res, 200, lines.map((l) => `${l}\n`).join(''));
    },
  },
  '/certs': { help: 'print certs on machine', mutates: false, handler: (_d, _q, _req, res) => send(res, 200, JSON.stringify({ certificates: [] }, null, 2), JSON_TYPE) },
  '/memory': {
    help: 'print current allocation/heap usage',
    mutates: false,
    handler: (_d, _q, _req, res) => {
      const m = process.memoryUsage();
      send(res, 200, JSON.stringify({ allocated: String(m.heapUsed), heap_size: String(m.heapTotal), pageheap_unmapped: '0', pageheap_free: '0', total_thread_cache: '0', total_physical_bytes: String(m.rss) }, null, 2), JSON_TYPE);
    },
  },
  '/runtime': { help: 'print runtime values', mutates: false, handler: (_d, _q, _req, res) => send(res, 200, JSON.stringify({ layers: ['global config', 'admin'], entries: {} }, null, 2), JSON_TYPE) },
  '/hot_restart_version': {
    help: 'print the hot restart compatibility version',
    mutates: false,
    handler: (d, _q, _req, res) => send(res, 200, d.options.disableHotRestart ? 'disabled' : '11.104'),
  },
  '/init_dump': {
    help: 'dump current Envoy init manager information (experimental)',
    mutates: false,
    handler: (_d, _q, _req, res) => send(res, 200, JSON.stringify({ unready_targets_dumps: [] }, null, 2), JSON_TYPE),
  },
  '/healthcheck/fail': {
    help: 'cause the server to fail health checks',
    mutates: true,
    handler: (d, _q, _req, res) => {
      d.failHealthcheck(true);
      send(res, 200, 'OK\n');
    },
  },
  '/healthcheck/ok': {
    help: 'cause the server to pass health checks',
    mutates: true,
    handler: (d, _q, _req, res) => {
      d.failHealthcheck(false);
      send(res, 200, 'OK\n');
    },
  },
  '/quitquitquit': {
    help: 'exit the server',
    mutates: true,
    handler: (d, _q, _req, res) => {
      res.once('finish', () => d.shutdown(0));
      send(res, 200, 'OK\n');
    },
  },
  '/drain_listeners': {
    help: 'drain listeners',
    mutates: true,
    handler: (d, q, _req, res) => {
      const r = d.drainListeners({ inboundOnly: q.has('inboundonly'), graceful: q.has('graceful'), skipExit: q.has('skip_exit') });
      send(res, r.status, r.body);
    },
  },
  '/reset_counters': {
    help: 'reset all counters to zero',
    mutates: true,
    handler: (d, _q, _req, res) => {
      d.stats.resetCounters();
      send(res, 200, 'OK\n');
    },
  },
  '/logging': { help: 'query/change logging levels', mutates: true, handler: (_d, _q, _req, res) => send(res, 200, 'active loggers:\n') },
  '/runtime_modify': { help: 'Adds or modifies runtime values as passed in query parameters.', mutates: true, handler: (_d, _q, _req, res) => send(res, 200, 'OK\n') },
  '/reopen_logs': { help: 'reopen access logs', mutates: true, handler: (_d, _q, _req, res) => send(res, 200, 'OK\n') },
  '/cpuprofiler': { help: 'enable/disable the CPU profiler', mutates: true, handler: (_d, _q, _req, res) => send(res, 200, 'OK\n') },
  '/heapprofiler': { help: 'enable/disable the heap profiler', mutates: true, handler: (_d, _q, _req, res) => send(res, 200, 'OK\n') },
};

function helpText(): string {
  const lines = Object.keys(ROUTES)
    .sort()
    .map((p) => `  ${p}${ROUTES[p]?.mutates ? ' (POST)' : ''}: ${ROUTES[p]?.help ?? ''}\n`);
  return `admin commands are:\n${lines.join('')}`;
}

function serverInfo(d: EnvoyDouble): Record<string, unknown> {
  const [major, minor, patch] = ENVOY_VERSION.split('.').map(Number);
  const uptime = `${d.uptimeSeconds}s`;
  return {
    version: ENVOY_BUILD_VERSION,
    state: d.state(),
    hot_restart_version: d.options.disableHotRestart ? 'disabled' : '11.104',
    command_line_options: commandLineOptionsJson(d.options),
    node: {
      ...d.bootstrap.node,
      user_agent_name: 'envoy',
      user_agent_build_version: {
        version: { major_number: major, minor_number: minor, patch },
        metadata: { 'revision.sha': ENVOY_REVISION, 'revision.status': 'Clean', 'build.type': 'RELEASE', 'ssl.version': 'BoringSSL' },
      },
      extensions: [],
      client_features: ['envoy.lb.does_not_support_overprovisioning', 'envoy.lrs.supports_send_all_clusters'],
    },
    uptime_current_epoch: uptime,
    uptime_all_epochs: uptime,
  };
}

function configDump(d: EnvoyDouble): Record<string, unknown> {
  const at = new Date(Date.now() - d.uptimeSeconds * 1000).toISOString();
  const sr = (d.bootstrap.raw.static_resources ?? {}) as { clusters?: unknown[]; listeners?: unknown[] };
  return {
    configs: [
      { '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap: d.bootstrap.raw, last_updated: at },
      {
        '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
        static_clusters: (sr.clusters ?? []).map((c) => ({ cluster: { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', ...(c as object) }, last_updated: at })),
      },
      {
        '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
        static_listeners: (sr.listeners ?? []).map((l) => ({ listener: { '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener', ...(l as object) }, last_updated: at })),
      },
    ],
  };
}

/** `/stats/prometheus`: the fixture file, else a streamed body of ~promBytes, else own stats. */
async function prometheus(d: EnvoyDouble, q: Map<string, string>, res: http.ServerResponse): Promise<void> {
  const rq = statsQuery(q);
  if (typeof rq === 'string') return send(res, 400, rq);
  const k = d.knobs;
  if (k.promFixture !== '') {
    let text: string;
    try {
      text = fs.readFileSync(k.promFixture, 'utf8');
    } catch (err) {
      return send(res, 500, `envoy double: cannot read the prometheus fixture ${k.promFixture}: ${(err as Error).message}\n`);
    }
    return send(res, 200, text);
  }
  const own = d.stats.renderPrometheus(rq);
  if (k.promBytes <= 0) return send(res, 200, own);
  // A valid exposition of about promBytes bytes, streamed in chunks with backpressure.
  res.writeHead(200, { 'content-type': TEXT, server: 'envoy', 'cache-control': 'no-cache, max-age=0' });
  let written = 0;
  const write = async (chunk: string): Promise<boolean> => {
    written += Buffer.byteLength(chunk);
    if (res.destroyed) return false;
    if (!res.write(chunk)) {
      await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
    return !res.destroyed;
  };
  if (!(await write(own))) return;
  if (!(await write('# TYPE envoy_double_padding counter\n'))) return;
  let i = 0;
  while (written < k.promBytes) {
    let chunk = '';
    while (chunk.length < 65536 && written + chunk.length < k.promBytes) {
      chunk += `envoy_double_padding{envoy_double_series="${i++}"} 0\n`;
    }
    if (!(await write(chunk))) return;
  }
  res.end();
}

/** Creates the admin HTTP server (not yet listening). */
export function createAdminServer(d: EnvoyDouble): http.Server {
  const s = d.stats;
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
    d.recordAdminCall(req.method ?? '', req.url ?? '');
    s.counter('http.admin.downstream_rq_total').inc();
    s.gauge('http.admin.downstream_rq_active').inc();
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    res.once('close', () => {
      s.gauge('http.admin.downstream_rq_active').dec();
      s.counter(`http.admin.downstream_rq_${Math.floor(res.statusCode / 100)}xx`).inc();
    });
    req.resume();
    const k = d.knobs;
    if (k.adminHang) return;
    const run = (): void => {
      void handle(d, req, res).catch((err: unknown) => {
        d.log.error('admin', `envoy double: admin handler failed: ${(err as Error).stack ?? String(err)}`);
        send(res, 500, 'internal error\n');
      });
    };
    if (k.adminDelayMs > 0) setTimeout(run, k.adminDelayMs);
    else run();
  });
  server.keepAliveTimeout = 0;
  server.on('connection', (socket) => {
    socket.on('error', () => undefined);
    d.adminSockets.add(socket);
    s.gauge('listener.admin.downstream_cx_active').inc();
    s.counter('listener.admin.downstream_cx_total').inc();
    s.gauge('http.admin.downstream_cx_active').inc();
    s.counter('http.admin.downstream_cx_total').inc();
    socket.once('close', () => {
      d.adminSockets.delete(socket);
      s.gauge('listener.admin.downstream_cx_active').dec();
      s.gauge('http.admin.downstream_cx_active').dec();
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}

async function handle(d: EnvoyDouble, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const qi = url.indexOf('?');
  const pathOnly = qi >= 0 ? url.slice(0, qi) : url;
  const route = ROUTES[pathOnly];
  if (!route) return send(res, 404, `invalid path. ${helpText()}`);
  if (route.mutates && req.method !== 'POST') {
    d.log.error('admin', `admin path "${pathOnly}" mutates state, method=${req.method} rather than POST`, 'source/server/admin/admin.cc:340');
    return send(res, 405, `Method ${req.method} not allowed, POST required.`);
  }
  await route.handler(d, parseQuery(qi >= 0 ? url.slice(qi + 1) : ''), req, res);
}
