/**
 * Real-kernel tests (root) for what current injectors ask of istio-iptables, each in fresh
 * network namespaces (test/iptables/netns.ts):
 *  - `--run-validation --skip-rule-apply` as uid 1337 (the istio-validation container):
 *    rules in place → exit 0; no rules → exit 126 within the probe timeout naming the
 *    failure; a partial rule set that does not redirect the probe → 126; nothing written;
 *  - a re-run over applied rules is a no-op; `--force-apply` applies without checking;
 *  - `ISTIO_DUAL_STACK`: v4 and v6 traffic both land on 15001/15006;
 *  - `--native-nftables`: the iptables test's traffic cases land on the same ports (and
 *    ssh too: Istio's nft rules have no port-22 exception); a re-run replaces rather than
 *    duplicates; cleanup leaves no istio table.
 * Skips, with the reason printed, when not root or a binary is missing.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, SEED_ARGS, seedRulesFile, seedSaveDump } from './helpers.js';
import { connect, kernelSkipReason, NetnsPair, normalizeSave, onPath, parseSave, startServer, type Server } from './netns.js';

const built = existsSync(path.join(REPO_ROOT, 'dist', 'src', 'cli.js'));
const baseSkip = kernelSkipReason() ?? (built ? undefined : 'dist/ is not built (the jest globalSetup builds it)');
const validationSkip = baseSkip ?? (onPath('setpriv') ? undefined : 'setpriv (util-linux) is not installed');
const nftSkip = baseSkip ?? (onPath('nft') ? undefined : 'nft is not installed (apt-get install nftables)');
for (const [what, why] of [
  ['iptables kernel capture tests', baseSkip],
  ['validation tests', validationSkip],
  ['nftables tests', nftSkip],
] as const) {
  if (why) console.warn(`${what} skipped: ${why}`);
}
const when = (reason: string | undefined) => (reason ? describe.skip : describe);

const APP = { uid: 1000, gid: 1000 };
const PROXY = { uid: 1337, gid: 1337 };
const POD_PORTS = [15001, 15006, 15020, 15021, 15090, 8080];
/** The istio-validation container's args as the injector renders them with istio-cni (plus a shorter timeout). */
const VALIDATE = ['istio-iptables', ...SEED_ARGS, '--log_output_level=default:info', '--run-validation', '--skip-rule-apply', '--probe-timeout', '1500ms'];

when(validationSkip)('--run-validation in a real network namespace, as uid 1337', () => {
  let pair: NetnsPair;
  beforeAll(async () => {
    pair = await NetnsPair.create(4);
  });
  afterAll(async () => {
    await pair?.destroy();
  });

  test('no rules: exit 126 within the probe timeout, naming what was not redirected; nothing written', async () => {
    const before = await pair.save();
    const started = Date.now();
    const r = await pair.cliAs(1337, VALIDATE);
    const took = Date.now() - started;
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('traffic capture validation failed');
    expect(r.stderr).toContain('a connection from uid 1337 to 127.0.0.6:15002 was not redirected to 127.0.0.1:15001 or 127.0.0.1:15006: it reached 127.0.0.6:15002 itself');
    // 1.5 s of probing plus process start-up; far below what an unbounded retry would take.
    expect(took).toBeGreaterThanOrEqual(1500);
    expect(took).toBeLessThan(1500 + 8000);
    expect(await pair.save()).toBe(before);
  });

  test('rules in place (the seed\'s): exit 0, the probe arrived on 15006', async () => {
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS])).code).toBe(0);
    const before = await pair.save();
    const r = await pair.cliAs(1337, VALIDATE);
    expect(r.stderr).toContain('validation passed: the probe connection arrived redirected on port 15006');
    expect(r.code).toBe(0);
    expect(await pair.save()).toBe(before);
  });

  test('a partial rule set (inbound capture, but no OUTPUT jump) does not redirect the probe: 126', async () => {
    expect((await pair.cli(['istio-clean-iptables'])).code).toBe(0);
    const partial = seedRulesFile().replace('-A OUTPUT -p tcp -j ISTIO_OUTPUT\n', '');
    expect(partial).not.toBe(seedRulesFile());
    const restore = await pair.exec(pair.pod, 'sh', ['-c', `printf '%s' "$1" | iptables-restore --noflush`, 'sh', partial]);
    expect(restore.code).toBe(0);
    expect(parseSave(await pair.save()).rules.get('nat/PREROUTING')).toEqual(['-p tcp -j ISTIO_INBOUND']);
    const r = await pair.cliAs(1337, VALIDATE);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('to 127.0.0.6:15002 was not redirected');
  });
});

when(validationSkip)('--run-validation in an IPv6-only pod, as uid 1337', () => {
  let pair: NetnsPair;
  beforeAll(async () => {
    pair = await NetnsPair.create(6);
  });
  afterAll(async () => {
    await pair?.destroy();
  });

  test('the probe goes ::1 → ::6 and must arrive on [::1]:15006; without rules 126, with them 0', async () => {
    const none = await pair.cliAs(1337, VALIDATE);
    expect(none.code).toBe(126);
    expect(none.stderr).toContain('to [::6]:15002 was not redirected to [::1]:15001 or [::1]:15006');
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS])).code).toBe(0);
    const ok = await pair.cliAs(1337, VALIDATE);
    expect(ok.stderr).toContain('arrived redirected on port 15006');
    expect(ok.code).toBe(0);
  });
});

when(baseSkip)('re-running over rules already in place (iptables)', () => {
  let pair: NetnsPair;
  beforeAll(async () => {
    pair = await NetnsPair.create(4);
  });
  afterAll(async () => {
    await pair?.destroy();
  });

  test('the second run succeeds, applies nothing and duplicates nothing; --force-apply applies without the check', async () => {
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS])).code).toBe(0);
    const again = await pair.cli(['istio-iptables', ...SEED_ARGS]);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('iptables-restore');
    expect(again.stderr).toContain('every capture rule is already in place');
    expect(await pair.save()).toBe(normalizeSave(seedSaveDump()));

    // Forced: the restore runs (as in Istio it then meets the existing chains and fails as a whole).
    const forced = await pair.cli(['istio-iptables', ...SEED_ARGS, '--force-apply']);
    expect(forced.stdout).toContain('iptables-restore --noflush ');
    expect(forced.code).toBe(1);
    expect(forced.stderr).toMatch(/Error: iptables-restore --noflush \S+: exit status \d+: /);
    expect(await pair.save()).toBe(normalizeSave(seedSaveDump()));
  });
});

when(baseSkip)('--drop-invalid on a real kernel', () => {
  let pair: NetnsPair;
  beforeAll(async () => {
    pair = await NetnsPair.create(4);
  });
  afterAll(async () => {
    await pair?.destroy();
  });

  test('iptables: INVALID packets jump to ISTIO_DROP (mangle); cleanup removes chain and jump', async () => {
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS, '--drop-invalid'])).code).toBe(0);
    const dump = parseSave(await pair.save());
    expect(dump.rules.get('mangle/PREROUTING')).toEqual(['-m conntrack --ctstate INVALID -j ISTIO_DROP']);
    expect(dump.rules.get('mangle/ISTIO_DROP')).toEqual(['-j DROP']);
    expect((await pair.cli(['istio-clean-iptables'])).code).toBe(0);
    const after = parseSave(await pair.save());
    expect(after.rules.size).toBe(0);
    expect([...after.chains.values()].flatMap((c) => [...c.keys()]).filter((c) => c.startsWith('ISTIO'))).toEqual([]);
  });

  (nftSkip ? test.skip : test)('nftables: the same in inet istio-proxy-mangle; cleanup leaves no istio table', async () => {
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS, '--drop-invalid', '--native-nftables'])).code).toBe(0);
    const mangle = (await pair.exec(pair.pod, 'nft', ['list', 'table', 'inet', 'istio-proxy-mangle'])).stdout;
    expect(mangle).toMatch(/ct state invalid counter packets \d+ bytes \d+ jump istio-drop/);
    expect(mangle).toMatch(/chain istio-drop \{\s+counter packets \d+ bytes \d+ drop/);
    expect((await pair.cli(['istio-clean-iptables', '--native-nftables'])).code).toBe(0);
    expect((await pair.exec(pair.pod, 'nft', ['list', 'tables'])).stdout).not.toContain('istio');
  });
});

when(baseSkip)('ISTIO_DUAL_STACK in a dual-stack pod (iptables)', () => {
  let pair: NetnsPair;
  const servers: Server[] = [];
  beforeAll(async () => {
    pair = await NetnsPair.create('dual');
    servers.push(await startServer(pair.pod, 'pod', POD_PORTS));
    servers.push(await startServer(pair.peer, 'peer', [9999, 8080]));
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    await pair?.destroy();
  });

  test('without it an IPv4-first pod gets IPv4 rules only; with it v4 and v6 traffic both land on 15001/15006', async () => {
    const v4only = await pair.cli(['istio-iptables', ...SEED_ARGS, '-n']);
    expect(v4only.stdout).toContain('ENABLE_INBOUND_IPV6=false\n');

    const r = await pair.cli(['istio-iptables', ...SEED_ARGS], { ISTIO_DUAL_STACK: 'true' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ENABLE_INBOUND_IPV6=true\n');
    const peer6 = pair.peerAddr6 as string;
    const pod6 = pair.podAddr6 as string;
    for (const [peer, pod] of [
      [pair.peerAddr, pair.podAddr],
      [peer6, pod6],
    ] as const) {
      expect(await connect(pair.pod, peer, 9999, APP)).toEqual({ ok: true, reply: 'pod:15001' });
      expect(await connect(pair.pod, peer, 9999, PROXY)).toEqual({ ok: true, reply: 'peer:9999' });
      expect(await connect(pair.peer, pod, 8080)).toEqual({ ok: true, reply: 'pod:15006' });
      expect(await connect(pair.peer, pod, 15021)).toEqual({ ok: true, reply: 'pod:15021' });
    }
    // A re-run over the v4 and v6 rules changes nothing (the ::6 address is not added twice).
    const again = await pair.cli(['istio-iptables', ...SEED_ARGS], { ISTIO_DUAL_STACK: 'true' });
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('ip -6 addr add');
    expect((await pair.cli(['istio-clean-iptables'])).code).toBe(0);
    expect(await connect(pair.peer, pod6, 8080)).toEqual({ ok: true, reply: 'pod:8080' });
  });

  (nftSkip ? test.skip : test)('the same with --native-nftables: one inet table captures v4 and v6', async () => {
    const r = await pair.cli(['istio-iptables', ...SEED_ARGS, '--native-nftables', '--dual-stack']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ip6 saddr ::6/128');
    for (const [peer, pod] of [
      [pair.peerAddr, pair.podAddr],
      [pair.peerAddr6 as string, pair.podAddr6 as string],
    ] as const) {
      expect(await connect(pair.pod, peer, 9999, APP)).toEqual({ ok: true, reply: 'pod:15001' });
      expect(await connect(pair.pod, peer, 9999, PROXY)).toEqual({ ok: true, reply: 'peer:9999' });
      expect(await connect(pair.peer, pod, 8080)).toEqual({ ok: true, reply: 'pod:15006' });
      expect(await connect(pair.peer, pod, 15090)).toEqual({ ok: true, reply: 'pod:15090' });
    }
    // Re-running is no error (the ::6 address is replaced, the tables flushed and refilled).
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS, '--native-nftables', '--dual-stack'])).code).toBe(0);
    expect((await pair.cli(['istio-iptables', '--cleanup-only', '--native-nftables'])).code).toBe(0);
    expect((await pair.exec(pair.pod, 'nft', ['list', 'tables'])).stdout).not.toContain('istio');
    expect((await pair.exec(pair.pod, 'ip', ['-6', 'addr', 'show', 'dev', 'lo'])).stdout).not.toContain('::6/128');
  });

  (nftSkip ? test.skip : test)('TPROXY as nftables (v4 and v6, -c, -k): the kernel takes the mangle rules and the policy route; cleanup removes them', async () => {
    const flags = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-b', '*', '-d', '15090,15021,15020', '-c', 'eth9', '-k', 'vnet0'];
    const r = await pair.cli(['istio-iptables', ...flags, '--native-nftables', '--dual-stack']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ruleset = (await pair.exec(pair.pod, 'nft', ['list', 'table', 'inet', 'istio-proxy-mangle'])).stdout;
    expect(ruleset).toMatch(/tproxy ip to :15006/);
    expect(ruleset).toMatch(/tproxy ip6 to :15006/);
    for (const fam of ['-4', '-6']) {
      expect((await pair.exec(pair.pod, 'ip', [fam, 'rule', 'show'])).stdout).toMatch(/fwmark 0x539 lookup 133/);
      expect((await pair.exec(pair.pod, 'ip', [fam, 'route', 'show', 'table', '133'])).stdout).toMatch(/^local default dev lo/m);
    }
    expect((await pair.cli(['istio-iptables', ...flags, '--native-nftables', '--dual-stack'])).code).toBe(0);
    for (const fam of ['-4', '-6']) expect((await pair.exec(pair.pod, 'ip', [fam, 'rule', 'show'])).stdout.match(/fwmark 0x539/g)).toHaveLength(1);
    expect((await pair.cli(['istio-iptables', ...flags, '--cleanup-only', '--native-nftables'])).code).toBe(0);
    expect((await pair.exec(pair.pod, 'nft', ['list', 'tables'])).stdout).not.toContain('istio');
    for (const fam of ['-4', '-6']) {
      expect((await pair.exec(pair.pod, 'ip', [fam, 'rule', 'show'])).stdout).not.toMatch(/fwmark 0x539/);
      expect((await pair.exec(pair.pod, 'ip', [fam, 'route', 'show', 'table', '133'])).stdout).toBe('');
    }
  });
});

when(nftSkip)('--native-nftables on a real kernel', () => {
  let pair: NetnsPair;
  const servers: Server[] = [];
  const nftTables = async () => (await pair.exec(pair.pod, 'nft', ['list', 'tables'])).stdout;
  const nftRules = async () => (await pair.exec(pair.pod, 'nft', ['list', 'ruleset'])).stdout.split('\n').filter((l) => l.includes('counter')).length;

  beforeAll(async () => {
    pair = await NetnsPair.create(4);
    servers.push(await startServer(pair.pod, 'pod', POD_PORTS));
    servers.push(await startServer(pair.peer, 'peer', [9999, 8080]));
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    await pair?.destroy();
  });

  test('the seed\'s args: the same traffic lands on the same ports as with iptables (ssh too: no port-22 exception)', async () => {
    const before = await pair.save();
    const r = await pair.cli(['istio-iptables', ...SEED_ARGS, '--native-nftables']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('nft -f -\nadd table inet istio-proxy-nat\n');
    expect(await nftTables()).toContain('table inet istio-proxy-nat');
    // iptables is not touched.
    expect(await pair.save()).toBe(before);

    expect(await connect(pair.pod, pair.peerAddr, 9999, APP)).toEqual({ ok: true, reply: 'pod:15001' });
    expect(await connect(pair.pod, pair.peerAddr, 8080)).toEqual({ ok: true, reply: 'pod:15001' });
    expect(await connect(pair.pod, pair.peerAddr, 9999, PROXY)).toEqual({ ok: true, reply: 'peer:9999' });
    expect(await connect(pair.pod, pair.peerAddr, 9999, { uid: 1000, gid: 1337 })).toEqual({ ok: true, reply: 'peer:9999' });
    expect(await connect(pair.pod, '127.0.0.1', 8080, APP)).toEqual({ ok: true, reply: 'pod:8080' });
    expect(await connect(pair.peer, pair.podAddr, 8080)).toEqual({ ok: true, reply: 'pod:15006' });
    expect(await connect(pair.peer, pair.podAddr, 15001)).toEqual({ ok: true, reply: 'pod:15006' });
    for (const port of [15020, 15021, 15090]) expect(await connect(pair.peer, pair.podAddr, port)).toEqual({ ok: true, reply: `pod:${port}` });
    expect(await connect(pair.peer, pair.podAddr, 22)).toEqual({ ok: true, reply: 'pod:15006' });
  });

  test('a re-run replaces the rules instead of duplicating them', async () => {
    const count = await nftRules();
    expect(count).toBeGreaterThan(10);
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS, '--native-nftables'])).code).toBe(0);
    expect(await nftRules()).toBe(count);
  });

  test('--cleanup-only --native-nftables leaves no istio table; traffic flows directly again', async () => {
    const r = await pair.cli(['istio-iptables', '--cleanup-only', '--native-nftables']);
    expect(r.code).toBe(0);
    expect(await nftTables()).not.toContain('istio');
    expect(await connect(pair.pod, pair.peerAddr, 9999, APP)).toEqual({ ok: true, reply: 'peer:9999' });
    expect(await connect(pair.peer, pair.podAddr, 8080)).toEqual({ ok: true, reply: 'pod:8080' });
    // Cleaning again is fine (the tables are added, then deleted).
    expect((await pair.cli(['istio-clean-iptables', '--native-nftables'])).code).toBe(0);
  });

  test('with the nft rules in place, --run-validation as uid 1337 passes', async () => {
    expect((await pair.cli(['istio-iptables', ...SEED_ARGS, '--native-nftables'])).code).toBe(0);
    for (const s of servers.splice(0)) await s.stop();
    const r = await pair.cliAs(1337, VALIDATE);
    expect(r.stderr).toContain('arrived redirected on port 15006');
    expect(r.code).toBe(0);
  });
});
