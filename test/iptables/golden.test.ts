/**
 * Golden tests for the pure rule builder and the dry-run output (`-n`): the seed's args give
 * exactly the seed's rules file and echoed blocks; other goldens cover TPROXY, port lists,
 * CIDR lists, excludes, -q, -c, IPv6, kube-virt interfaces, -u omitted and per-rule commands.
 * Regenerate with `UPDATE_GOLDEN=1` and review the diff.
 */
import { describe, expect, test } from '@jest/globals';
import { buildCapturePlan, toRestoreText } from '../../src/iptables/builder.js';
import { createIptablesCommands } from '../../src/iptables/command.js';
import { resolveIptablesConfig } from '../../src/iptables/options.js';
import { environmentBlock, variablesBlock } from '../../src/iptables/report.js';
import { expectGolden, normalizeTempNames, runCommand, SEED_ARGS, seedLog, seedRulesFile } from './helpers.js';

const V4_HOST = ['127.0.0.1', '10.1.2.3', '::1', 'fe80::1'];
const V6_HOST = ['127.0.0.1', '::1', 'fd00:10::5', 'fe80::1'];
const PASSWD_1500 = 'root:x:0:0:root:/root:/bin/bash\nistio-proxy:x:1500:1500::/home/istio-proxy:/bin/sh\n';

function dryRunCommands(opts: { addresses?: string[]; passwd?: string; resolv?: string } = {}) {
  return createIptablesCommands({
    interfaceAddresses: () => opts.addresses ?? V4_HOST,
    readPasswd: () => opts.passwd,
    readFile: (p) => (p === '/etc/resolv.conf' || p === '/test/resolv.conf' ? opts.resolv : undefined),
    tmpDir: () => '/tmp',
    now: () => 1597280892232020591n,
    runner: () => {
      throw new Error('dry run must not use the real runner');
    },
    rulesFiles: () => {
      throw new Error('dry run must not write rules files');
    },
  });
}

describe('seed args (SPEC §9 golden)', () => {
  test('the rules file is exactly the seed\'s, and the IPv6 file is empty', () => {
    const r = resolveIptablesConfig({ argv: SEED_ARGS, env: {}, lookupUid: () => undefined, interfaceAddresses: () => V4_HOST });
    if (r.help) throw new Error('unexpected help');
    const plan = buildCapturePlan(r.config);
    expect(toRestoreText(plan.v4)).toBe(seedRulesFile());
    expect(toRestoreText(plan.v6)).toBe('');
    expect(plan.hostCommands).toEqual([]);
  });

  test('the Environment/Variables blocks are exactly the seed\'s', () => {
    const r = resolveIptablesConfig({ argv: SEED_ARGS, env: { DNS_AGENT: '' }, lookupUid: () => undefined, interfaceAddresses: () => V4_HOST });
    if (r.help) throw new Error('unexpected help');
    const blocks = environmentBlock({ DNS_AGENT: '' }) + variablesBlock(r.config);
    expect(seedLog().startsWith(blocks)).toBe(true);
  });

  test('dry-run output is byte-identical to the seed log up to the iptables-save echo (temp names aside)', async () => {
    const { istioIptables } = dryRunCommands();
    const run = await runCommand(istioIptables, [...SEED_ARGS, '-n'], { DNS_AGENT: '' });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const seed = seedLog();
    const upToSave = seed.slice(0, seed.indexOf('iptables-save \n') + 'iptables-save \n'.length);
    expect(normalizeTempNames(run.stdout)).toBe(normalizeTempNames(upToSave));
    // The names follow Go's ioutil.TempFile pattern in the OS temp dir.
    expect(run.stdout).toMatch(/^Writing following contents to rules file: {2}\/tmp\/iptables-rules-1597280892232020591\.txt\d{9}$/m);
    expect(run.stdout).toMatch(/^ip6tables-restore --noflush \/tmp\/ip6tables-rules-\d{19}\.txt\d{9}$/m);
  });
});

interface Case {
  name: string;
  argv: string[];
  env?: Record<string, string>;
  addresses?: string[];
  passwd?: string;
  resolv?: string;
}

const SEED_NO_MODE = ['-p', '15001', '-z', '15006', '-u', '1337'];

const CASES: Case[] = [
  { name: 'defaults-no-flags', argv: [] },
  { name: 'tproxy-wildcard', argv: [...SEED_NO_MODE, '-m', 'TPROXY', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'] },
  { name: 'tproxy-port-list', argv: [...SEED_NO_MODE, '-m', 'TPROXY', '-i', '10.0.0.0/8', '-b', '80,8080', '-t', '1338', '-r', '134'] },
  { name: 'redirect-inbound-port-list', argv: [...SEED_NO_MODE, '-m', 'REDIRECT', '-i', '*', '-b', '80,8080,9090'] },
  {
    name: 'cidr-lists',
    argv: [...SEED_NO_MODE, '-m', 'REDIRECT', '-i', '10.0.0.0/8,172.16.0.1/12', '-x', '10.96.0.0/12,192.168.0.0/16', '-b', ''],
  },
  {
    name: 'excludes',
    argv: [...SEED_NO_MODE, '-i', '*', '-x', '10.1.2.3/32', '-b', '*', '-d', '15020,15021', '-o', '3306,5432'],
  },
  {
    name: 'outbound-ports-include-q',
    argv: [...SEED_NO_MODE, '-i', '10.0.0.0/8', '-x', '10.0.5.0/24', '-b', '*', '-q', '443,8443'],
  },
  { name: 'outbound-ports-include-q-no-cidr', argv: [...SEED_NO_MODE, '-i', '', '-b', '', '-q', '5432'] },
  { name: 'exclude-interfaces-c', argv: [...SEED_NO_MODE, '-i', '*', '-b', '*', '-d', '15020', '-c', 'eth1,eth2'] },
  { name: 'exclude-interfaces-c-tproxy', argv: [...SEED_NO_MODE, '-m', 'TPROXY', '-i', '*', '-b', '*', '-c', 'eth1'] },
  { name: 'kube-virt-wildcard', argv: [...SEED_NO_MODE, '-i', '*', '-b', '*', '-k', 'vnet0,vnet1'] },
  { name: 'kube-virt-cidrs', argv: [...SEED_NO_MODE, '-i', '10.0.0.0/8,10.10.0.0/16', '-b', '*', '-k', 'vnet0'] },
  {
    name: 'ipv6-seed-args',
    argv: [...SEED_NO_MODE, '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'],
    addresses: V6_HOST,
  },
  {
    name: 'ipv6-mixed-cidrs',
    argv: [...SEED_NO_MODE, '-i', 'fd00:1:0:0:0:0:0:0/64,10.0.0.0/8', '-x', 'fd00:1:0:0:0:0:0:1/128,FD00:2::/48,10.0.5.0/24', '-b', '80', '-o', '53', '-q', '443', '-c', 'eth1', '-k', 'vnet0'],
    addresses: V6_HOST,
  },
  { name: 'ipv6-tproxy', argv: [...SEED_NO_MODE, '-m', 'TPROXY', '-i', '*', '-b', '*', '-d', '15020'], addresses: V6_HOST },
  { name: 'uid-omitted-passwd-1500', argv: ['-i', '*', '-b', '*'], passwd: PASSWD_1500 },
  { name: 'uid-omitted-no-passwd', argv: ['-i', '*', '-b', '*'] },
  { name: 'uid-omitted-envoy-user', argv: ['-i', '*', '-b', '*'], env: { ENVOY_USER: 'root' }, passwd: PASSWD_1500 },
  { name: 'uid-given-gid-omitted', argv: ['-u', '1337,1338', '-i', '*'] },
  { name: 'gid-given', argv: ['-u', '1337', '-g', '3000', '-i', '*'] },
  {
    name: 'env-only',
    argv: [],
    env: {
      ENVOY_PORT: '16001',
      INBOUND_CAPTURE_PORT: '16006',
      PROXY_UID: '1400',
      ISTIO_INBOUND_INTERCEPTION_MODE: 'REDIRECT',
      ISTIO_INBOUND_PORTS: '*',
      ISTIO_LOCAL_EXCLUDE_PORTS: '15020',
      ISTIO_SERVICE_CIDR: '*',
      ISTIO_SERVICE_EXCLUDE_CIDR: '10.96.0.0/12',
      ISTIO_OUTBOUND_PORTS: '443',
      ISTIO_EXCLUDE_INTERFACES: 'eth9',
    },
  },
  { name: 'flag-beats-env', argv: ['-p', '15001', '-x', ''], env: { ENVOY_PORT: '16001', ISTIO_SERVICE_EXCLUDE_CIDR: '10.0.0.0/8', ISTIO_SERVICE_CIDR: '*' } },
  { name: 'restore-format-false', argv: [...SEED_ARGS, '-f=false'] },
  { name: 'mode-empty-is-redirect', argv: [...SEED_NO_MODE, '-m', '', '-i', '*', '-b', '*'] },
  { name: 'dns-seed-args', argv: [...SEED_ARGS, '--redirect-dns'], resolv: 'nameserver 10.96.0.10\nsearch ns.svc.cluster.local\n' },
  { name: 'dns-capture-all', argv: [...SEED_NO_MODE, '-i', '*', '-b', '*', '--redirect-dns', '--capture-all-dns'] },
  {
    name: 'dns-ipv6-servers-excludes',
    argv: [...SEED_NO_MODE, '-i', '*', '-b', '*', '-o', '5432', '--redirect-dns', '--dns-resolv-conf', '/test/resolv.conf'],
    addresses: V6_HOST,
    resolv: 'nameserver 10.96.0.10\nnameserver fd00:10::a\nnameserver fe80::1%eth0\n',
  },
  { name: 'dns-env-16', argv: [...SEED_ARGS], env: { DNS_CAPTURE: 'true' }, resolv: 'nameserver 10.96.0.10\n' },
];

describe('dry-run goldens', () => {
  test.each(CASES)('$name', async (c) => {
    const { istioIptables } = dryRunCommands({ ...(c.addresses ? { addresses: c.addresses } : {}), ...(c.passwd ? { passwd: c.passwd } : {}), ...(c.resolv !== undefined ? { resolv: c.resolv } : {}) });
    const run = await runCommand(istioIptables, [...c.argv, '-n'], c.env ?? {});
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expectGolden(`cases/${c.name}.golden`, normalizeTempNames(run.stdout));
  });
});

describe('cleanup goldens (dry run)', () => {
  test('istio-clean-iptables with no flags', async () => {
    const { istioCleanIptables } = dryRunCommands();
    const run = await runCommand(istioCleanIptables, ['-n']);
    expect(run.code).toBe(0);
    expectGolden('cases/clean-no-flags.golden', run.stdout);
  });

  test('istio-iptables --cleanup-only with -c/-k/TPROXY flags prints the same as istio-clean-iptables', async () => {
    const { istioIptables, istioCleanIptables } = dryRunCommands();
    const flags = ['-m', 'TPROXY', '-b', '*', '-i', '10.0.0.0/8', '-c', 'eth1', '-k', 'vnet0', '-t', '1338', '-r', '134', '-n'];
    const a = await runCommand(istioIptables, [...flags, '--cleanup-only']);
    const b = await runCommand(istioCleanIptables, flags);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expectGolden('cases/cleanup-only-tproxy-c-k.golden', a.stdout);
  });
});
