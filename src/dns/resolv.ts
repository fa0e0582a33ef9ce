/**
 * PURE: the parts of resolv.conf(5) the DNS proxy uses: `nameserver` lines (port 53; IPv6
 * addresses with a zone are kept as written) and the last `search` (or `domain`) line.
 * Comments start with `#` or `;`. Anything else is ignored, as glibc and Go's resolver do.
 */
import net from 'node:net';

export interface ResolvConf {
  /** `host:port` of each server, in file order (IPv6 bracketed). */
  servers: string[];
  /** The bare addresses, for choosing the listener's families. */
  addresses: string[];
  search: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const addresses: string[] = [];
  let search: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (line === '') continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0] !== undefined) {
      const addr = rest[0];
      const bare = addr.split('%')[0] as string;
      if (net.isIP(bare) !== 0) addresses.push(addr);
    } else if (key === 'search' || key === 'domain') {
      search = rest.filter((s) => s !== '');
    }
  }
  return { servers: addresses.map((a) => hostPort(a, 53)), addresses, search };
}

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `host:port` (IPv6 in brackets) → parts; undefined when it is not of that form. */
export function splitHostPort(addr: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:[\]]*):(\d+)$/.exec(addr);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { host: m[1] as string, port };
}
