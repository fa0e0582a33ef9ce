/**
 * The status page in a real headless browser (issue 17): Debian's chromium driven by
 * puppeteer-core (nothing downloaded), the real CLI with the Envoy double. The page shows
 * Envoy's pid and LIVE; after the test crashes the double, the same page (no reload) shows the
 * restart, the exit reason and the crash's stderr line, then the new pid LIVE again. A
 * screenshot of each stage is written to test-artifacts/ (git-ignored). Skips, saying why,
 * when /usr/bin/chromium is missing (.ci/run installs it).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { REPO_ROOT, disposeTrackedAgents, startTrackedAgent, meshAgentOptions } from '../support/agent-process.js';
import { CaServer, TestCa } from '../support/ca-server.js';
import { ControlPlane, testCluster, testListener } from '../support/control-plane.js';
import { StatusRegistry } from '../../src/status/registry.js';
import { startStatus } from '../support/status-harness.js';
import { CRASH_TEST_ENV, controlFile, crashOnce } from '../support/status-page.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.log(`SKIP status page browser test: ${CHROMIUM} not installed (apt-get install chromium)`);

let browser: Browser | undefined;
let profile: string;

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'status-page-chromium-'));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`],
  });
}, 30_000);

afterAll(async () => {
  await browser?.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});
afterEach(disposeTrackedAgents);

const text = (page: Page, sel: string) => page.$eval(sel, (e) => e.textContent ?? '').catch(() => '');

async function waitText(page: Page, sel: string, want: (t: string) => boolean, what: string, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = await text(page, sel);
    if (want(t)) return t;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; ${sel} shows ${JSON.stringify(t)}`);
    await page.waitForNetworkIdle({ idleTime: 50, timeout: 2_000 }).catch(() => undefined);
  }
}

describe('status page (headless chromium)', () => {
  (HAVE_CHROMIUM ? test : test.skip)(
    'shows pid and LIVE, then the crash (exit reason, stderr line) and the restart without a reload',
    async () => {
      const b = browser as Browser;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-test-'));
      const agent = await startTrackedAgent({ cwd: dir, env: { ...CRASH_TEST_ENV, ENVOY_DOUBLE_CONTROL: controlFile(dir) } });
      await agent.waitForLog(/readiness: not ready -> ready/, 15_000);
      const firstPid = agent.starts()[0]?.pid as number;

      const page = await b.newPage();
      await page.setViewport({ width: 1400, height: 1000 });
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(`http://127.0.0.1:${agent.ports.status}/`, { waitUntil: 'domcontentloaded' });
      await waitText(page, '#envoy-pid', (t) => t === String(firstPid), `pid ${firstPid}`);
      expect(await waitText(page, '#envoy-state', (t) => t === 'LIVE', 'LIVE')).toBe('LIVE');
      expect(await text(page, '#envoy-restarts')).toBe('0');
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-live.png'), fullPage: true });

      const navigations: string[] = [];
      page.on('framenavigated', (f) => navigations.push(f.url()));
      const line = `[critical][main] status-page-test: simulated crash ${process.pid}`;
      await crashOnce(agent, [line], 3);

      // Same document: the poll picks up the exit, the backoff, then the new process.
      await waitText(page, '#envoy-restarts', (t) => t === '1', 'restarts 1');
      expect(await waitText(page, '#envoy-last-stderr', (t) => t.includes(line), 'the crash stderr line')).toContain(line);
      expect(await text(page, '#envoy-last-exit')).toBe('exited with code 3');
      await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-crashed.png'), fullPage: true });
      await agent.waitFor('a second Envoy start', () => agent.starts().length >= 2, 15_000);
      const secondPid = agent.starts()[1]?.pid as number;
      await waitText(page, '#envoy-pid', (t) => t === String(secondPid), `new pid ${secondPid}`, 20_000);
      await waitText(page, '#envoy-state', (t) => t === 'LIVE', 'LIVE again', 15_000);
      expect(await text(page, '#envoy-last-stderr')).toContain(line);
      await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-restarted.png'), fullPage: true });

      expect(navigations).toEqual([]);
      // Nothing but the page and its own /status polls.
      const origin = `http://127.0.0.1:${agent.ports.status}/`;
      expect(requests.filter((u) => u !== origin && u !== `${origin}status`)).toEqual([]);
      await page.close();
    },
    90_000,
  );

  (HAVE_CHROMIUM ? test : test.skip)(
    'with the control plane and CA: the certificate, the upstream and a NACK with its error detail',
    async () => {
      const b = browser as Browser;
      const token = 'page-browser-test-token';
      const identity = 'spiffe://cluster.local/ns/jiuxi-ns/sa/default';
      const ca = await TestCa.create();
      const caServer = await CaServer.start({ ca, tokens: { [token]: identity } });
      const cp = await ControlPlane.start({ clusters: [testCluster('BlackHoleCluster')], listeners: [testListener('virtualOutbound', 15001, 'BlackHoleCluster')], token });
      try {
        const agent = await startTrackedAgent(meshAgentOptions({ discoveryAddress: cp.address, caPort: caServer.port, rootCertPem: ca.rootCertPem, token }));
        await agent.waitForLog(/readiness: not ready -> ready/, 20_000);
        const page = await b.newPage();
        await page.setViewport({ width: 1400, height: 1100 });
        await page.goto(`http://127.0.0.1:${agent.ports.status}/`, { waitUntil: 'domcontentloaded' });
        await waitText(page, '#panel-certificates', (t) => t.includes(identity), 'the SPIFFE ID');
        cp.setResources({ clusters: [testCluster('BlackHoleCluster'), { name: 'broken', rawValue: Buffer.from([0xff, 0xff, 0xff]) }] });
        await cp.waitFor('a NACK', () => cp.nacks().length > 0, 10_000);
        const message = cp.nacks()[0]?.errorDetail?.message as string;
        const panel = await waitText(page, '#panel-controlPlane', (t) => t.includes(message), 'the NACK detail');
        expect(panel).toContain(cp.address);
        expect(panel).toContain('CONNECTED');
        const html = await page.content();
        expect(html).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
        expect(html).not.toContain(token);
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-control-plane.png'), fullPage: true });
        await page.close();
      } finally {
        await disposeTrackedAgents();
        await cp.close();
        await caServer.close();
      }
    },
    60_000,
  );

  (HAVE_CHROMIUM ? test : test.skip)('a provider without a dedicated panel (DNS, SDS files) is rendered generically and updates live', async () => {
    const b = browser as Browser;
    const registry = new StatusRegistry();
    let queries = 0;
    registry.register({ name: 'dns', snapshot: () => ({ tableSize: 12, queries, upstreamFailures: 0 }) });
    registry.register({ name: 'sdsFiles', snapshot: () => ({ secrets: ['file-cert:/etc/certs/cert-chain.pem~/etc/certs/key.pem'] }) });
    const harness = await startStatus({ status: registry });
    try {
      const page = await b.newPage();
      await page.goto(`http://127.0.0.1:${harness.port}/`, { waitUntil: 'domcontentloaded' });
      await waitText(page, '#panel-dns', (t) => t.startsWith('DNS') && t.includes('tableSize12') && t.includes('queries0'), 'the DNS panel');
      queries = 7;
      await waitText(page, '#panel-dns', (t) => t.includes('queries7'), 'the DNS panel updated');
      expect(await waitText(page, '#panel-sdsFiles', (t) => t.includes('file-cert:'), 'the sdsFiles panel')).toContain('sdsFiles');
      await page.close();
    } finally {
      await harness.close();
    }
  });
});
