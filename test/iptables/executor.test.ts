/**
 * The executor's apply/cleanup sequence with a recording runner (no root needed): what runs
 * in which order, that each rules file holds exactly the echoed text while its restore runs
 * and is removed afterwards, failure handling (1.6: saves still run, then exit 1), the route
 * fallback, a missing binary, and the live-table sweep during cleanup. Also the real runner
 * against real processes (`sh`), and the pure helpers (CIDRs, IPv6 choice, passwd, sweep).
 */
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sweepJumps, tokenizeSaveLine } from '../../src/iptables/save.js';
import { createIptablesCommands } from '../../src/iptables/command.js';
import { realRunner, tempFileStore, type RunOutcome, type Runner } from '../../src/iptables/executor.js';
import { firstAddressIsIPv6, lookupUidInPasswd, parseCidr } from '../../src/iptables/net.js';
import { capture, runCommand, SEED_ARGS, seedRulesFile, seedSaveDump } from './helpers.js';

interface Call {
  cmd: string;
  args: string[];
  quiet: boolean;
  /** For restores: the rules file's contents while the command ran. */
  fileContents?: string;
}

function recordingRunner(
  script: (cmd: string, args: readonly string[]) => RunOutcome & { stdout?: string } = () => ({ code: 0 }),
  rulesPresent = false,
) {
  const calls: Call[] = [];
  const reads: string[] = [];
  const factory = (ctx: { stdout: { write(s: string): unknown } }): Runner => ({
    run: async (cmd, args, opts) => {
      const call: Call = { cmd, args: [...args], quiet: opts.quiet ?? false };
      if (cmd.endsWith('-restore')) call.fileContents = readFileSync(args[1] ?? '', 'utf8');
      calls.push(call);
      const o = script(cmd, args);
      if (o.stdout) ctx.stdout.write(o.stdout);
      return o;
    },
    read: async (cmd, args) => {
      reads.push([cmd, ...args].join(' '));
      // `iptables -C` (is this rule present?): a fresh pod has none, unless the script says so.
      const o = args[2] === '-C' && !rulesPresent ? { code: 1 } : script(cmd, args);
      return { ...o, stdout: o.stdout ?? '' };
    },
  });
  return { calls, reads, factory };
}

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ipt-exec-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function commands(runner: ReturnType<typeof recordingRunner>, addresses = ['10.1.2.3']) {
  return createIptablesCommands({
    interfaceAddresses: () => addresses,
    readPasswd: () => undefined,
    runner: runner.factory,
    rulesFiles: () => tempFileStore(tmp),
  });
}

describe('apply', () => {
  test('runs the 1.6 sequence; rules files hold the echoed text and are removed afterwards', async () => {
    const rec = recordingRunner((cmd) => (cmd === 'iptables-save' ? { code: 0, stdout: '*nat\nCOMMIT\n' } : { code: 0 }));
    const r = await runCommand(commands(rec).istioIptables, SEED_ARGS);
    expect(r.code).toBe(0);
    expect(rec.calls.map((c) => c.cmd)).toEqual(['iptables-restore', 'ip6tables-restore', 'iptables-save']);
    const [v4, v6] = rec.calls;
    expect(v4?.args[0]).toBe('--noflush');
    expect(v4?.args[1]).toMatch(new RegExp(`^${tmp}/iptables-rules-\\d{19}\\.txt\\d{9}$`));
    expect(v4?.fileContents).toBe(seedRulesFile());
    expect(v6?.fileContents).toBe('');
    expect(readdirSync(tmp)).toEqual([]);
    // The echo precedes each command; the save's own output follows its echo.
    expect(r.stdout).toContain(`COMMIT\n\niptables-restore --noflush ${v4?.args[1]}\n`);
    expect(r.stdout.endsWith('iptables-save \n*nat\nCOMMIT\n')).toBe(true);
  });

  test('a re-run over rules already in place applies nothing; --force-apply applies without checking', async () => {
    const live = (cmd: string) => (cmd === 'iptables-save' ? { code: 0, stdout: seedSaveDump() } : { code: 0 });
    const present = recordingRunner(live, true);
    const again = await runCommand(commands(present).istioIptables, SEED_ARGS);
    expect(again.code).toBe(0);
    expect(present.calls.map((c) => c.cmd)).toEqual(['iptables-save']);
    expect(present.reads[0]).toBe('iptables-save');
    // Every seed rule was checked with -C in its table.
    expect(present.reads.filter((r) => r.startsWith('iptables -t nat -C '))).toHaveLength(seedRulesFile().split('\n').filter((l) => l.startsWith('-A ')).length);
    expect(present.reads).toContain('iptables -t nat -C ISTIO_INBOUND -p tcp --dport 22 -j RETURN');
    expect(again.stderr).toContain('every capture rule is already in place');

    // Istio chains holding other rules (one more in ISTIO_OUTPUT): applied, with a warning.
    const other = recordingRunner((cmd) => (cmd === 'iptables-save' ? { code: 0, stdout: seedSaveDump().replace('-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n', '-A ISTIO_OUTPUT -j ISTIO_REDIRECT\n-A ISTIO_OUTPUT -j RETURN\n') } : { code: 0 }), true);
    const o = await runCommand(commands(other).istioIptables, SEED_ARGS);
    expect(other.calls.map((c) => c.cmd)).toEqual(['iptables-restore', 'ip6tables-restore', 'iptables-save']);
    expect(other.reads).toEqual(['iptables-save']);
    expect(o.stderr).toContain('Istio chains exist without this configuration\'s rules; applying anyway');

    // A fresh pod: one iptables-save read, no -C checks.
    const fresh = recordingRunner();
    expect((await runCommand(commands(fresh).istioIptables, SEED_ARGS)).code).toBe(0);
    expect(fresh.reads).toEqual(['iptables-save']);

    const forced = recordingRunner(undefined, true);
    const f = await runCommand(commands(forced).istioIptables, [...SEED_ARGS, '--force-apply']);
    expect(f.code).toBe(0);
    expect(forced.reads).toEqual([]);
    expect(forced.calls.map((c) => c.cmd)).toEqual(['iptables-restore', 'ip6tables-restore', 'iptables-save']);
  });

  test('IPv6 pod: ::6 is added to lo first, ip6tables-save runs last', async () => {
    const rec = recordingRunner();
    const r = await runCommand(commands(rec, ['fd00::5']).istioIptables, SEED_ARGS);
    expect(r.code).toBe(0);
    expect(rec.calls.map((c) => [c.cmd, ...c.args].join(' ').replace(/\/\S+$/, '<file>'))).toEqual([
      'ip -6 addr add ::6/128 dev lo',
      'iptables-restore --noflush <file>',
      'ip6tables-restore --noflush <file>',
      'iptables-save',
      'ip6tables-save',
    ]);
    expect(rec.calls[2]?.fileContents).toContain('-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN\n');
  });

  test('a failing restore: the saves still run, the error names the command, exit 1, no file left', async () => {
    const rec = recordingRunner((cmd) => (cmd === 'iptables-restore' ? { code: 2 } : { code: 0 }));
    const r = await runCommand(commands(rec).istioIptables, SEED_ARGS);
    expect(r.code).toBe(1);
    expect(rec.calls.map((c) => c.cmd)).toEqual(['iptables-restore', 'iptables-save']);
    expect(r.stderr).toMatch(/^Error: iptables-restore --noflush \S+iptables-rules-\S+: exit status 2\n$/);
    expect(readdirSync(tmp)).toEqual([]);
  });

  test('TPROXY: the policy route is added before the restore; if it exists, 1.6 shows all tables and goes on', async () => {
    const rec = recordingRunner((cmd, args) => (cmd === 'ip' && args.includes('route') && args.includes('add') ? { code: 2 } : { code: 0 }));
    const r = await runCommand(commands(rec).istioIptables, [...SEED_ARGS.filter((a) => a !== 'REDIRECT' && a !== '-m'), '-m', 'TPROXY']);
    expect(r.code).toBe(0);
    expect(rec.calls.slice(0, 3).map((c) => [c.cmd, ...c.args].join(' '))).toEqual([
      'ip -f inet rule add fwmark 1337 lookup 133',
      'ip -f inet route add local default dev lo table 133',
      'ip route show table all',
    ]);
    expect(rec.calls[3]?.fileContents).toContain('--on-port 15006');
  });

  test('a failing `ip rule add` stops before any rule is restored', async () => {
    const rec = recordingRunner((cmd) => (cmd === 'ip' ? { code: 1 } : { code: 0 }));
    const r = await runCommand(commands(rec).istioIptables, ['-m', 'TPROXY', '-b', '*', '-i', '*']);
    expect(r.code).toBe(1);
    expect(rec.calls.map((c) => c.cmd)).toEqual(['ip', 'iptables-save']);
    expect(r.stderr).toContain('ip -f inet rule add fwmark 1337 lookup 133: exit status 1');
  });

  test('--restore-format=false runs one iptables command per chain and rule', async () => {
    const rec = recordingRunner();
    const r = await runCommand(commands(rec).istioIptables, [...SEED_ARGS, '--restore-format=false']);
    expect(r.code).toBe(0);
    const lines = rec.calls.map((c) => [c.cmd, ...c.args].join(' '));
    expect(lines[0]).toBe('iptables -t nat -N ISTIO_REDIRECT');
    expect(lines).toContain('iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND');
    expect(lines.at(-1)).toBe('iptables-save');
    expect(lines.filter((l) => l.startsWith('iptables -t nat -A '))).toHaveLength(seedRulesFile().split('\n').filter((l) => l.startsWith('-A ')).length);
  });
});

describe('cleanup', () => {
  test('ignores every failure, hides deletion stderr, and sweeps jumps found in the live tables', async () => {
    const live = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      '-A PREROUTING -i vnet7 -j ISTIO_REDIRECT',
      '-A PREROUTING -p udp -m udp --dport 53 -m comment --comment "foreign rule" -j RETURN',
      '-A OUTPUT -m comment --comment "keep me" -j KUBE-SERVICES',
      '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      'COMMIT',
      '',
    ].join('\n');
    const rec = recordingRunner((cmd) => (cmd === 'iptables-save' ? { code: 0, stdout: live } : { code: 1 }));
    const r = await runCommand(commands(rec).istioCleanIptables, []);
    expect(r.code).toBe(0);
    expect(rec.reads).toEqual(['iptables-save', 'ip6tables-save']);
    const lines = rec.calls.map((c) => [c.cmd, ...c.args].join(' '));
    expect(lines).toContain('iptables -t nat -D PREROUTING -i vnet7 -j ISTIO_REDIRECT');
    expect(lines.some((l) => l.includes('foreign') || l.includes('KUBE-SERVICES'))).toBe(false);
    // The sweep comes after the config's deletes and before the chains are removed.
    expect(lines.indexOf('iptables -t nat -D PREROUTING -i vnet7 -j ISTIO_REDIRECT')).toBeLessThan(lines.indexOf('iptables -t nat -F ISTIO_OUTPUT'));
    expect(rec.calls.filter((c) => c.args.includes('-D') || c.args.includes('-X') || c.args.includes('-F')).every((c) => c.quiet)).toBe(true);
    expect(lines.slice(-2)).toEqual(['iptables-save', 'ip6tables-save']);
  });

  test('dry run reads nothing from the live tables', async () => {
    const rec = recordingRunner();
    const r = await runCommand(commands(rec).istioCleanIptables, ['-n']);
    expect(r.code).toBe(0);
    expect(rec.calls).toEqual([]);
    expect(rec.reads).toEqual([]);
  });
});

describe('real runner (real processes)', () => {
  test('copies stdout, copies or hides stderr, reports exit status and a missing binary', async () => {
    const out = capture();
    const err = capture();
    const runner = realRunner(out.stream, err.stream);
    expect(await runner.run('sh', ['-c', 'echo out; echo err >&2; exit 3'], {})).toEqual({ code: 3, stderr: 'err' });
    expect(await runner.run('sh', ['-c', 'echo hidden >&2'], { quiet: true })).toEqual({ code: 0, stderr: 'hidden' });
    expect(await runner.run('sh', ['-c', 'cat'], { input: 'fed on stdin\n' })).toEqual({ code: 0 });
    const missing = await runner.run('no-such-binary-istio-test', [], {});
    expect(missing.code).toBe(-1);
    expect(missing.error).toContain('"no-such-binary-istio-test" not found');
    const read = await runner.read('sh', ['-c', 'printf abc']);
    expect(read).toEqual({ code: 0, stdout: 'abc' });
    await new Promise((r) => setImmediate(r));
    expect(out.text()).toBe('out\nfed on stdin\n');
    expect(err.text()).toBe('err\n');
  });

  test('a failing command\'s error names the command, its exit code and its stderr', async () => {
    const { istioIptables } = createIptablesCommands({
      interfaceAddresses: () => ['10.1.2.3'],
      readPasswd: () => undefined,
      rulesFiles: () => tempFileStore(tmp),
      runner: (ctx) => {
        const real = realRunner(ctx.stdout, ctx.stderr);
        const fail = (cmd: string) => ['-c', `echo "${cmd}: line 3 failed" >&2; exit 4`];
        return { run: (cmd, _args, o) => real.run('sh', fail(cmd), o), read: real.read };
      },
    });
    const r = await runCommand(istioIptables, SEED_ARGS);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Error: iptables-restore --noflush \S+: exit status 4: iptables-restore: line 3 failed\n$/);
  });

  test('a missing iptables binary fails the apply with a clear message (PATH without it)', async () => {
    const { istioIptables } = createIptablesCommands({
      interfaceAddresses: () => ['10.1.2.3'],
      readPasswd: () => undefined,
      rulesFiles: () => tempFileStore(tmp),
      runner: (ctx) => {
        const real = realRunner(ctx.stdout, ctx.stderr);
        return { run: (cmd, args, o) => real.run(`${cmd}-not-installed`, args, o), read: real.read };
      },
    });
    const r = await runCommand(istioIptables, SEED_ARGS);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('executable file "iptables-restore-not-installed" not found in $PATH');
    expect(existsSync(tmp) && readdirSync(tmp)).toEqual([]);
  });
});

describe('pure helpers', () => {
  test.each([
    ['10.0.0.1/8', '10.0.0.0/8'],
    ['172.16.0.1/12', '172.16.0.0/12'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['192.168.1.77/32', '192.168.1.77/32'],
    ['FD00:1:0:0:0:0:0:1/64', 'fd00:1::/64'],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['2001:0:0:1:0:0:0:1/128', '2001:0:0:1::1/128'],
    ['::/0', '::/0'],
    ['::1.2.3.4/128', '::102:304/128'],
    ['fe80::1:2:3:4/10', 'fe80::/10'],
  ])('CIDR %s normalises to %s (Go IPNet.String)', (input, want) => {
    const c = parseCidr(input);
    expect(typeof c === 'string' ? c : c.text).toBe(want);
  });

  test.each(['10.0.0.0', '10.0.0/8', '010.0.0.0/8', '10.0.0.0/08', '1::2::3/64', '::ffff:10.0.0.0/104', 'fe80::1%eth0/64', '1:2:3:4:5:6:7:8:9/64'])(
    'CIDR %s is rejected',
    (input) => {
      expect(typeof parseCidr(input)).toBe('string');
    },
  );

  test('IPv6 only when there is no non-loopback IPv4 address (Go lists IPv4 first)', () => {
    expect(firstAddressIsIPv6(['127.0.0.1', '::1', 'fe80::1', '10.0.0.5'])).toBe(false);
    expect(firstAddressIsIPv6(['127.0.0.1', '::1', 'fe80::1', 'fd00::5'])).toBe(true);
    expect(firstAddressIsIPv6(['127.0.0.1', '::1'])).toBeUndefined();
  });

  test('passwd lookup', () => {
    const passwd = 'root:x:0:0::/root:/bin/sh\nistio-proxy:x:1337:1337::/home:/bin/sh\nbad:x:abc:1::/:/bin/sh\n';
    expect(lookupUidInPasswd(passwd, 'istio-proxy')).toBe('1337');
    expect(lookupUidInPasswd(passwd, 'root')).toBe('0');
    expect(lookupUidInPasswd(passwd, 'bad')).toBeUndefined();
    expect(lookupUidInPasswd(passwd, 'nobody')).toBeUndefined();
  });

  test('save-line tokenizer keeps quoted comments whole; sweep only touches jumps into Istio chains from built-in chains', () => {
    expect(tokenizeSaveLine('-A OUTPUT -m comment --comment "a \\"b\\" c" -j X')).toEqual(['-A', 'OUTPUT', '-m', 'comment', '--comment', 'a "b" c', '-j', 'X']);
    const sweep = sweepJumps('ip6tables', '*mangle\n-A PREROUTING -p tcp -j ISTIO_INBOUND\n-A FOO -j ISTIO_INBOUND\n*nat\n-A OUTPUT -g ISTIO_OUTPUT\n-A OUTPUT -j RETURN\n');
    expect(sweep.map((c) => [c.cmd, ...c.args].join(' '))).toEqual([
      'ip6tables -t mangle -D PREROUTING -p tcp -j ISTIO_INBOUND',
      'ip6tables -t nat -D OUTPUT -g ISTIO_OUTPUT',
    ]);
  });
});
