/**
 * The checks of ProxyConfig `readinessProbe` (`istio.networking.v1alpha3.ReadinessProbe`, SPEC §7.2):
 * `httpGet`, `tcpSocket`, `exec` and `grpc`. Each resolves with undefined when the check passes,
 * else with a one-line reason (the `error_detail.message` of an unhealthy report). A check never
 * rejects and never outlives its timeout; sockets, channels and child processes are released.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { describeError } from '../errors.js';

export type HealthCheck =
  | { kind: 'httpGet'; scheme: 'http' | 'https'; host: string; port: number; path: string; headers: Array<{ name: string; value: string }> }
  | { kind: 'tcpSocket'; host: string; port: number }
  | { kind: 'exec'; command: string[] }
  | { kind: 'grpc'; host: string; port: number; service: string };

export function runCheck(check: HealthCheck, timeoutMs: number): Promise<string | undefined> {
  switch (check.kind) {
    case 'httpGet':
      return httpCheck(check, timeoutMs);
    case 'tcpSocket':
      return tcpCheck(check.host, check.port, timeoutMs);
    case 'exec':
      return execCheck(check.command, timeoutMs);
    case 'grpc':
      return grpcCheck(check, timeoutMs);
  }
}

function hostForUrl(host: string): string {
  return net.isIP(host) === 6 ? `[${host}]` : host;
}

/** 2xx and 3xx pass (redirects are not followed), as the kubelet and Istio's prober do. */
function httpCheck(c: Extract<HealthCheck, { kind: 'httpGet' }>, timeoutMs: number): Promise<string | undefined> {
  const url = `${c.scheme}://${hostForUrl(c.host)}:${c.port}${c.path.startsWith('/') ? c.path : `/${c.path}`}`;
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': 'istio-probe/1.0', connection: 'close' };
    for (const h of c.headers) headers[h.name.toLowerCase()] = h.value;
    const mod = c.scheme === 'https' ? https : http;
    let settled = false;
    const finish = (err: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(err);
    };
    const req = mod.request(url, { method: 'GET', headers, agent: false, ...(c.scheme === 'https' ? { rejectUnauthorized: false } : {}) }, (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      finish(code >= 200 && code < 400 ? undefined : `HTTP probe of ${url} failed with status code ${code}`);
    });
    const timer = setTimeout(() => finish(`HTTP probe of ${url} timed out after ${timeoutMs}ms`), timeoutMs);
    req.on('error', (err) => finish(`HTTP probe of ${url} failed: ${describeError(err)}`));
    req.end();
  });
}

function tcpCheck(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (err: string | undefined): void => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => finish(`TCP probe of ${hostForUrl(host)}:${port} timed out after ${timeoutMs}ms`), timeoutMs);
    socket.once('connect', () => finish(undefined));
    socket.once('error', (err) => finish(`TCP probe of ${hostForUrl(host)}:${port} failed: ${describeError(err)}`));
  });
}

/** Exit status 0 passes; the process group is killed at the timeout. */
function execCheck(command: string[], timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const [file, ...args] = command;
    if (file === undefined) return resolve('exec probe has no command');
    let output = '';
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const collect = (d: Buffer): void => {
      if (output.length < 1024) output += d.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let settled = false;
    const finish = (err: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(err);
    };
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      finish(`exec probe ${command.join(' ')} timed out after ${timeoutMs}ms`);
    }, timeoutMs);
    child.on('error', (err) => finish(`exec probe ${command.join(' ')} failed: ${describeError(err)}`));
    child.on('close', (code, signal) => {
      if (code === 0) finish(undefined);
      else finish(`exec probe ${command.join(' ')} failed with ${signal ? `signal ${signal}` : `exit status ${code}`}${output.trim() ? `: ${output.trim().split('\n')[0]}` : ''}`);
    });
  });
}

const healthRoot = protobuf.Root.fromJSON({
  nested: {
    HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
    HealthCheckResponse: { fields: { status: { type: 'int32', id: 1 } } },
  },
});
const HealthCheckRequest = healthRoot.lookupType('HealthCheckRequest');
const HealthCheckResponse = healthRoot.lookupType('HealthCheckResponse');
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** `grpc.health.v1.Health/Check`, plaintext: SERVING passes. */
function grpcCheck(c: Extract<HealthCheck, { kind: 'grpc' }>, timeoutMs: number): Promise<string | undefined> {
  const target = `${hostForUrl(c.host)}:${c.port}`;
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0, 'grpc.service_config_disable_resolution': 1 });
  return new Promise<string | undefined>((resolve) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (m: { service: string }) => Buffer.from(HealthCheckRequest.encode(HealthCheckRequest.create(m)).finish()),
      (b: Buffer) => HealthCheckResponse.toObject(HealthCheckResponse.decode(b), { defaults: true }) as { status: number },
      { service: c.service },
      new grpc.Metadata({ waitForReady: true }),
      { deadline: Date.now() + timeoutMs },
      (err, value) => {
        if (err) resolve(`gRPC probe of ${target} failed: ${err.code === grpc.status.DEADLINE_EXCEEDED ? `timed out after ${timeoutMs}ms` : err.details || err.message}`);
        else if (value?.status === 1) resolve(undefined);
        else resolve(`gRPC probe of ${target}: status ${SERVING_STATUS[value?.status ?? 0] ?? value?.status}`);
      },
    );
  }).finally(() => client.close());
}
