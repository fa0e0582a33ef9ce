/**
 * httpGet app probe (SPEC §6.3): the kubelet's probe, run by the shared HTTP prober
 * (`src/probe/http.ts`) with the app-probe rules:
 * - `GET <scheme>://<destination>:<port><path>`; the destination is fixed by the config;
 * - all incoming headers are copied (minus hop-by-hop ones); Host is the incoming Host with
 *   the status port replaced by the app port;
 * - redirects are followed only to the same hostname (the 10th is an error, 500); a redirect
 *   elsewhere, or any other 3xx, is answered 200 with no body;
 * - otherwise the app's status and at most 10 KiB of its body (none of its headers);
 * - a transport error or the timeout (covering every hop and the body) → 500, empty body.
 */
import type http from 'node:http';
import net from 'node:net';
import { describeError } from '../errors.js';
import type { HttpGetProber } from './app-probe.js';
import type { ProbeNetwork } from '../probe/network.js';
import { probeHttp } from '../probe/http.js';

export { MAX_PROBE_REQUESTS } from '../probe/http.js';
export const MAX_PROBE_BODY_BYTES = 10 * 1024;

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
  'content-length',
  'expect',
  'http2-settings',
]);

export interface HttpProbeOptions {
  prober: HttpGetProber;
  /** The pod IP or `localhost`. */
  destination: string;
  incoming: http.IncomingMessage;
  statusPort: number;
  http2: boolean;
  net: ProbeNetwork;
}

export interface HttpProbeResult {
  status: number;
  body: Buffer;
  /** Set when the probe failed in transport (status 500). */
  error?: string;
}

/** SPEC §6.3: the incoming Host, with the status port replaced by the app port. */
export function rewriteHost(incomingHost: string | undefined, statusPort: number, appPort: number): string | undefined {
  if (!incomingHost) return undefined;
  const m = /^(\[[^\]]*\]|[^:[\]]*):(\d+)$/.exec(incomingHost);
  if (m && Number(m[2]) === statusPort) return `${m[1]}:${appPort}`;
  return incomingHost;
}

export function probeUrl(prober: HttpGetProber, destination: string): URL {
  const host = net.isIP(destination) === 6 ? `[${destination}]` : destination;
  return new URL(`${prober.scheme}://${host}:${prober.port}${prober.path}`);
}

export async function probeHttpGet(options: HttpProbeOptions): Promise<HttpProbeResult> {
  const { prober } = options;
  let url: URL;
  try {
    url = probeUrl(prober, options.destination);
  } catch (err) {
    return { status: 500, body: Buffer.alloc(0), error: describeError(err) };
  }
  const host = rewriteHost(options.incoming.headers.host, options.statusPort, prober.port);
  const outcome = await probeHttp({
    url,
    ...(host !== undefined ? { host } : {}),
    headers: copyHeaders(options.incoming),
    timeoutMs: prober.timeoutMs,
    http2: options.http2,
    redirects: 'same-host',
    maxBodyBytes: MAX_PROBE_BODY_BYTES,
    network: options.net,
  });
  if (!outcome.ok) return { status: 500, body: Buffer.alloc(0), error: `${outcome.timedOut ? 'probe ' : ''}${describeError(outcome.error)}` };
  if (outcome.status >= 300 && outcome.status < 400) return { status: 200, body: Buffer.alloc(0) };
  return { status: outcome.status, body: outcome.body };
}

function copyHeaders(incoming: http.IncomingMessage): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(incoming.headersDistinct)) {
    if (HOP_BY_HOP.has(name) || values === undefined) continue;
    out[name] = values;
  }
  return out;
}
