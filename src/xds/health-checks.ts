/**
 * The checks of ProxyConfig `readinessProbe` (`istio.networking.v1alpha3.ReadinessProbe`, SPEC §7.2):
 * `httpGet`, `tcpSocket`, `exec` and `grpc`, run by the shared probers of `src/probe/`. Each
 * resolves with undefined when the check passes, else with a one-line reason (the
 * `error_detail.message` of an unhealthy report). A check never rejects and never outlives its
 * timeout; sockets, channels and child processes are released.
 *
 * As in Istio, only httpGet applies the source rule (127.0.0.6 / ::6 when bindable), passes on
 * 2xx and 3xx without following redirects, and sends `User-Agent: istio-probe/1.0` unless the
 * probe sets one (grpc sends it too). tcpSocket and grpc connect from the kernel's choice of
 * source, as Istio's do.
 */
import net from 'node:net';
import { describeError } from '../errors.js';
import { ProbeNetwork } from '../probe/network.js';
import { probeHttp, type HttpProbeOutcome } from '../probe/http.js';
import { probeTcp, type ProbeOutcome } from '../probe/tcp.js';
import type { ExecProbeOutcome } from '../probe/exec.js';
import type { GrpcHealthOutcome } from '../probe/grpc-health.js';

export type HealthCheck =
  | { kind: 'httpGet'; scheme: 'http' | 'https'; host: string; port: number; path: string; headers: Array<{ name: string; value: string }> }
  | { kind: 'tcpSocket'; host: string; port: number }
  | { kind: 'exec'; command: string[] }
  | { kind: 'grpc'; host: string; port: number; service: string };

/** Istio's User-Agent for these checks (httpGet: unless the probe sets one). */
export const ISTIO_PROBE_USER_AGENT = 'istio-probe/1.0';

/** Loaded on the first check of their kind: execa, grpc-js and protobufjs cost nothing until then. */
let execProbe: Promise<typeof import('../probe/exec.js')> | undefined;
const loadExecProbe = () => (execProbe ??= import('../probe/exec.js'));
let grpcHealth: Promise<typeof import('../probe/grpc-health.js')> | undefined;
const loadGrpcHealth = () => (grpcHealth ??= import('../probe/grpc-health.js'));

/**
 * Runs one check. `network` carries the httpGet source rule (and its bindability cache); by
 * default a fresh one for an IPv4 pod.
 */
export async function runCheck(check: HealthCheck, timeoutMs: number, network?: ProbeNetwork): Promise<string | undefined> {
  switch (check.kind) {
    case 'httpGet':
      return httpCheck(check, timeoutMs, network ?? ProbeNetwork.forPod(false));
    case 'tcpSocket':
      return tcpMessage(await probeTcp({ host: check.host, port: check.port, timeoutMs }), `${hostForUrl(check.host)}:${check.port}`, timeoutMs);
    case 'exec': {
      const { probeExec } = await loadExecProbe();
      return execMessage(await probeExec(check.command, timeoutMs));
    }
    case 'grpc': {
      const { probeGrpcHealth } = await loadGrpcHealth();
      const outcome = await probeGrpcHealth({ host: check.host, port: check.port, service: check.service, timeoutMs, userAgent: ISTIO_PROBE_USER_AGENT });
      return grpcMessage(outcome, `${hostForUrl(check.host)}:${check.port}`, timeoutMs);
    }
  }
}

function hostForUrl(host: string): string {
  return net.isIP(host) === 6 ? `[${host}]` : host;
}

async function httpCheck(c: Extract<HealthCheck, { kind: 'httpGet' }>, timeoutMs: number, network: ProbeNetwork): Promise<string | undefined> {
  const url = `${c.scheme}://${hostForUrl(c.host)}:${c.port}${c.path.startsWith('/') ? c.path : `/${c.path}`}`;
  const headers: Record<string, string> = { 'user-agent': ISTIO_PROBE_USER_AGENT };
  for (const h of c.headers) headers[h.name.toLowerCase()] = h.value;
  const { host, connection: _connection, ...rest } = headers;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    return `HTTP probe of ${url} failed: ${describeError(err)}`;
  }
  const outcome = await probeHttp({
    url: parsed,
    ...(host !== undefined ? { host } : {}),
    headers: rest,
    timeoutMs,
    http2: false,
    redirects: 'none',
    maxBodyBytes: 0,
    network,
  });
  return httpMessage(outcome, url, timeoutMs);
}

/** PURE: 2xx and 3xx pass (redirects are not followed), as the kubelet and Istio's prober do. */
export function httpMessage(o: HttpProbeOutcome, url: string, timeoutMs: number): string | undefined {
  if (!o.ok) return o.timedOut ? `HTTP probe of ${url} timed out after ${timeoutMs}ms` : `HTTP probe of ${url} failed: ${describeError(o.error)}`;
  return o.status >= 200 && o.status < 400 ? undefined : `HTTP probe of ${url} failed with status code ${o.status}`;
}

/** PURE: the reason of a failed tcpSocket check; `target` is `host:port`. */
export function tcpMessage(o: ProbeOutcome, target: string, timeoutMs: number): string | undefined {
  if (o.ok) return undefined;
  return o.timedOut ? `TCP probe of ${target} timed out after ${timeoutMs}ms` : `TCP probe of ${target} failed: ${describeError(o.error)}`;
}

/** PURE: the reason of a failed exec check (command, exit status or signal, first output line). */
export function execMessage(o: ExecProbeOutcome): string | undefined {
  if (o.ok) return undefined;
  const cmd = o.command.join(' ');
  switch (o.kind) {
    case 'timeout':
      return `exec probe ${cmd} timed out after ${o.timeoutMs}ms`;
    case 'spawn':
      return o.command.length === 0 ? describeError(o.error) : `exec probe ${cmd} failed: ${describeError(o.error)}`;
    case 'exit': {
      const first = o.output.trim().split('\n')[0] ?? '';
      return `exec probe ${cmd} failed with ${o.signal ? `signal ${o.signal}` : `exit status ${o.exitCode}`}${first ? `: ${first}` : ''}`;
    }
  }
}

/** PURE: the reason of a failed grpc check. */
export function grpcMessage(o: GrpcHealthOutcome, target: string, timeoutMs: number): string | undefined {
  if (o.ok) return undefined;
  switch (o.kind) {
    case 'status':
      return `gRPC probe of ${target}: status ${o.statusName}`;
    case 'rpc':
      return `gRPC probe of ${target} failed: ${o.code === 'DEADLINE_EXCEEDED' ? `timed out after ${timeoutMs}ms` : o.details || o.message}`;
    case 'resolve':
      return `gRPC probe of ${target} failed: ${describeError(o.error)}`;
  }
}
