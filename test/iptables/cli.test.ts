/**
 * Flag handling of `pilot-agent istio-iptables` / `istio-clean-iptables` through the real CLI
 * entry (`main`) and as a spawned process: bad input exits 1 with a message naming the flag
 * (or the env var), --help, accepted injector flags, warnings for what is not implemented.
 */
import { describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { main } from '../../src/cli.js';
import { createIptablesCommands } from '../../src/iptables/command.js';
import { IPTABLES_FLAGS } from '../../src/iptables/options.js';
import { freePorts } from '../support/ports.js';
import { capture, normalizeTempNames, REPO_ROOT, runCommand, SEED_ARGS } from './helpers.js';

async function cli(argv: string[], env: Record<string, string | undefined> = {}) {
  const out = capture();
  const err = capture();
  const code = await main(argv, { env, stdout: out.stream, stderr: err.stream, cwd: process.cwd() });
  await new Promise((r) => setImmediate(r));
  return { code, stdout: out.text(), stderr: err.text() };
}

describe('bad input exits 1 and names the culprit', () => {
  test.each([
    { argv: ['--frobnicate'], expect: 'unknown flag: --frobnicate' },
    { argv: ['-Q', 'x'], expect: 'unknown flag: -Q' },
    { argv: ['-p'], expect: 'flag needs an argument: -p' },
    { argv: ['-p', 'abc'], expect: 'invalid value "abc" for -p/--envoy-port: expected a port number 1-65535' },
    { argv: ['-z', '70000'], expect: 'invalid value "70000" for -z/--inbound-capture-port' },
    { argv: ['--envoy-port='], expect: 'invalid value "" for -p/--envoy-port' },
    { argv: ['-b', '80,http'], expect: 'invalid value "80,http" for -b/--istio-inbound-ports: "http" is not a port number' },
    { argv: ['-d', '*'], expect: 'for -d/--istio-local-exclude-ports: "*" is not a port number' },
    { argv: ['-o', '0'], expect: 'for -o/--istio-local-outbound-ports-exclude: "0" is not a port number' },
    { argv: ['-q', '443;80'], expect: 'for -q/--istio-outbound-ports' },
    { argv: ['-i', '10.0.0.0/33'], expect: 'for -i/--istio-service-cidr: "10.0.0.0/33" is not a CIDR: prefix length 33 is longer than 32' },
    { argv: ['-i', '10.0.0.1'], expect: 'for -i/--istio-service-cidr: "10.0.0.1" is not a CIDR: missing "/<prefix length>"' },
    { argv: ['-i', '10.0.0.256/8'], expect: 'for -i/--istio-service-cidr: "10.0.0.256/8" is not a CIDR' },
    { argv: ['-i', 'fd00::/129'], expect: 'prefix length 129 is longer than 128' },
    { argv: ['-x', '*'], expect: 'invalid value "*" for -x/--istio-service-exclude-cidr: the wildcard is not allowed here' },
    { argv: ['-x', 'example.com/8'], expect: 'for -x/--istio-service-exclude-cidr: "example.com/8" is not a CIDR' },
    { argv: ['-m', 'NONE'], expect: 'invalid value "NONE" for -m/--istio-inbound-interception-mode: unknown mode, expected REDIRECT or TPROXY' },
    { argv: ['-m', 'redirect'], expect: 'unknown mode' },
    { argv: ['-u', 'istio-proxy'], expect: 'for -u/--proxy-uid: "istio-proxy" is not a numeric uid' },
    { argv: ['-g', '1337,x'], expect: 'for -g/--proxy-gid: "x" is not a numeric gid' },
    { argv: ['-c', 'eth 1'], expect: 'for -c/--istio-exclude-interfaces: "eth 1" is not an interface name' },
    { argv: ['-k', 'averyveryverylongname'], expect: 'for -k/--kube-virt-interfaces' },
    { argv: ['-t', 'mark'], expect: 'for -t/--istio-inbound-tproxy-mark: expected a packet mark' },
    { argv: ['-r', ''], expect: 'for -r/--istio-inbound-tproxy-route-table' },
    { argv: ['-n=maybe'], expect: 'invalid argument "maybe" for "-n" flag' },
    { argv: ['--probe-timeout', '5'], expect: 'invalid value "5" for --probe-timeout: expected a positive Go duration' },
    { argv: ['--probe-timeout', '0s'], expect: 'invalid value "0s" for --probe-timeout' },
    { argv: ['--iptables-probe-port', '0'], expect: 'invalid value "0" for --iptables-probe-port: expected a port number' },
    { argv: ['--dual-stack=maybe'], expect: 'invalid argument "maybe" for "--dual-stack" flag' },
    // Istio flags this istio-iptables does not implement fail at start, naming themselves.
    { argv: ['-e', '15008'], expect: '-e/--inbound-tunnel-port is not supported: the 1.6 iptables rules have no HBONE tunnel port' },
    { argv: ['--reconcile'], expect: '--reconcile is not supported: replacing a differing rule set is not implemented' },
    { argv: ['--network-namespace', '/var/run/netns/x'], expect: '--network-namespace is not supported' },
    { argv: ['--cni-mode=false'], expect: '--cni-mode is not supported' },
    { argv: ['--force-iptables-binary', 'iptables-legacy'], expect: '--force-iptables-binary is not supported' },
    { argv: ['stray'], expect: 'unexpected argument "stray"' },
  ])('$argv', async (c) => {
    const r = await cli(['istio-iptables', ...c.argv]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(c.expect);
  });

  test.each([
    { env: { ENVOY_PORT: 'x' }, expect: 'invalid value "x" for ENVOY_PORT (env for -p/--envoy-port)' },
    { env: { ISTIO_SERVICE_EXCLUDE_CIDR: '*' }, expect: 'for ISTIO_SERVICE_EXCLUDE_CIDR (env for -x/--istio-service-exclude-cidr)' },
    { env: { ISTIO_INBOUND_INTERCEPTION_MODE: 'tproxy' }, expect: 'for ISTIO_INBOUND_INTERCEPTION_MODE (env for -m/' },
    { env: { DRY_RUN: 'yes' }, expect: 'invalid value "yes" for DRY_RUN (env for -n/--dry-run): expected true or false' },
    { env: { RECONCILE: 'true' }, expect: 'RECONCILE (env for --reconcile) is not supported' },
    { env: { PROBE_TIMEOUT: 'soon' }, expect: 'invalid value "soon" for PROBE_TIMEOUT (env for --probe-timeout)' },
    { env: { ISTIO_DUAL_STACK: 'yes' }, expect: 'invalid value "yes" for ISTIO_DUAL_STACK (env for --dual-stack)' },
  ])('env $env', async (c) => {
    const r = await cli(['istio-iptables'], c.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(c.expect);
  });

  test('a bad flag value is reported even when the env var is fine (the flag wins)', async () => {
    const r = await cli(['istio-iptables', '-p', '0'], { ENVOY_PORT: '15001' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('for -p/--envoy-port');
  });

  test('istio-clean-iptables rejects unknown flags too', async () => {
    const r = await cli(['istio-clean-iptables', '--nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown flag: --nope');
  });

  test('no usable interface address is an error (Istio cannot pick IPv4 or IPv6)', async () => {
    const { istioIptables } = createIptablesCommands({ interfaceAddresses: () => ['127.0.0.1', '::1'], readPasswd: () => undefined });
    const r = await runCommand(istioIptables, [...SEED_ARGS, '-n']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no valid local IP address found');
  });
});

describe('help', () => {
  test('--help lists every flag, its default and its env var; exit 0', async () => {
    const r = await cli(['istio-iptables', '--help']);
    expect(r.code).toBe(0);
    for (const f of IPTABLES_FLAGS) {
      expect(r.stdout).toContain(`--${f.long}`);
      if (f.short) expect(r.stdout).toContain(`-${f.short}, --${f.long}`);
      if (f.env) expect(r.stdout).toMatch(new RegExp(`^ {2}${f.env} +--${f.long}$`, 'm'));
    }
    expect(r.stdout).toContain('(default 15001)');
    const clean = await cli(['istio-clean-iptables', '-h']);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain('pilot-agent istio-clean-iptables [flags]');
  });
});

describe('accepted flags from current injectors', () => {
  const deps = { interfaceAddresses: () => ['10.1.2.3'], readPasswd: () => undefined };

  test('--skip-rule-apply writes nothing; --run-validation without redirection exits 126 within the probe timeout', async () => {
    const { istioIptables } = createIptablesCommands(deps);
    const [p, z, probe] = await freePorts(3);
    const started = Date.now();
    const ports = ['-p', String(p), '-z', String(z), '--iptables-probe-port', String(probe), '--probe-timeout', '400ms'];
    const r = await runCommand(istioIptables, [...SEED_ARGS, ...ports, '--run-validation', '--skip-rule-apply']);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).toBe(126);
    expect(r.stdout).toBe('');
    // Nothing redirects in this namespace: the probe reached its own destination.
    expect(r.stderr).toContain(`to 127.0.0.6:${probe} was not redirected to 127.0.0.1:${p} or 127.0.0.1:${z}: it reached 127.0.0.6:${probe} itself`);
  });

  test('--run-validation: a capture port already taken by someone else is named when none can be opened', async () => {
    const { istioIptables } = createIptablesCommands(deps);
    const net = await import('node:net');
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const r = await runCommand(istioIptables, ['-p', String(port), '-z', String(port), '--run-validation', '--skip-rule-apply', '--probe-timeout', '1s']);
      expect(r.code).toBe(126);
      expect(r.stderr).toContain(`no capture listener could be opened (127.0.0.1:${port}: listen EADDRINUSE`);
    } finally {
      taken.close();
    }
  });

  test('--skip-rule-apply wins over --cleanup-only (current Istio: istio-cni did the work)', async () => {
    const { istioIptables } = createIptablesCommands(deps);
    const r = await runCommand(istioIptables, ['--skip-rule-apply', '--cleanup-only', '-n']);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  test('ENVOY_USER set but empty finds no user: the uid falls back to 1337 (plus root)', async () => {
    const { istioIptables } = createIptablesCommands({ ...deps, readPasswd: () => 'x:x:1500:1500::/:/bin/sh\n' });
    const r = await runCommand(istioIptables, ['-n'], { ENVOY_USER: '' });
    expect(r.stdout).toContain('PROXY_UID=1337,0\nPROXY_GID=1337,0\n');
    const named = await runCommand(istioIptables, ['-n'], { ENVOY_USER: 'x' });
    expect(named.stdout).toContain('PROXY_UID=1500,0\n');
  });

  test('--force-apply, --log_as_json, -q, -o, -k, -c and the probe flags are accepted and shape the rules', async () => {
    const { istioIptables } = createIptablesCommands(deps);
    const r = await runCommand(istioIptables, [
      ...SEED_ARGS, '-q', '443', '-o', '5432', '-k', 'vnet0', '-c', 'eth1', '--force-apply', '--log_as_json', '--iptables-probe-port', '15002', '--probe-timeout=5s', '-n',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('-A ISTIO_OUTPUT -p tcp --dport 443 -j ISTIO_REDIRECT');
    expect(r.stdout).toContain('-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN');
    expect(r.stdout).toContain('-I PREROUTING 1 -i vnet0 -j ISTIO_REDIRECT');
    expect(r.stdout).toContain('-A PREROUTING -i eth1 -j RETURN');
  });

  const noRunner = {
    ...deps,
    runner: () => {
      throw new Error('dry run must not run anything');
    },
  };

  test('--native-nftables -n prints the nft -f input (Istio\'s tables) and runs nothing', async () => {
    const { istioIptables } = createIptablesCommands(noRunner);
    const r = await runCommand(istioIptables, [...SEED_ARGS, '--native-nftables', '-n']);
    expect(r.code).toBe(0);
    const script = r.stdout.slice(r.stdout.indexOf('nft -f -\n') + 'nft -f -\n'.length);
    expect(script.split('\n').slice(0, 3)).toEqual([
      'add table inet istio-proxy-nat',
      'flush table inet istio-proxy-nat',
      'add chain inet istio-proxy-nat prerouting { type nat hook prerouting priority -100 ; }',
    ]);
    expect(script).toContain('add rule inet istio-proxy-nat istio-inbound meta l4proto tcp tcp dport 15020 counter return\n');
    expect(script).toContain('add rule inet istio-proxy-nat istio-output counter jump istio-redirect\n');
    expect(script).not.toContain('dport 22');
    // NATIVE_NFTABLES in the env does the same.
    const env = await runCommand(istioIptables, [...SEED_ARGS, '-n'], { NATIVE_NFTABLES: 'true' });
    expect(env.stdout).toBe(r.stdout);
  });

  test('--cleanup-only --native-nftables -n prints the table deletions', async () => {
    const { istioIptables, istioCleanIptables } = createIptablesCommands(noRunner);
    const r = await runCommand(istioIptables, ['--cleanup-only', '--native-nftables', '-n']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('nft -f -\nadd table inet istio-proxy-nat\ndelete table inet istio-proxy-nat\nadd table inet istio-proxy-mangle\n');
    const clean = await runCommand(istioCleanIptables, ['--native-nftables', '-n']);
    expect(clean.stdout).toBe(r.stdout);
  });

  test.each([
    { argv: ['--redirect-dns'], env: {} },
    { argv: [], env: { DNS_CAPTURE: 'true' } },
    { argv: [], env: { ISTIO_META_DNS_CAPTURE: 'true' } },
    { argv: [], env: { REDIRECT_DNS: 'true' } },
  ])('DNS capture request $argv $env adds the DNS rules for the resolv.conf servers', async (c) => {
    const { istioIptables } = createIptablesCommands({ ...deps, readFile: (p) => (p === '/etc/resolv.conf' ? 'nameserver 10.96.0.10\n' : undefined) });
    const plain = await runCommand(istioIptables, [...SEED_ARGS, '-n'], {});
    const r = await runCommand(istioIptables, [...SEED_ARGS, '-n', ...c.argv], c.env);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('-A OUTPUT -p udp -j ISTIO_OUTPUT\n');
    expect(r.stdout).toContain('-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d 10.96.0.10/32 -j REDIRECT --to-port 15053\n');
    expect(r.stdout).toContain('* raw\n');
    expect(plain.stdout).not.toMatch(/\b53\b/);
  });

  test('--redirect-dns with no nameservers warns and adds nothing; an unreadable resolv.conf is an error naming it', async () => {
    const none = createIptablesCommands({ ...deps, readFile: () => '# no servers\n' });
    const plain = await runCommand(none.istioIptables, [...SEED_ARGS, '-n']);
    const r = await runCommand(none.istioIptables, [...SEED_ARGS, '-n', '--redirect-dns']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('--redirect-dns is set, but --capture-all-dns is false and /etc/resolv.conf names no DNS servers: DNS capture disabled');
    expect(normalizeTempNames(r.stdout)).toBe(normalizeTempNames(plain.stdout));
    const missing = createIptablesCommands({ ...deps, readFile: () => undefined });
    const bad = await runCommand(missing.istioIptables, [...SEED_ARGS, '-n', '--redirect-dns', '--dns-resolv-conf', '/nope/resolv.conf']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('failed to load /nope/resolv.conf (--dns-resolv-conf)');
  });

  test('--log_output_level=default:error hides the warning; --log_as_json writes JSON', async () => {
    const { istioIptables } = createIptablesCommands({ ...deps, readFile: () => '' });
    const quiet = await runCommand(istioIptables, [...SEED_ARGS, '-n', '--redirect-dns', '--log_output_level=default:error']);
    expect(quiet.stderr).toBe('');
    const json = await runCommand(istioIptables, [...SEED_ARGS, '-n', '--redirect-dns', '--log_as_json']);
    const line = JSON.parse(json.stderr.trim().split('\n')[0] ?? '') as { level: number | string; msg: string; scope: string };
    expect(line.msg).toContain('DNS capture disabled');
    expect(line.scope).toBe('iptables');
  });
});

describe('as a process', () => {
  const bin = path.join(REPO_ROOT, 'bin', 'pilot-agent.js');
  const built = existsSync(path.join(REPO_ROOT, 'dist', 'src', 'iptables', 'command.js'));
  (built ? test : test.skip)('exit status 1 for an unknown flag, 0 for a dry run', async () => {
    const run = promisify(execFile);
    const bad = await run(process.execPath, [bin, 'istio-iptables', '--bogus']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown flag: --bogus');
    const ok = await run(process.execPath, [bin, 'istio-clean-iptables', '-n']);
    expect(ok.stdout).toContain('iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND\n');
  });

  (built ? test : test.skip)('--native-nftables without an nft binary on PATH: exit 1 naming nft', async () => {
    const run = promisify(execFile);
    const r = await run(process.execPath, [bin, 'istio-iptables', ...SEED_ARGS, '--native-nftables'], { env: { PATH: '/nonexistent-for-this-test' } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--native-nftables needs the nft binary, which is missing: executable file "nft" not found in $PATH');
  });
});
