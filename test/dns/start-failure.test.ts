/**
 * The DNS proxy's start-up errors through the real CLI: a port in use, an unreadable
 * resolv.conf and a malformed DNS_PROXY_ADDR each end the agent (exit 255) with a message
 * naming the input, before Envoy is started, and leave no process or socket behind.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { disposeTrackedAgents, startTrackedAgent } from '../support/agent-process.js';
import { freePort } from '../support/ports.js';
import { processesWithCwd } from '../support/proc.js';

afterEach(disposeTrackedAgents);

const base = (env: Record<string, string>) => ({
  standalone: false,
  env: { ISTIO_META_DNS_CAPTURE: 'true', JWT_POLICY: 'third-party-jwt', ...env },
  proxyConfig: { discoveryAddress: '127.0.0.1:1', controlPlaneAuthPolicy: 'NONE' },
});

async function failed(env: Record<string, string>, expected: string): Promise<void> {
  const a = await startTrackedAgent(base(env));
  expect(await a.waitExit()).toEqual({ code: 255, signal: null });
  expect(a.stderr).toContain(expected);
  expect(a.records().length).toBe(0); // Envoy never started
  expect(processesWithCwd(a.cwd)).toEqual([]);
  expect(fs.existsSync(path.join(a.cwd, 'etc/istio/proxy/XDS'))).toBe(false);
}

describe('DNS proxy start-up errors', () => {
  test('a port in use names the address', async () => {
    const port = await freePort();
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(port, '127.0.0.1', () => r()));
    const dir = fs.mkdtempSync('/tmp/dns-sf-');
    try {
      const resolv = path.join(dir, 'resolv.conf');
      fs.writeFileSync(resolv, 'nameserver 127.0.0.1\n');
      await failed({ DNS_PROXY_ADDR: `localhost:${port}`, DNS_RESOLV_CONF: resolv }, `DNS proxy: cannot listen on udp 127.0.0.1:${port}: the address is already in use`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  test('an unreadable resolv.conf names the file and the variable', async () => {
    await failed({ DNS_RESOLV_CONF: '/nonexistent/resolv.conf' }, 'DNS proxy: cannot read resolv.conf /nonexistent/resolv.conf (DNS_RESOLV_CONF)');
  });

  test('a malformed DNS_PROXY_ADDR names the expected form', async () => {
    await failed({ DNS_PROXY_ADDR: 'no-port-here' }, 'DNS_PROXY_ADDR: expected host:port like "localhost:15053", got "no-port-here"');
  });
});
