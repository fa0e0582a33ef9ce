/**
 * PURE: the DNS capture rules of `--redirect-dns` (current Istio's `SetupDNSRedir` and its
 * conntrack zones, restated over the 1.6 rule set of SPEC §9; docs/DNS.md):
 * - nat `ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS` after the proxy uid/gid RETURNs (so the agent's own
 *   upstream queries are never captured), per family only when that family has nameservers
 *   (or with `--capture-all-dns`); in it TCP and UDP port 53 to each nameserver (or to any
 *   address) are redirected to the agent on 15053;
 * - raw `OUTPUT -j ISTIO_OUTPUT_DNS`: the proxy's packets to port 53 in conntrack zone 1 and
 *   its answers from 15053 in zone 2; the app's queries to the nameservers in zone 2, and (raw
 *   `PREROUTING -j ISTIO_INBOUND`) the nameservers' answers in zone 1 — two zones, so the
 *   app→agent and agent→server flows of one query never share a conntrack entry.
 * The builder adds `-p udp -j ISTIO_OUTPUT` next to 1.6's TCP-only jump so UDP reaches these.
 */
import { AgentError } from '../errors.js';
import { parseResolvConf } from '../dns/resolv.js';
import type { IptablesConfig } from './options.js';
import { splitList } from './net.js';

export const OUTPUT_DNS_CHAIN = 'ISTIO_OUTPUT_DNS';
export const INBOUND_CHAIN = 'ISTIO_INBOUND';
export const OUTPUT_CHAIN = 'ISTIO_OUTPUT';
/** The agent's DNS port (Istio's constant; DNS_PROXY_ADDR must keep it when capture is on). */
export const AGENT_DNS_PORT = '15053';

export interface RuleSink {
  append(chain: string, table: 'nat' | 'raw', ...params: string[]): void;
}

/** Appends the DNS rules of one family (`ipv4` true: IPv4 servers, /32; false: IPv6, /128). */
export function addDnsRules(r: RuleSink, cfg: Readonly<IptablesConfig>, ipv4: boolean): void {
  const servers = ipv4 ? cfg.dnsServersV4 : cfg.dnsServersV6;
  const mask = ipv4 ? '/32' : '/128';
  const all = cfg.captureAllDns;

  r.append('OUTPUT', 'raw', '-j', OUTPUT_DNS_CHAIN);
  if (all || servers.length > 0) r.append(OUTPUT_CHAIN, 'nat', '-j', OUTPUT_DNS_CHAIN);
  const redirect = (proto: 'tcp' | 'udp', dest: string[]) =>
    r.append(OUTPUT_DNS_CHAIN, 'nat', '-p', proto, '--dport', '53', ...dest, '-j', 'REDIRECT', proto === 'tcp' ? '--to-ports' : '--to-port', AGENT_DNS_PORT);
  if (all) redirect('tcp', []);
  else for (const s of servers) redirect('tcp', ['-d', `${s}${mask}`]);
  if (all) redirect('udp', []);
  else for (const s of servers) redirect('udp', ['-d', `${s}${mask}`]);

  for (const [owner, ids] of [
    ['--uid-owner', splitList(cfg.proxyUid)],
    ['--gid-owner', splitList(cfg.proxyGid)],
  ] as const) {
    for (const id of ids) {
      r.append(OUTPUT_DNS_CHAIN, 'raw', '-p', 'udp', '--dport', '53', '-m', 'owner', owner, id, '-j', 'CT', '--zone', '1');
      r.append(OUTPUT_DNS_CHAIN, 'raw', '-p', 'udp', '--sport', AGENT_DNS_PORT, '-m', 'owner', owner, id, '-j', 'CT', '--zone', '2');
    }
  }
  if (all) {
    r.append('PREROUTING', 'raw', '-j', INBOUND_CHAIN);
    r.append(OUTPUT_DNS_CHAIN, 'raw', '-p', 'udp', '--dport', '53', '-j', 'CT', '--zone', '2');
    r.append(INBOUND_CHAIN, 'raw', '-p', 'udp', '--sport', '53', '-j', 'CT', '--zone', '1');
    return;
  }
  if (servers.length > 0) r.append('PREROUTING', 'raw', '-j', INBOUND_CHAIN);
  for (const s of servers) {
    r.append(OUTPUT_DNS_CHAIN, 'raw', '-p', 'udp', '--dport', '53', '-d', `${s}${mask}`, '-j', 'CT', '--zone', '2');
    r.append(INBOUND_CHAIN, 'raw', '-p', 'udp', '--sport', '53', '-s', `${s}${mask}`, '-j', 'CT', '--zone', '1');
  }
}

/** The nameservers of resolv.conf `path` by family (a zone suffix dropped); exit 1 naming it when unreadable. */
export function dnsServersFrom(readFile: ((p: string) => string | undefined) | undefined, path: string, source: string): { v4: string[]; v6: string[] } {
  const text = readFile?.(path);
  if (text === undefined) {
    throw new AgentError('IPTABLES_FAILED', `failed to load ${path} (${source}): the DNS servers to capture are read from it with --redirect-dns`, { exitCode: 1 });
  }
  const out = { v4: [] as string[], v6: [] as string[] };
  for (const a of parseResolvConf(text).addresses) {
    const bare = a.split('%')[0] as string;
    (bare.includes(':') ? out.v6 : out.v4).push(bare);
  }
  return out;
}
