/**
 * PURE rule builder: config → an ordered capture plan (host `ip` commands, IPv4 rules,
 * IPv6 rules) → `iptables-restore` text or one command per rule; and the cleanup plan.
 *
 * REDIRECT rules and their order are Istio 1.6.5's (the seed's golden): port-22 RETURN first
 * in ISTIO_INBOUND, `-A OUTPUT -p tcp -j ISTIO_OUTPUT`, three uid rules then three gid rules.
 * Additions from current Istio, placed as SPEC §9 says: `-c` RETURN pairs before all other
 * rules, `-q` port includes after the RETURN rules and before the CIDR includes, TPROXY
 * `--on-port` = the inbound capture port (-z). IPv6 mirrors the IPv4 logic (1.6's IPv6
 * kube-virt branch inserted RETURN where IPv4 inserts ISTIO_REDIRECT; we mirror IPv4).
 * No I/O: the same input always gives the same text.
 */
import type { IptablesConfig } from './options.js';
import { separateV4V6, splitList } from './net.js';
import { OUTPUT_DNS_CHAIN, addDnsRules } from './dns.js';

export type Table = 'filter' | 'mangle' | 'nat' | 'raw';

/** One rule: `-A chain params…` or `-I chain position params…` in `table`. */
export interface Rule {
  table: Table;
  chain: string;
  /** Full iptables arguments after `-t table`: `['-A', chain, …]` or `['-I', chain, '1', …]`. */
  params: string[];
}

/** A command for the executor; `onFailure` says what a non-zero exit means. */
export interface HostCommand {
  cmd: string;
  args: string[];
  /** `fail`: stop and exit 1 (1.6 RunOrFail). `fallback`: run `fallback` instead (which must succeed). */
  onFailure: 'fail' | 'fallback' | 'ignore';
  fallback?: HostCommand;
  /** Hide the command's stderr (1.6 RunQuietlyAndIgnore); the echo is still printed. */
  quiet?: boolean;
}

export interface CapturePlan {
  /** `ip` commands run before the rules are restored (IPv6 `::6` on lo, TPROXY policy routing). */
  hostCommands: HostCommand[];
  v4: Rule[];
  v6: Rule[];
}

export const CHAIN = {
  OUTPUT: 'ISTIO_OUTPUT',
  INBOUND: 'ISTIO_INBOUND',
  DIVERT: 'ISTIO_DIVERT',
  TPROXY: 'ISTIO_TPROXY',
  REDIRECT: 'ISTIO_REDIRECT',
  IN_REDIRECT: 'ISTIO_IN_REDIRECT',
  DROP: 'ISTIO_DROP',
  OUTPUT_DNS: OUTPUT_DNS_CHAIN,
} as const;

/** Every chain istio-iptables may create, by table. */
export const ISTIO_CHAINS: ReadonlySet<string> = new Set(Object.values(CHAIN));

export const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING']);

/** Accumulates rules in order, like Istio's IptablesBuilderImpl. */
class RuleList {
  readonly rules: Rule[] = [];
  append(chain: string, table: Table, ...params: string[]): void {
    this.rules.push({ table, chain, params: ['-A', chain, ...params] });
  }
  insert(chain: string, table: Table, position: number, ...params: string[]): void {
    this.rules.push({ table, chain, params: ['-I', chain, String(position), ...params] });
  }
}

interface Family {
  rules: RuleList;
  loopback: string; // 127.0.0.1/32 | ::1/128
  passthroughSource: string; // 127.0.0.6/32 | ::6/128
  excludes: string[];
  includeWildcard: boolean;
  includes: string[];
  ipv4: boolean;
}

/** Builds the capture plan for `cfg` (SPEC §9). */
export function buildCapturePlan(cfg: Readonly<IptablesConfig>): CapturePlan {
  const tproxy = cfg.mode === 'TPROXY';
  const excludeRanges = separateV4V6(cfg.outboundIPRangesExclude);
  const includeRanges = separateV4V6(cfg.outboundIPRangesInclude);
  const hostCommands: HostCommand[] = [];
  const v4 = new RuleList();
  const v6 = new RuleList();

  if (cfg.enableInboundIPv6) {
    // 127.0.0.6's IPv6 twin: the inbound passthrough cluster binds ::6.
    hostCommands.push({ cmd: 'ip', args: ['-6', 'addr', 'add', '::6/128', 'dev', 'lo'], onFailure: 'fail' });
  }

  const families: Family[] = [
    {
      rules: v4,
      loopback: '127.0.0.1/32',
      passthroughSource: '127.0.0.6/32',
      excludes: excludeRanges.v4,
      includeWildcard: includeRanges.wildcard,
      includes: includeRanges.v4,
      ipv4: true,
    },
  ];
  if (cfg.enableInboundIPv6) {
    families.push({
      rules: v6,
      loopback: '::1/128',
      passthroughSource: '::6/128',
      excludes: excludeRanges.v6,
      includeWildcard: includeRanges.wildcard,
      includes: includeRanges.v6,
      ipv4: false,
    });
  }

  for (const fam of families) {
    const r = fam.rules;
    // TPROXY (mangle) inbound is IPv4 only, as in 1.6; IPv6 inbound always uses nat REDIRECT.
    const famTproxy = tproxy && fam.ipv4;

    // -c: excluded interfaces short-circuit before anything else.
    for (const ifName of splitList(cfg.excludeInterfaces)) {
      r.append('PREROUTING', 'nat', '-i', ifName, '-j', 'RETURN');
      r.append('OUTPUT', 'nat', '-o', ifName, '-j', 'RETURN');
    }
    if (famTproxy) {
      for (const ifName of splitList(cfg.excludeInterfaces)) {
        r.append('PREROUTING', 'mangle', '-i', ifName, '-j', 'RETURN');
        r.append('OUTPUT', 'mangle', '-o', ifName, '-j', 'RETURN');
      }
    }

    // --drop-invalid (current Istio): out-of-window packets are dropped instead of reset.
    if (cfg.dropInvalid) {
      r.append('PREROUTING', 'mangle', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', CHAIN.DROP);
      r.append(CHAIN.DROP, 'mangle', '-j', 'DROP');
    }

    r.append(CHAIN.REDIRECT, 'nat', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', cfg.proxyPort);
    r.append(CHAIN.IN_REDIRECT, 'nat', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', cfg.inboundCapturePort);

    addInbound(cfg, fam, famTproxy, hostCommands);

    const dns = cfg.redirectDns;
    r.append('OUTPUT', 'nat', '-p', 'tcp', '-j', CHAIN.OUTPUT);
    // DNS capture: UDP has to reach ISTIO_OUTPUT too (1.6 sends only TCP there).
    if (dns) r.append('OUTPUT', 'nat', '-p', 'udp', '-j', CHAIN.OUTPUT);
    for (const p of splitList(cfg.outboundPortsExclude)) {
      r.append(CHAIN.OUTPUT, 'nat', '-p', 'tcp', '--dport', p, '-j', 'RETURN');
      if (dns) r.append(CHAIN.OUTPUT, 'nat', '-p', 'udp', '--dport', p, '-j', 'RETURN');
    }
    r.append(CHAIN.OUTPUT, 'nat', '-o', 'lo', '-s', fam.passthroughSource, '-j', 'RETURN');
    for (const [owner, ids] of [
      ['--uid-owner', splitList(cfg.proxyUid)],
      ['--gid-owner', splitList(cfg.proxyGid)],
    ] as const) {
      for (const id of ids) {
        // app → VIP → Envoy outbound → Envoy inbound → app, over lo: send to inbound capture
        // (with DNS capture, not the agent's TCP DNS to a server on lo: Istio excludes 53 for uids).
        const noDns = dns && owner === '--uid-owner' ? ['-p', 'tcp', '!', '--dport', '53'] : [];
        r.append(CHAIN.OUTPUT, 'nat', '-o', 'lo', '!', '-d', fam.loopback, ...noDns, '-m', 'owner', owner, id, '-j', CHAIN.IN_REDIRECT);
        // app → app by endpoint address over lo: not captured (except DNS to a server on lo).
        r.append(CHAIN.OUTPUT, 'nat', '-o', 'lo', ...(dns ? ['-p', 'tcp', '!', '--dport', '53'] : []), '-m', 'owner', '!', owner, id, '-j', 'RETURN');
        // the proxy's own traffic: never captured (no loops).
        r.append(CHAIN.OUTPUT, 'nat', '-m', 'owner', owner, id, '-j', 'RETURN');
      }
    }
    if (dns) addDnsRules(r, cfg, fam.ipv4);
    r.append(CHAIN.OUTPUT, 'nat', '-d', fam.loopback, '-j', 'RETURN');
    for (const cidr of fam.excludes) r.append(CHAIN.OUTPUT, 'nat', '-d', cidr, '-j', 'RETURN');

    // -k: traffic from VM interfaces skips inbound capture (the include step below may redirect it).
    for (const ifName of splitList(cfg.kubevirtInterfaces)) r.insert('PREROUTING', 'nat', 1, '-i', ifName, '-j', 'RETURN');

    // -q: ports captured whatever the destination.
    for (const p of splitList(cfg.outboundPortsInclude)) {
      r.append(CHAIN.OUTPUT, 'nat', '-p', 'tcp', '--dport', p, '-j', CHAIN.REDIRECT);
    }

    if (fam.includeWildcard) {
      r.append(CHAIN.OUTPUT, 'nat', '-j', CHAIN.REDIRECT);
      for (const ifName of splitList(cfg.kubevirtInterfaces)) r.insert('PREROUTING', 'nat', 1, '-i', ifName, '-j', CHAIN.REDIRECT);
    } else if (fam.includes.length > 0) {
      for (const cidr of fam.includes) {
        for (const ifName of splitList(cfg.kubevirtInterfaces)) {
          r.insert('PREROUTING', 'nat', 1, '-i', ifName, '-d', cidr, '-j', CHAIN.REDIRECT);
        }
        r.append(CHAIN.OUTPUT, 'nat', '-d', cidr, '-j', CHAIN.REDIRECT);
      }
      r.append(CHAIN.OUTPUT, 'nat', '-j', 'RETURN');
    }

    if (famTproxy) {
      // Replies from 127.0.0.1 to remote peers take the TPROXY policy route back to Envoy.
      r.append('OUTPUT', 'mangle', '-p', 'tcp', '-s', '127.0.0.1/32', '!', '-d', '127.0.0.1/32', '-j', 'MARK', '--set-mark', cfg.inboundTProxyMark);
    }
  }
  return { hostCommands, v4: v4.rules, v6: v6.rules };
}

function addInbound(cfg: Readonly<IptablesConfig>, fam: Family, tproxy: boolean, hostCommands: HostCommand[]): void {
  if (cfg.inboundPortsInclude === '') return;
  const r = fam.rules;
  let table: Table = 'nat';
  if (tproxy) {
    // Marked packets are routed to lo by table <r>; TPROXY hands new connections to -z.
    r.append(CHAIN.DIVERT, 'mangle', '-j', 'MARK', '--set-mark', cfg.inboundTProxyMark);
    r.append(CHAIN.DIVERT, 'mangle', '-j', 'ACCEPT');
    hostCommands.push(...tproxyRouteCommands(cfg));
    r.append(
      CHAIN.TPROXY, 'mangle', '!', '-d', fam.loopback, '-p', 'tcp', '-j', 'TPROXY',
      '--tproxy-mark', `${cfg.inboundTProxyMark}/0xffffffff`, '--on-port', cfg.inboundCapturePort,
    );
    table = 'mangle';
  }
  r.append('PREROUTING', table, '-p', 'tcp', '-j', CHAIN.INBOUND);
  if (cfg.inboundPortsInclude === '*') {
    // Never capture ssh.
    r.append(CHAIN.INBOUND, table, '-p', 'tcp', '--dport', '22', '-j', 'RETURN');
    for (const p of splitList(cfg.inboundPortsExclude)) r.append(CHAIN.INBOUND, table, '-p', 'tcp', '--dport', p, '-j', 'RETURN');
    if (tproxy) {
      r.append(CHAIN.INBOUND, 'mangle', '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', CHAIN.DIVERT);
      r.append(CHAIN.INBOUND, 'mangle', '-p', 'tcp', '-j', CHAIN.TPROXY);
    } else {
      r.append(CHAIN.INBOUND, 'nat', '-p', 'tcp', '-j', CHAIN.IN_REDIRECT);
    }
  } else {
    for (const p of splitList(cfg.inboundPortsInclude)) {
      if (tproxy) {
        r.append(CHAIN.INBOUND, 'mangle', '-p', 'tcp', '--dport', p, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', CHAIN.DIVERT);
        r.append(CHAIN.INBOUND, 'mangle', '-p', 'tcp', '--dport', p, '-j', CHAIN.TPROXY);
      } else {
        r.append(CHAIN.INBOUND, 'nat', '-p', 'tcp', '--dport', p, '-j', CHAIN.IN_REDIRECT);
      }
    }
  }
}

/** 1.6's TPROXY policy routing: marked packets use table <r>, whose default route is local via lo. */
function tproxyRouteCommands(cfg: Readonly<IptablesConfig>): HostCommand[] {
  return [
    { cmd: 'ip', args: ['-f', 'inet', 'rule', 'add', 'fwmark', cfg.inboundTProxyMark, 'lookup', cfg.inboundTProxyRouteTable], onFailure: 'fail' },
    {
      cmd: 'ip',
      args: ['-f', 'inet', 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', cfg.inboundTProxyRouteTable],
      // The route may already exist; 1.6 then prints every table and carries on.
      onFailure: 'fallback',
      fallback: { cmd: 'ip', args: ['route', 'show', 'table', 'all'], onFailure: 'fail' },
    },
  ];
}

const TABLE_ORDER: readonly Table[] = ['filter', 'mangle', 'nat', 'raw'];

/**
 * `iptables-restore` input for `rules`: per table (filter, mangle, nat; empty ones left out),
 * `* <table>`, a `-N` line for each non-built-in chain in first-use order, the rules in
 * order, `COMMIT`. Empty string for no rules (the seed's empty IPv6 file).
 */
export function toRestoreText(rules: readonly Rule[]): string {
  const lines = new Map<Table, string[]>(TABLE_ORDER.map((t) => [t, []]));
  const seen = new Set<string>();
  for (const r of rules) {
    const key = `${r.chain}:${r.table}`;
    if (seen.has(key) || BUILTIN_CHAINS.has(r.chain)) continue;
    seen.add(key);
    lines.get(r.table)?.push(`-N ${r.chain}`);
  }
  for (const r of rules) lines.get(r.table)?.push(r.params.join(' '));
  let out = '';
  for (const t of TABLE_ORDER) {
    const ls = lines.get(t) ?? [];
    if (ls.length === 0) continue;
    out += `* ${t}\n${ls.map((l) => `${l}\n`).join('')}COMMIT\n`;
  }
  return out;
}

/** One command per chain creation and per rule (1.6 `--restore-format=false`). */
export function toCommands(bin: 'iptables' | 'ip6tables', rules: readonly Rule[]): HostCommand[] {
  const out: HostCommand[] = [];
  const seen = new Set<string>();
  for (const r of rules) {
    const key = `${r.chain}:${r.table}`;
    if (seen.has(key) || BUILTIN_CHAINS.has(r.chain)) continue;
    seen.add(key);
    out.push({ cmd: bin, args: ['-t', r.table, '-N', r.chain], onFailure: 'fail' });
  }
  for (const r of rules) out.push({ cmd: bin, args: ['-t', r.table, ...r.params], onFailure: 'fail' });
  return out;
}

/** Chains to flush and delete, in an order where nothing still refers to a chain being deleted. */
const CLEANUP_CHAINS: ReadonlyArray<readonly [Table, string]> = [
  ['nat', CHAIN.OUTPUT],
  ['nat', CHAIN.OUTPUT_DNS],
  ['raw', CHAIN.OUTPUT_DNS],
  ['raw', CHAIN.INBOUND],
  ['nat', CHAIN.INBOUND],
  ['mangle', CHAIN.INBOUND],
  ['mangle', CHAIN.DIVERT],
  ['mangle', CHAIN.TPROXY],
  ['mangle', CHAIN.DROP],
  ['nat', CHAIN.REDIRECT],
  ['nat', CHAIN.IN_REDIRECT],
];

/** The 1.6 jumps `istio-clean-iptables` always removes, whatever the flags. */
const FIXED_JUMPS: ReadonlyArray<readonly [Table, string, string[]]> = [
  ['nat', 'PREROUTING', ['-p', 'tcp', '-j', CHAIN.INBOUND]],
  ['mangle', 'PREROUTING', ['-p', 'tcp', '-j', CHAIN.INBOUND]],
  ['nat', 'OUTPUT', ['-p', 'tcp', '-j', CHAIN.OUTPUT]],
];

export interface CleanupPlan {
  /** Per binary: rule deletions from built-in chains, then chain flush/delete commands. */
  deletes: { bin: 'iptables' | 'ip6tables'; ruleDeletes: HostCommand[]; chainDeletes: HostCommand[] }[];
  /** TPROXY routing and the IPv6 `::6` address, removed if present. */
  hostCommands: HostCommand[];
}

/**
 * What cleanup removes for `cfg`: every rule the config would put in a built-in chain (for
 * both modes, so a TPROXY setup is cleaned without `-m TPROXY`), 1.6's fixed jumps, then
 * every Istio chain. Everything is best effort: a missing rule or chain is not an error.
 * Rules jumping to Istio chains that this list misses are found from the live tables by
 * the executor (`sweepJumps`). DNS capture's chains (nat and raw ISTIO_OUTPUT_DNS, raw
 * ISTIO_INBOUND) and jumps are always removed too.
 */
export function buildCleanupPlan(cfg: Readonly<IptablesConfig>): CleanupPlan {
  const plans = (['REDIRECT', 'TPROXY'] as const).map((mode) =>
    // DNS capture on for all (captureAllDns: every built-in jump it can add, raw PREROUTING included).
    buildCapturePlan({ ...cfg, mode, inboundInterceptionMode: mode, enableInboundIPv6: true, dropInvalid: true, redirectDns: true, captureAllDns: true }),
  );
  const deletes: CleanupPlan['deletes'] = [];
  for (const bin of ['iptables', 'ip6tables'] as const) {
    const seen = new Set<string>();
    const ruleDeletes: HostCommand[] = [];
    const addDelete = (table: Table, chain: string, params: string[]) => {
      const args = ['-t', table, '-D', chain, ...params];
      const key = args.join(' ');
      if (seen.has(key)) return;
      seen.add(key);
      ruleDeletes.push({ cmd: bin, args, onFailure: 'ignore', quiet: true });
    };
    for (const [table, chain, params] of FIXED_JUMPS) addDelete(table, chain, params);
    for (const plan of plans) {
      for (const r of bin === 'iptables' ? plan.v4 : plan.v6) {
        if (!BUILTIN_CHAINS.has(r.chain)) continue;
        const params = r.params[0] === '-I' ? r.params.slice(3) : r.params.slice(2);
        addDelete(r.table, r.chain, params);
      }
    }
    const chainDeletes: HostCommand[] = CLEANUP_CHAINS.flatMap(([table, chain]) => [
      { cmd: bin, args: ['-t', table, '-F', chain], onFailure: 'ignore' as const, quiet: true },
      { cmd: bin, args: ['-t', table, '-X', chain], onFailure: 'ignore' as const, quiet: true },
    ]);
    deletes.push({ bin, ruleDeletes, chainDeletes });
  }
  const hostCommands: HostCommand[] = [
    { cmd: 'ip', args: ['-f', 'inet', 'rule', 'del', 'fwmark', cfg.inboundTProxyMark, 'lookup', cfg.inboundTProxyRouteTable], onFailure: 'ignore', quiet: true },
    { cmd: 'ip', args: ['-f', 'inet', 'route', 'del', 'local', 'default', 'dev', 'lo', 'table', cfg.inboundTProxyRouteTable], onFailure: 'ignore', quiet: true },
    { cmd: 'ip', args: ['-6', 'addr', 'del', '::6/128', 'dev', 'lo'], onFailure: 'ignore', quiet: true },
  ];
  return { deletes, hostCommands };
}
