/**
 * Pure parsing helpers for istio-iptables values: comma lists, ports, CIDRs (with the
 * normalisation Go's `net.ParseCIDR` + `IPNet.String()` apply), the "is this pod IPv6"
 * decision and `/etc/passwd` lookups. No I/O here; callers pass the text in.
 */

/** Go's `split` in istio-iptables: `""` → no items; empty items are dropped; no trimming. */
export function splitList(s: string): string[] {
  if (s === '') return [];
  return s.split(',').filter((x) => x !== '');
}

/** A TCP port as iptables `--dport`/`--to-ports` take it: decimal 1-65535. */
export function isPort(s: string): boolean {
  if (!/^[0-9]{1,5}$/.test(s)) return false;
  const n = Number(s);
  return n >= 1 && n <= 65535;
}

export type IpFamily = 4 | 6;

export interface Cidr {
  family: IpFamily;
  /** Network address with host bits cleared, in Go's `IP.String()` form. */
  address: string;
  prefix: number;
  /** `address/prefix`, what the rules use (Go's `IPNet.String()`). */
  text: string;
}

function parseIPv4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    // Go rejects leading zeros ("010") since 1.17; so do we (they are ambiguous octal to iptables).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

/** 16 bytes, or undefined. Accepts `::` compression and a dotted IPv4 tail; no zone. */
function parseIPv6(s: string): number[] | undefined {
  if (s.includes('%')) return undefined;
  let tail: number[] = [];
  let body = s;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4;
    body = s.slice(0, lastColon + 1) + '0:0'; // placeholder groups, replaced below
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const groups = h.split(':');
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0] ?? '');
  const rest = halves.length === 2 ? parseGroups(halves[1] ?? '') : [];
  if (!head || !rest) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function formatIPv6(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // Longest run of two or more zero groups, leftmost on a tie, becomes "::" (RFC 5952, as Go prints).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return groups.map((g) => g.toString(16)).join(':');
  const left = groups.slice(0, bestStart).map((g) => g.toString(16)).join(':');
  const right = groups.slice(bestStart + bestLen).map((g) => g.toString(16)).join(':');
  return `${left}::${right}`;
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    return bits === 0 ? 0 : b & ((0xff << (8 - bits)) & 0xff);
  });
}

/**
 * Parses `addr/len` like Go's `net.ParseCIDR` and returns the network (host bits cleared).
 * Returns a reason string for anything that is not a CIDR. IPv4-mapped IPv6 (`::ffff:a.b.c.d`)
 * is refused: Go would silently treat it as IPv4, which surprises more than it helps.
 */
export function parseCidr(s: string): Cidr | string {
  const slash = s.indexOf('/');
  if (slash < 0) return 'missing "/<prefix length>"';
  const addr = s.slice(0, slash);
  const lenText = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return `bad prefix length "${lenText}"`;
  const prefix = Number(lenText);
  const v4 = parseIPv4(addr);
  if (v4) {
    if (prefix > 32) return `prefix length ${prefix} is longer than 32`;
    const address = maskBytes(v4, prefix).join('.');
    return { family: 4, address, prefix, text: `${address}/${prefix}` };
  }
  const v6 = parseIPv6(addr);
  if (v6) {
    if (v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) {
      return 'IPv4-mapped IPv6 addresses are not accepted; write the IPv4 form';
    }
    if (prefix > 128) return `prefix length ${prefix} is longer than 128`;
    const address = formatIPv6(maskBytes(v6, prefix));
    return { family: 6, address, prefix, text: `${address}/${prefix}` };
  }
  return `"${addr}" is not an IP address`;
}

/** A validated CIDR list split by family, or the wildcard. */
export interface NetworkRange {
  wildcard: boolean;
  v4: string[];
  v6: string[];
}

/** Splits a validated list (`*` or CIDRs) into IPv4 and IPv6 networks, keeping order. */
export function separateV4V6(list: string): NetworkRange {
  if (list === '*') return { wildcard: true, v4: [], v6: [] };
  const range: NetworkRange = { wildcard: false, v4: [], v6: [] };
  for (const item of splitList(list)) {
    const c = parseCidr(item);
    if (typeof c === 'string') throw new Error(`separateV4V6: unvalidated CIDR ${item}: ${c}`);
    (c.family === 4 ? range.v4 : range.v6).push(c.text);
  }
  return range;
}

function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1';
}

/**
 * The IPv6 decision istio-init makes without INSTANCE_IP: the first non-loopback interface
 * address. Go lists addresses as the kernel dumps them, every IPv4 address before any IPv6
 * one, so the pod is "IPv6" only when it has no non-loopback IPv4 address at all.
 * Returns undefined when there is no non-loopback address (Istio fails then).
 */
export function firstAddressIsIPv6(addresses: readonly string[]): boolean | undefined {
  const usable = addresses.filter((a) => !isLoopback(a));
  if (usable.length === 0) return undefined;
  return !usable.some((a) => !a.includes(':'));
}

/** True when some address is IPv6 and neither loopback nor link-local (Istio's dual-stack test). */
export function hasGlobalIPv6(addresses: readonly string[]): boolean {
  return addresses.some((a) => a.includes(':') && !isLoopback(a) && !/^fe[89ab]/i.test(a));
}

/** The uid of `user` in /etc/passwd text, or undefined. */
export function lookupUidInPasswd(passwd: string, user: string): string | undefined {
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 3 && fields[0] === user && /^[0-9]+$/.test(fields[2] ?? '')) return fields[2];
  }
  return undefined;
}
