/**
 * PURE `--native-nftables` builder: config → current Istio's nftables capture (tables
 * `inet istio-proxy-nat` / `istio-proxy-mangle`, the `istio-*` chains) as `nft -f` input,
 * in the order Istio's transaction lists it: per table `add table`, `flush table` (so a
 * re-run replaces rather than duplicates), `add chain` for each chain that has rules, then
 * the rules. Unlike the 1.6 iptables rules (SPEC §9) these are current Istio's: the
 * 15008 tunnel-port RETURN, no port-22 exception, udp twins of `-o` excludes.
 *
 * Rules are built per family into one inet table: IPv6 rules only when IPv6 is enabled.
 * `--redirect-dns` adds current Istio's DNS capture: `istio-output-dns` (nat: redirect port 53
 * to 15053; raw: conntrack zones) and raw `istio-inbound` (zones of the servers' answers).
 */
import type { IptablesConfig } from './options.js';
import { separateV4V6, splitList } from './net.js';

export const NFT_TABLES = ['istio-proxy-nat', 'istio-proxy-mangle', 'istio-proxy-raw'] as const;
export type NftTable = (typeof NFT_TABLES)[number];

/** Istio's HBONE tunnel port: never redirected inbound (not configurable here: -e is not accepted). */
export const INBOUND_TUNNEL_PORT = '15008';
const OUTBOUND_MARK = '1338';
const LOOPBACK_V4 = '127.0.0.1/32';

export interface NftRule {
  table: NftTable;
  chain: string;
  rule: string;
  /** Insert at this position (Istio's InsertRule); undefined appends. */
  index?: number;
}

/** Chain declarations in the order Istio declares them; base chains carry their hook. */
const CHAINS: Record<NftTable, ReadonlyArray<readonly [string, string?]>> = {
  'istio-proxy-nat': [
    ['prerouting', 'type nat hook prerouting priority -100'],
    ['output', 'type nat hook output priority -100'],
    ['istio-inbound'],
    ['istio-redirect'],
    ['istio-in-redirect'],
    ['istio-output'],
    ['istio-output-dns'],
  ],
  'istio-proxy-mangle': [
    ['prerouting', 'type filter hook prerouting priority -150'],
    ['output', 'type route hook output priority -150'],
    ['istio-divert'],
    ['istio-tproxy'],
    ['istio-inbound'],
    ['istio-drop'],
  ],
  'istio-proxy-raw': [
    ['prerouting', 'type filter hook prerouting priority -300'],
    ['output', 'type filter hook output priority -300'],
    ['istio-inbound'],
    ['istio-output-dns'],
  ],
};

class NftRules {
  readonly rules: NftRule[] = [];
  constructor(private readonly ipv6: boolean) {}
  append(table: NftTable, chain: string, ...parts: string[]): void {
    this.rules.push({ table, chain, rule: parts.join(' ') });
  }
  insert(table: NftTable, chain: string, index: number, ...parts: string[]): void {
    this.rules.push({ table, chain, rule: parts.join(' '), index });
  }
  append6(table: NftTable, chain: string, ...parts: string[]): void {
    if (this.ipv6) this.append(table, chain, ...parts);
  }
  insert6(table: NftTable, chain: string, index: number, ...parts: string[]): void {
    if (this.ipv6) this.insert(table, chain, index, ...parts);
  }
}

const NAT: NftTable = 'istio-proxy-nat';
const MANGLE: NftTable = 'istio-proxy-mangle';

const isLoopbackNet = (cidr: string) => cidr.startsWith('127.') || cidr === '::1/128';

/** Builds the rule list for `cfg` (Istio's NftablesConfigurator.Run). */
export function buildNftRules(cfg: Readonly<IptablesConfig>): NftRule[] {
  const r = new NftRules(cfg.enableInboundIPv6);
  const tproxy = cfg.mode === 'TPROXY';
  const exclude = separateV4V6(cfg.outboundIPRangesExclude);
  const include = separateV4V6(cfg.outboundIPRangesInclude);
  const includesLoopback = [...include.v4, ...include.v6].some(isLoopbackNet);
  const dns = cfg.redirectDns;

  for (const ifName of splitList(cfg.excludeInterfaces)) {
    r.append(NAT, 'prerouting', 'iifname', ifName, 'counter', 'return');
    r.append(NAT, 'output', 'oifname', ifName, 'counter', 'return');
  }
  if (tproxy) {
    for (const ifName of splitList(cfg.excludeInterfaces)) {
      r.append(MANGLE, 'prerouting', 'iifname', ifName, 'counter', 'return');
      r.append(MANGLE, 'output', 'oifname', ifName, 'counter', 'return');
    }
  }
  for (const ifName of splitList(cfg.kubevirtInterfaces)) r.insert(NAT, 'prerouting', 0, 'iifname', ifName, 'counter', 'return');
  if (cfg.dropInvalid) {
    r.append(MANGLE, 'prerouting', 'meta l4proto tcp', 'ct state', 'invalid', 'counter', 'jump', 'istio-drop');
    r.append(MANGLE, 'istio-drop', 'counter', 'drop');
  }

  r.append(NAT, 'istio-inbound', 'meta l4proto tcp', 'tcp dport', INBOUND_TUNNEL_PORT, 'counter', 'return');
  r.append(NAT, 'istio-redirect', 'meta l4proto tcp', 'counter', 'redirect to', `:${cfg.proxyPort}`);
  r.append(NAT, 'istio-in-redirect', 'meta l4proto tcp', 'counter', 'redirect to', `:${cfg.inboundCapturePort}`);

  if (cfg.inboundPortsInclude !== '') {
    if (tproxy) addTproxyInbound(cfg, r);
    else addRedirectInbound(cfg, r);
  }

  r.append(NAT, 'output', 'counter', 'jump', 'istio-output');
  for (const p of splitList(cfg.outboundPortsExclude)) {
    r.append(NAT, 'istio-output', 'tcp dport', p, 'counter', 'return');
    r.append(NAT, 'istio-output', 'udp dport', p, 'counter', 'return');
  }
  r.append(NAT, 'istio-output', 'oifname', 'lo', 'ip saddr', '127.0.0.6/32', 'counter', 'return');
  r.append6(NAT, 'istio-output', 'oifname', 'lo', 'ip6 saddr', '::6/128', 'counter', 'return');

  for (const [owner, ids] of [
    ['skuid', splitList(cfg.proxyUid)],
    ['skgid', splitList(cfg.proxyGid)],
  ] as const) {
    for (const id of ids) {
      // With DNS capture the uids' TCP DNS over lo is not sent to inbound (Istio excludes 53 for uids only).
      const ports = dns && owner === 'skuid' ? `{ 53, ${INBOUND_TUNNEL_PORT} }` : INBOUND_TUNNEL_PORT;
      const inRedirect = (daddr: string, loopback: string) =>
        ['oifname', 'lo', 'meta l4proto tcp', daddr, '!=', loopback, 'tcp dport', '!=', ports, owner, id, 'counter', 'jump', 'istio-in-redirect'];
      r.append(NAT, 'istio-output', ...inRedirect('ip daddr', LOOPBACK_V4));
      r.append6(NAT, 'istio-output', ...inRedirect('ip6 daddr', '::1/128'));
      if (!includesLoopback) {
        if (dns) r.append(NAT, 'istio-output', 'oifname', 'lo', 'meta l4proto tcp', 'tcp dport', '!=', '53', owner, '!=', id, 'counter', 'return');
        else r.append(NAT, 'istio-output', 'oifname', 'lo', owner, '!=', id, 'counter', 'return');
      }
      r.append(NAT, 'istio-output', owner, id, 'counter', 'return');
    }
  }
  if (dns) addNftDns(cfg, r);

  r.append(NAT, 'istio-output', 'ip daddr', LOOPBACK_V4, 'counter', 'return');
  r.append6(NAT, 'istio-output', 'ip6 daddr', '::1/128', 'counter', 'return');
  for (const cidr of exclude.v4) r.append(NAT, 'istio-output', 'ip daddr', cidr, 'counter', 'return');
  for (const cidr of exclude.v6) r.append6(NAT, 'istio-output', 'ip6 daddr', cidr, 'counter', 'return');

  for (const p of splitList(cfg.outboundPortsInclude)) r.append(NAT, 'istio-output', 'tcp dport', p, 'counter', 'jump', 'istio-redirect');

  if (include.wildcard) {
    r.append(NAT, 'istio-output', 'counter', 'jump', 'istio-redirect');
    for (const ifName of splitList(cfg.kubevirtInterfaces)) r.insert(NAT, 'prerouting', 0, 'iifname', ifName, 'counter', 'jump', 'istio-redirect');
  } else {
    for (const [fam, cidrs] of [
      ['ip', include.v4],
      ['ip6', include.v6],
    ] as const) {
      for (const cidr of cidrs) {
        for (const ifName of splitList(cfg.kubevirtInterfaces)) {
          (fam === 'ip' ? r.insert.bind(r) : r.insert6.bind(r))(NAT, 'prerouting', 0, 'iifname', ifName, `${fam} daddr`, cidr, 'counter', 'jump', 'istio-redirect');
        }
        (fam === 'ip' ? r.append.bind(r) : r.append6.bind(r))(NAT, 'istio-output', `${fam} daddr`, cidr, 'counter', 'jump', 'istio-redirect');
      }
    }
  }

  if (tproxy) addTproxyMarks(cfg, r);
  return r.rules;
}

/** `--redirect-dns` (Istio's nftables SetupDNSRedir and conntrack zones; see dns.ts for the why). */
function addNftDns(cfg: Readonly<IptablesConfig>, r: NftRules): void {
  const RAW: NftTable = 'istio-proxy-raw';
  const v4 = cfg.dnsServersV4;
  const v6 = cfg.dnsServersV6;
  const all = cfg.captureAllDns;
  const to = ':15053';
  r.append(RAW, 'output', 'counter', 'jump', 'istio-output-dns');
  if (all || v4.length > 0 || v6.length > 0) r.append(NAT, 'istio-output', 'counter', 'jump', 'istio-output-dns');
  for (const proto of ['tcp', 'udp'] as const) {
    if (all) {
      r.append(NAT, 'istio-output-dns', ...(proto === 'tcp' ? ['meta l4proto tcp'] : []), `${proto} dport`, '53', 'counter', 'redirect', 'to', to);
      continue;
    }
    for (const s of v4) r.append(NAT, 'istio-output-dns', 'ip daddr', `${s}/32`, `${proto} dport`, '53', 'counter', 'redirect', 'to', to);
    for (const s of v6) r.append6(NAT, 'istio-output-dns', 'ip6 daddr', `${s}/128`, `${proto} dport`, '53', 'counter', 'redirect', 'to', to);
  }
  for (const [owner, ids] of [
    ['skuid', splitList(cfg.proxyUid)],
    ['skgid', splitList(cfg.proxyGid)],
  ] as const) {
    for (const id of ids) {
      r.append(RAW, 'istio-output-dns', 'udp dport', '53', 'meta', owner, id, 'counter', 'ct', 'zone', 'set', '1');
      r.append(RAW, 'istio-output-dns', 'udp sport', '15053', 'meta', owner, id, 'counter', 'ct', 'zone', 'set', '2');
    }
  }
  if (all) {
    r.append(RAW, 'prerouting', 'counter', 'jump', 'istio-inbound');
    r.append(RAW, 'istio-output-dns', 'udp dport', '53', 'counter', 'ct', 'zone', 'set', '2');
    r.append(RAW, 'istio-inbound', 'udp sport', '53', 'counter', 'ct', 'zone', 'set', '1');
    return;
  }
  if (v4.length > 0 || v6.length > 0) r.append(RAW, 'prerouting', 'counter', 'jump', 'istio-inbound');
  for (const s of v4) {
    r.append(RAW, 'istio-output-dns', 'udp dport', '53', 'ip daddr', `${s}/32`, 'counter', 'ct', 'zone', 'set', '2');
    r.append(RAW, 'istio-inbound', 'udp sport', '53', 'ip saddr', `${s}/32`, 'counter', 'ct', 'zone', 'set', '1');
  }
  for (const s of v6) {
    r.append6(RAW, 'istio-output-dns', 'udp dport', '53', 'ip6 daddr', `${s}/128`, 'counter', 'ct', 'zone', 'set', '2');
    r.append6(RAW, 'istio-inbound', 'udp sport', '53', 'ip6 saddr', `${s}/128`, 'counter', 'ct', 'zone', 'set', '1');
  }
}

function addRedirectInbound(cfg: Readonly<IptablesConfig>, r: NftRules): void {
  r.append(NAT, 'prerouting', 'meta l4proto tcp', 'counter', 'jump', 'istio-inbound');
  if (cfg.inboundPortsInclude === '*') {
    for (const p of splitList(cfg.inboundPortsExclude)) r.append(NAT, 'istio-inbound', 'meta l4proto tcp', 'tcp dport', p, 'counter', 'return');
    r.append(NAT, 'istio-inbound', 'meta l4proto tcp', 'counter', 'jump', 'istio-in-redirect');
  } else {
    for (const p of splitList(cfg.inboundPortsInclude)) {
      r.append(NAT, 'istio-inbound', 'meta l4proto tcp', 'tcp dport', p, 'counter', 'jump', 'istio-in-redirect');
    }
  }
}

function addTproxyInbound(cfg: Readonly<IptablesConfig>, r: NftRules): void {
  const mark = cfg.inboundTProxyMark;
  r.append(MANGLE, 'istio-divert', 'counter', 'meta mark set', mark);
  r.append(MANGLE, 'istio-divert', 'counter', 'accept');
  const to = `:${cfg.inboundCapturePort}`;
  r.append(MANGLE, 'istio-tproxy', 'meta l4proto tcp', 'ip daddr', '!=', LOOPBACK_V4, 'tproxy ip to', to, 'meta mark set', mark, 'counter', 'accept');
  r.append6(MANGLE, 'istio-tproxy', 'meta l4proto tcp', 'ip6 daddr', '!=', '::1/128', 'tproxy ip6 to', to, 'meta mark set', mark, 'counter', 'accept');
  r.append(MANGLE, 'prerouting', 'meta l4proto tcp', 'counter', 'jump', 'istio-inbound');
  if (cfg.inboundPortsInclude === '*') {
    for (const p of splitList(cfg.inboundPortsExclude)) r.append(MANGLE, 'istio-inbound', 'meta l4proto tcp', 'tcp dport', p, 'counter', 'return');
    r.append(MANGLE, 'istio-inbound', 'meta l4proto tcp', 'ct state', 'related,established', 'counter', 'jump', 'istio-divert');
    r.append(MANGLE, 'istio-inbound', 'meta l4proto tcp', 'counter', 'jump', 'istio-tproxy');
  } else {
    for (const p of splitList(cfg.inboundPortsInclude)) {
      r.append(MANGLE, 'istio-inbound', 'meta l4proto tcp', 'ct state', 'related,established', 'tcp dport', p, 'counter', 'jump', 'istio-divert');
      r.append(MANGLE, 'istio-inbound', 'meta l4proto tcp', 'tcp dport', p, 'counter', 'jump', 'istio-tproxy');
    }
  }
}

/** TPROXY's connection marks: keep Envoy → app traffic and the app's replies on the policy route. */
function addTproxyMarks(cfg: Readonly<IptablesConfig>, r: NftRules): void {
  const mark = cfg.inboundTProxyMark;
  r.append(MANGLE, 'prerouting', 'meta l4proto tcp', 'mark', mark, 'counter', 'ct mark set mark');
  r.append(MANGLE, 'output', 'oifname', 'lo', 'meta l4proto tcp', 'mark', mark, 'counter', 'return');
  for (const [owner, ids] of [
    ['skuid', splitList(cfg.proxyUid)],
    ['skgid', splitList(cfg.proxyGid)],
  ] as const) {
    for (const id of ids) {
      r.append(MANGLE, 'output', 'oifname', 'lo', 'meta l4proto tcp', 'ip daddr', '!=', LOOPBACK_V4, owner, id, 'counter', 'meta mark set', OUTBOUND_MARK);
      r.append6(MANGLE, 'output', 'oifname', 'lo', 'meta l4proto tcp', 'ip6 daddr', '!=', '::1/128', owner, id, 'counter', 'meta mark set', OUTBOUND_MARK);
    }
  }
  r.append(MANGLE, 'output', 'meta l4proto tcp', 'ct', 'mark', mark, 'counter', 'meta mark set', 'ct', 'mark');
  r.insert(MANGLE, 'istio-inbound', 0, 'meta l4proto tcp', 'mark', mark, 'counter', 'return');
  r.insert(MANGLE, 'istio-inbound', 1, 'iifname', 'lo', 'meta l4proto tcp', 'ip saddr', '127.0.0.6/32', 'counter', 'return');
  r.insert6(MANGLE, 'istio-inbound', 1, 'iifname', 'lo', 'meta l4proto tcp', 'ip6 saddr', '::6/128', 'counter', 'return');
  r.insert(MANGLE, 'istio-inbound', 2, 'iifname', 'lo', 'meta l4proto tcp', 'mark', '!=', OUTBOUND_MARK, 'counter', 'return');
}

/**
 * `nft -f` input for `rules`: per table (nat, mangle, raw) with rules: add + flush the table,
 * declare the chains that have rules, then each rule. An insert whose position is past the
 * chain's current end (or into an empty chain) becomes an add, as in Istio.
 */
export function toNftScript(rules: readonly NftRule[]): string {
  let out = '';
  for (const table of NFT_TABLES) {
    const mine = rules.filter((r) => r.table === table);
    if (mine.length === 0) continue;
    const used = new Set(mine.map((r) => r.chain));
    out += `add table inet ${table}\nflush table inet ${table}\n`;
    for (const [chain, hook] of CHAINS[table]) {
      if (used.has(chain)) out += `add chain inet ${table} ${chain}${hook ? ` { ${hook} ; }` : ''}\n`;
    }
    const count = new Map<string, number>();
    for (const r of mine) {
      const n = count.get(r.chain) ?? 0;
      if (r.index !== undefined && n > 0 && r.index < n) out += `insert rule inet ${table} ${r.chain} index ${r.index} ${r.rule}\n`;
      else out += `add rule inet ${table} ${r.chain} ${r.rule}\n`;
      count.set(r.chain, n + 1);
    }
  }
  return out;
}

/** `nft -f` input that removes every Istio table (adding first, so a missing table is no error). */
export function nftCleanupScript(): string {
  return NFT_TABLES.map((t) => `add table inet ${t}\ndelete table inet ${t}\n`).join('');
}
