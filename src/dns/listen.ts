/**
 * Where the DNS proxy listens (Istio's rules): `DNS_PROXY_ADDR` (`host:port`, default
 * `localhost:15053`). With host `localhost` and nameservers in resolv.conf, one address per
 * family the nameservers use (`127.0.0.1` for IPv4 ones, `::1` for IPv6 ones). A `:53` address
 * needs root: as root the proxy answers before the first table (forwarding everything) and
 * reads `/var/lib/istio/resolv.conf` when present; otherwise the default address is used.
 */
import net from 'node:net';
import { hostPort, splitHostPort } from './resolv.js';

export const DEFAULT_DNS_ADDR = 'localhost:15053';
export const ROOT_RESOLV_CONF = '/var/lib/istio/resolv.conf';

export interface ListenPlan {
  /** `host:port` of each listener pair (UDP and TCP). */
  addresses: { host: string; port: number }[];
  respondBeforeSync: boolean;
  /** Use ROOT_RESOLV_CONF when it exists (only when the path was not set explicitly). */
  preferRootResolvConf: boolean;
  warnings: string[];
}

/** PURE. `nameservers` are the resolv.conf addresses; throws naming DNS_PROXY_ADDR when malformed. */
export function planListeners(addr: string, uid: number, nameservers: readonly string[]): ListenPlan {
  const warnings: string[] = [];
  let a = addr === '' ? DEFAULT_DNS_ADDR : addr;
  let respondBeforeSync = false;
  let preferRootResolvConf = false;
  if (a.endsWith(':53')) {
    if (uid === 0) {
      respondBeforeSync = true;
      preferRootResolvConf = true;
    } else {
      warnings.push(`DNS_PROXY_ADDR ${a}: port 53 needs root; using ${DEFAULT_DNS_ADDR}`);
      a = DEFAULT_DNS_ADDR;
    }
  }
  const hp = splitHostPort(a);
  if (!hp) throw new Error(`DNS_PROXY_ADDR: expected host:port like "localhost:15053", got ${JSON.stringify(addr)}`);
  const bare = nameservers.map((s) => s.split('%')[0] as string);
  const v4 = bare.some((s) => net.isIPv4(s));
  const v6 = bare.some((s) => net.isIPv6(s));
  let hosts: string[];
  if (hp.host === 'localhost' && (v4 || v6)) hosts = [...(v4 ? ['127.0.0.1'] : []), ...(v6 ? ['::1'] : [])];
  else if (hp.host === 'localhost') hosts = ['127.0.0.1'];
  else hosts = [hp.host === '' ? '0.0.0.0' : hp.host];
  return { addresses: hosts.map((host) => ({ host, port: hp.port })), respondBeforeSync, preferRootResolvConf, warnings };
}

export function formatAddress(a: { host: string; port: number }): string {
  return hostPort(a.host, a.port);
}
