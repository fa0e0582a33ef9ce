/**
 * `--run-validation`: proves that this uid's traffic is really captured, without
 * SO_ORIGINAL_DST (Node has no such socket option).
 *
 * Istio's protocol: listeners on the loopback address (127.0.0.1, or ::1 for an IPv6 pod) at
 * the capture ports (-p, -z); a connection from the loopback address to 127.0.0.6 (::6) at
 * the probe port must reach one of them. The proof here is which listener the connection
 * arrived on: each attempt sends a fresh random token, and only a capture listener that
 * reads that very token back counts. A listener of ours at the original destination
 * (127.0.0.6:<probe port>) catches connections that were not redirected, so the failure
 * can say so. Attempts repeat until one succeeds or the probe timeout ends.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export interface ValidationPlan {
  /** Where capture listeners bind and where the client connects from. */
  listenHost: string;
  /** Destination of the probe connection (traffic there must be redirected). */
  probeHost: string;
  probePort: number;
  /** Ports the capture may redirect to (Envoy outbound, inbound capture). */
  capturePorts: number[];
  timeoutMs: number;
  /** Pause between attempts. */
  retryMs?: number;
}

export type ValidationResult = { ok: true; port: number; attempts: number } | { ok: false; reason: string; attempts: number };

export function validationPlan(opts: { ipv6: boolean; proxyPort: string; inboundCapturePort: string; probePort: number; timeoutMs: number }): ValidationPlan {
  return {
    listenHost: opts.ipv6 ? '::1' : '127.0.0.1',
    probeHost: opts.ipv6 ? '::6' : '127.0.0.6',
    probePort: opts.probePort,
    capturePorts: [...new Set([Number(opts.proxyPort), Number(opts.inboundCapturePort)])],
    timeoutMs: opts.timeoutMs,
  };
}

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** Serves `onToken(line)`'s reply to the first line of each connection. */
function listen(host: string, port: number, onToken: (token: string) => string): Promise<{ server: net.Server } | { error: string }> {
  return new Promise((resolve) => {
    const server = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.setEncoding('utf8');
      let buf = '';
      sock.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl >= 0) sock.end(`${onToken(buf.slice(0, nl))}\n`);
        else if (buf.length > 256) sock.destroy();
      });
    });
    server.once('error', (e) => resolve({ error: e.message }));
    server.listen({ host, port }, () => resolve({ server }));
  });
}

type Attempt = { kind: 'captured'; port: number } | { kind: 'direct' } | { kind: 'foreign'; reply: string } | { kind: 'error'; code: string };

function attempt(plan: ValidationPlan, token: string, timeoutMs: number, seen: Map<string, Attempt>): Promise<Attempt> {
  return new Promise((resolve) => {
    let reply = '';
    let settled = false;
    const done = (a: Attempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(seen.get(token) ?? a);
    };
    const sock = net.connect({ host: plan.probeHost, port: plan.probePort, localAddress: plan.listenHost });
    const timer = setTimeout(() => done({ kind: 'error', code: 'ETIMEDOUT' }), Math.max(1, timeoutMs));
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${token}\n`));
    sock.on('data', (d: string) => (reply += d));
    sock.on('end', () => done({ kind: 'foreign', reply: reply.trim() }));
    sock.on('error', (e: NodeJS.ErrnoException) => done({ kind: 'error', code: e.code ?? e.message }));
  });
}

function describeFailure(plan: ValidationPlan, a: Attempt | undefined): string {
  const target = hostPort(plan.probeHost, plan.probePort);
  const capture = plan.capturePorts.map((p) => hostPort(plan.listenHost, p)).join(' or ');
  const prefix = `a connection from uid ${process.getuid?.() ?? '?'} to ${target} was not redirected to ${capture}`;
  if (!a) return `${prefix}: no attempt completed`;
  switch (a.kind) {
    case 'direct':
      return `${prefix}: it reached ${target} itself`;
    case 'foreign':
      return `${prefix}: it was answered by a listener that is not the validation's (reply ${JSON.stringify(a.reply.slice(0, 80))})`;
    case 'error':
      return `${prefix}: ${a.code === 'ECONNREFUSED' ? 'connection refused (nothing redirected it)' : a.code}`;
    default:
      return prefix;
  }
}

/** Runs the probe until a capture listener reads back a token, or the timeout ends. */
export async function validateCapture(plan: ValidationPlan): Promise<ValidationResult> {
  const deadline = Date.now() + plan.timeoutMs;
  const seen = new Map<string, Attempt>();
  const servers: net.Server[] = [];
  const bindErrors: string[] = [];
  try {
    for (const port of plan.capturePorts) {
      const s = await listen(plan.listenHost, port, (token) => {
        if (!seen.has(token)) seen.set(token, { kind: 'captured', port });
        return `captured ${port}`;
      });
      if ('error' in s) bindErrors.push(`${hostPort(plan.listenHost, port)}: ${s.error}`);
      else servers.push(s.server);
    }
    if (servers.length === 0) return { ok: false, reason: `no capture listener could be opened (${bindErrors.join('; ')})`, attempts: 0 };
    // Catches probes that arrive unredirected; optional (the address may not exist, e.g. ::6).
    const direct = await listen(plan.probeHost, plan.probePort, (token) => {
      if (!seen.has(token)) seen.set(token, { kind: 'direct' });
      return 'not redirected';
    });
    if ('server' in direct) servers.push(direct.server);

    let last: Attempt | undefined;
    let attempts = 0;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      attempts++;
      const token = `istio-validation-${randomBytes(16).toString('hex')}`;
      const outcome = await attempt(plan, token, remaining, seen);
      if (outcome.kind === 'captured') return { ok: true, port: outcome.port, attempts };
      // An attempt cut short by the deadline says less than an earlier one that completed.
      if (!(last && outcome.kind === 'error' && outcome.code === 'ETIMEDOUT')) last = outcome;
      const pause = Math.min(plan.retryMs ?? 250, deadline - Date.now());
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    }
    return { ok: false, reason: `${describeFailure(plan, last)} (${attempts} attempt${attempts === 1 ? '' : 's'} in ${plan.timeoutMs} ms)`, attempts };
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r(undefined)))));
  }
}
