/**
 * PURE: the lookup table built from an NDS name table, and the answer rules (Istio's
 * `pkg/dns/client/dns.go` semantics; SPEC-like text in docs/DNS.md).
 *
 * Expansion: every host gets its fully qualified name (`host.`). A `Kubernetes`-registry host
 * under the proxy's domain also gets `short.ns.`, `short.ns.<first domain label>.` (`svc`), the bare
 * `short.` when it is in the proxy's own namespace, and its alt hosts; any other host (a
 * ServiceEntry arrives as `External`) gets no variants. Each name that does not already end in
 * the first search domain also gets a CNAME `name.<search[0]>.` → name (how a resolver that
 * appends the search domain first still finds it). Hosts without a valid IP are dropped.
 *
 * Answers: exact name, else the most specific `*.suffix.` wildcard; A/AAAA from the table with
 * TTL 30 (CNAME first, address records shuffled); a known name without records of the asked
 * family is NOERROR with no answer; other query types and unknown names are forwarded.
 */
import net from 'node:net';
import type { NameTable } from './nds.js';

export const LOCAL_TTL_SECONDS = 30;

export interface TableContext {
  /** The proxy's namespace (POD_NAMESPACE). */
  namespace: string;
  /** The proxy's DNS domain (`--domain`, e.g. `ns.svc.cluster.local`). */
  domain: string;
  /** resolv.conf `search` domains; only the first is used. */
  search: readonly string[];
}

export interface LookupTable {
  /** Every name answered locally (lower case, trailing dot). */
  readonly hosts: ReadonlySet<string>;
  readonly v4: ReadonlyMap<string, readonly string[]>;
  readonly v6: ReadonlyMap<string, readonly string[]>;
  /** name → target of its CNAME. */
  readonly cname: ReadonlyMap<string, string>;
  /** Entries of the NDS table that produced names. */
  readonly entries: number;
}

export interface AddressRecord {
  type: 'A' | 'AAAA';
  name: string;
  ttl: number;
  class: 'IN';
  data: string;
}
export interface CnameRecord {
  type: 'CNAME';
  name: string;
  ttl: number;
  class: 'IN';
  data: string;
}
export type LocalRecord = AddressRecord | CnameRecord;

/** The proxy domain without a leading namespace label, and its labels (Istio's preprocessing). */
export function proxyDomainParts(ctx: Pick<TableContext, 'namespace' | 'domain'>): { domain: string; parts: string[] } {
  let parts = ctx.domain.split('.');
  if (parts[0] === ctx.namespace) parts = parts.slice(1);
  return { domain: parts.join('.'), parts };
}

/** The names one table entry is answered under (before search-domain CNAMEs). */
export function altHosts(hostname: string, info: NameTable[string], ctx: TableContext): Set<string> {
  const out = new Set<string>();
  if (info.registry !== 'Kubernetes') {
    out.add(hostname.endsWith('.') ? hostname : `${hostname}.`);
    return out;
  }
  if (hostname.endsWith('.')) return out;
  out.add(`${hostname}.`);
  const { domain, parts } = proxyDomainParts(ctx);
  if (domain === '' || !hostname.endsWith(domain)) return out;
  out.add(`${info.shortname}.${info.namespace}.`);
  if (ctx.namespace === info.namespace) out.add(`${info.shortname}.`);
  out.add(`${info.shortname}.${info.namespace}.${parts[0] ?? ''}.`);
  for (const alt of info.altHosts) out.add(`${alt}.`);
  return out;
}

function splitIps(ips: readonly string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const ip of ips) {
    if (net.isIPv4(ip)) v4.push(ip);
    else if (net.isIPv6(ip)) v6.push(ip);
  }
  return { v4, v6 };
}

/** Calls `apply` for each usable entry with its names and addresses (the table and /debug/ndsz share this). */
export function expandTable(nt: NameTable, ctx: TableContext, apply: (names: Set<string>, v4: string[], v6: string[]) => void): void {
  for (const [hostname, info] of Object.entries(nt)) {
    const names = altHosts(hostname, info, ctx);
    const { v4, v6 } = splitIps(info.ips);
    if (v4.length === 0 && v6.length === 0) continue;
    apply(names, v4, v6);
  }
}

export function buildLookupTable(nt: NameTable, ctx: TableContext): LookupTable {
  const hosts = new Set<string>();
  const v4m = new Map<string, string[]>();
  const v6m = new Map<string, string[]>();
  const cname = new Map<string, string>();
  let entries = 0;
  const search = ctx.search[0];
  expandTable(nt, ctx, (names, v4, v6) => {
    entries++;
    for (const raw of names) {
      const h = raw.toLowerCase();
      hosts.add(h);
      if (v4.length > 0) v4m.set(h, v4);
      if (v6.length > 0) v6m.set(h, v6);
      if (search && !h.endsWith(`${search}.`)) {
        const expanded = `${h}${search}${search.endsWith('.') ? '' : '.'}`.toLowerCase();
        if (!names.has(expanded)) {
          cname.set(expanded, h);
          hosts.add(expanded);
        }
      }
    }
  });
  return { hosts, v4: v4m, v6: v6m, cname, entries };
}

/** `name` in the table's form: lower case with a trailing dot (`''` is the root, `.`). */
export function canonicalName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

function withoutDot(name: string): string {
  return name.endsWith('.') && name.length > 1 ? name.slice(0, -1) : name;
}

export interface LookupResult {
  /** The name is known: answer locally (possibly with no records). */
  found: boolean;
  answers: LocalRecord[];
}

/** Istio's `lookupHost`: `qtype` is the numeric query type. Record names are without the trailing dot. */
export function lookupHost(table: LookupTable, qtype: string, questionName: string, shuffle: <T>(a: T[]) => T[] = shuffleInPlace): LookupResult {
  const question = canonicalName(questionName);
  let hostname = question;
  let wildcard = false;
  let found = table.hosts.has(hostname);
  if (!found) {
    const labels = withoutDot(hostname).split('.').filter((l) => l !== '');
    for (let i = 0; i < labels.length; i++) {
      const q = `*.${labels.slice(i + 1).join('.')}.`;
      if (table.hosts.has(q)) {
        found = true;
        wildcard = true;
        hostname = q;
        break;
      }
    }
  }
  if (!found) return { found: false, answers: [] };
  const cnames: CnameRecord[] = [];
  const target = table.cname.get(hostname);
  if (target !== undefined) {
    cnames.push({ type: 'CNAME', name: withoutDot(question), ttl: LOCAL_TTL_SECONDS, class: 'IN', data: withoutDot(target) });
    hostname = target;
  }
  let ips: readonly string[] | undefined;
  if (qtype === 'A') ips = table.v4.get(hostname);
  else if (qtype === 'AAAA') ips = table.v6.get(hostname);
  else return { found: false, answers: [] };
  if (!ips || ips.length === 0) return { found: true, answers: [] };
  // A wildcard answer is named as asked (or as the CNAME target); otherwise the table's name.
  const owner = wildcard ? withoutDot(cnames.length > 0 ? hostname : question) : withoutDot(hostname);
  const type = qtype;
  const addresses: AddressRecord[] = ips.map((data) => ({ type, name: owner, ttl: LOCAL_TTL_SECONDS, class: 'IN', data }));
  return { found: true, answers: [...cnames, ...shuffle(addresses)] };
}

export function shuffleInPlace<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = a[i] as T;
    a[i] = a[j] as T;
    a[j] = t;
  }
  return a;
}

/**
 * What `/debug/ndsz` shows (Istio's GetDNSTable): the table as received plus one entry per
 * generated name that is not already a key, with that entry's addresses.
 */
export function debugNameTable(nt: NameTable, ctx: TableContext): NameTable {
  const out: NameTable = { ...nt };
  expandTable(nt, ctx, (names, v4, v6) => {
    for (const n of names) {
      if (out[n] === undefined) out[n] = { ips: [...v4, ...v6], registry: '', shortname: '', namespace: '', altHosts: [] };
    }
  });
  return out;
}
