/**
 * DNS capture in a real network namespace (root): after `istio-iptables --redirect-dns` (the
 * resolv.conf it reads names the peer namespace's resolver), an app-uid query to that resolver
 * lands on the agent's DNS proxy on 15053 (UDP and TCP) and is answered from its table; the
 * agent's own forwarding (uid 1337) reaches the resolver without looping back; a proxy-uid
 * query is not captured. Cleanup removes the DNS chains. Skips, with the reason, when not root.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../iptables/helpers.js';
import { kernelSkipReason, NetnsPair, onPath, parseSave, sh, startProcess, type Server } from '../iptables/netns.js';

const built = existsSync(path.join(REPO_ROOT, 'dist', 'src', 'dns', 'server.js'));
const skip = kernelSkipReason() ?? (built ? undefined : 'dist/ is not built (the jest globalSetup builds it)') ?? (onPath('setpriv') ? undefined : 'setpriv (util-linux) is not installed');
if (skip) console.warn(`DNS capture netns test skipped: ${skip}`);
const nftSkip = skip ?? (onPath('nft') ? undefined : 'nft is not installed (apt-get install nftables)');
if (nftSkip && !skip) console.warn(`DNS capture nftables netns test skipped: ${nftSkip}`);
const HELPER = path.join(REPO_ROOT, 'test', 'dns', 'netns-dns-helper.mjs');
const APP = ['1000', '1000'];
const PROXY = ['1337', '1337'];

async function query(ns: string, host: string, name: string, proto: 'udp' | 'tcp', owner: string[]): Promise<{ ok: boolean; answers?: string[]; aa?: boolean; code?: string }> {
  const r = await sh('ip', ['netns', 'exec', ns, process.execPath, HELPER, 'query', host, name, proto, ...owner]);
  if (r.code !== 0) throw new Error(`query helper failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { ok: boolean; answers?: string[]; aa?: boolean; code?: string };
}

/**
 * A pod and a peer namespace for the suite: a test upstream resolver on the peer answering
 * 192.0.2.99, and the agent's resolver on the pod's 15053 running as the proxy uid (as in the
 * sidecar). The returned object is filled in by beforeAll.
 */
function podWithResolvers(tmpPrefix: string): { pair: NetnsPair; dir: string } {
  const ctx = {} as { pair: NetnsPair; dir: string };
  const servers: Server[] = [];
  beforeAll(async () => {
    ctx.pair = await NetnsPair.create(4);
    ctx.dir = mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
    servers.push(await startProcess(ctx.pair.peer, process.execPath, [HELPER, 'upstream', '192.0.2.99']));
    servers.push(await startProcess(ctx.pair.pod, 'setpriv', ['--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, HELPER, 'agent', ctx.pair.peerAddr, '15053']));
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    await ctx.pair?.destroy();
    if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

(skip ? describe.skip : describe)('--redirect-dns in a real network namespace', () => {
  const ctx = podWithResolvers('dns-netns-');

  test('before capture: every uid reaches the resolver itself', async () => {
    expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'svc.example', 'udp', APP)).toEqual({ ok: true, answers: ['192.0.2.99'], aa: false });
  });

  test('app-uid queries land on 15053 (UDP and TCP); the proxy uid\'s do not; forwarding does not loop', async () => {
    const resolv = path.join(ctx.dir, 'resolv.conf');
    writeFileSync(resolv, `nameserver ${ctx.pair.peerAddr}\nsearch ns.svc.cluster.local\n`);
    const r = await ctx.pair.cli(['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15020', '--redirect-dns', '--dns-resolv-conf', resolv]);
    expect(r.code).toBe(0);
    const save = parseSave(await ctx.pair.save());
    expect(save.rules.get('nat/ISTIO_OUTPUT_DNS')).toEqual([
      `-d ${ctx.pair.peerAddr}/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053`,
      `-d ${ctx.pair.peerAddr}/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053`,
    ]);
    for (const proto of ['udp', 'tcp'] as const) {
      // In the agent's table: answered by the agent (authoritative), not by the resolver.
      expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'svc.example', proto, APP)).toEqual({ ok: true, answers: ['10.0.0.1'], aa: true });
      // Not in the table: the agent forwards (as uid 1337, not captured again) and relays the resolver's answer.
      expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'other.example', proto, APP)).toEqual({ ok: true, answers: ['192.0.2.99'], aa: false });
      // The proxy's own queries go to the resolver.
      expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'svc.example', proto, PROXY)).toEqual({ ok: true, answers: ['192.0.2.99'], aa: false });
    }
  });

  test('cleanup removes the DNS chains and jumps; queries reach the resolver again', async () => {
    expect((await ctx.pair.cli(['istio-clean-iptables'])).code).toBe(0);
    const after = await ctx.pair.save();
    expect(after).not.toMatch(/ISTIO_/);
    expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'svc.example', 'udp', APP)).toEqual({ ok: true, answers: ['192.0.2.99'], aa: false });
  });
});

(nftSkip ? describe.skip : describe)('--redirect-dns --native-nftables in a real network namespace', () => {
  const ctx = podWithResolvers('dns-netns-nft-');

  test('the same traffic cases with Istio\'s nftables rules; cleanup deletes the tables', async () => {
    const resolv = path.join(ctx.dir, 'resolv.conf');
    writeFileSync(resolv, `nameserver ${ctx.pair.peerAddr}\n`);
    const r = await ctx.pair.cli(['istio-iptables', '--native-nftables', '-p', '15001', '-z', '15006', '-u', '1337', '-i', '*', '-b', '*', '--redirect-dns', '--dns-resolv-conf', resolv]);
    expect(r.code).toBe(0);
    for (const proto of ['udp', 'tcp'] as const) {
      expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'svc.example', proto, APP)).toEqual({ ok: true, answers: ['10.0.0.1'], aa: true });
      expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'other.example', proto, APP)).toEqual({ ok: true, answers: ['192.0.2.99'], aa: false });
      expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'svc.example', proto, PROXY)).toEqual({ ok: true, answers: ['192.0.2.99'], aa: false });
    }
    expect((await ctx.pair.cli(['istio-clean-iptables', '--native-nftables'])).code).toBe(0);
    const tables = await ctx.pair.exec(ctx.pair.pod, 'nft', ['list', 'tables']);
    expect(tables.stdout).not.toMatch(/istio/);
    expect(await query(ctx.pair.pod, ctx.pair.peerAddr, 'svc.example', 'udp', APP)).toEqual({ ok: true, answers: ['192.0.2.99'], aa: false });
  });
});
