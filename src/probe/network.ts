/**
 * Where a probe connects from and to (SPEC §6.3, and Istio's xDS HTTP health check): the
 * source-address rule — bind `127.0.0.6` for an IPv4 destination, `::6` for an IPv6 one, each
 * only when it can be bound (checked once per address, then cached) — and, for a host name
 * such as `localhost`, resolution in the preferred IP family. `node:dns` is loaded on the first
 * name only.
 */
import net from 'node:net';

/** The source addresses Istio's probes use (iptables lets them bypass inbound capture). */
export const PROBE_SOURCE_ADDRESSES: Readonly<{ v4: string; v6: string }> = Object.freeze({ v4: '127.0.0.6', v6: '::6' });

export interface ProbeNetworkOptions {
  /** Resolve host names in this family first (IPv6 pods: 6); the other family is the fallback. */
  family: 4 | 6;
  /** Source addresses to bind, each only when bindable; null = never bind. */
  sourceAddresses: { v4: string; v6: string } | null;
}

export interface ProbeEndpoint {
  /** The IP to connect to. */
  address: string;
  family: 4 | 6;
  /** Source address to bind, when bindable. */
  localAddress?: string;
}

export class ProbeNetwork {
  private readonly bindable = new Map<string, Promise<boolean>>();

  constructor(readonly options: ProbeNetworkOptions) {}

  /** Source rule with the default addresses; `ipv6` = the pod's family. */
  static forPod(ipv6: boolean, sourceAddresses: ProbeNetworkOptions['sourceAddresses'] = PROBE_SOURCE_ADDRESSES): ProbeNetwork {
    return new ProbeNetwork({ family: ipv6 ? 6 : 4, sourceAddresses });
  }

  /** Resolves `host` (an IP literal, bracketed or not, or a name) to the address to dial and the source to bind. */
  async endpoint(host: string): Promise<ProbeEndpoint> {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    let address: string;
    let family: 4 | 6;
    const literal = net.isIP(bare);
    if (literal !== 0) {
      address = bare;
      family = literal as 4 | 6;
    } else {
      const dns = await import('node:dns/promises');
      const found = await dns.lookup(bare, { family: this.options.family }).catch(() => dns.lookup(bare));
      address = found.address;
      family = found.family === 6 ? 6 : 4;
    }
    const src = this.options.sourceAddresses;
    if (src) {
      const local = family === 6 ? src.v6 : src.v4;
      if (await this.canBind(local)) return { address, family, localAddress: local };
    }
    return { address, family };
  }

  private canBind(address: string): Promise<boolean> {
    let p = this.bindable.get(address);
    if (!p) {
      p = new Promise<boolean>((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(false));
        srv.listen({ host: address, port: 0, exclusive: true }, () => srv.close(() => resolve(true)));
      });
      this.bindable.set(address, p);
    }
    return p;
  }
}

/** Connect options for `net.connect` / `tls.connect`: through `network` when given, else the host as is. */
export async function connectTarget(host: string, port: number, network: ProbeNetwork | undefined): Promise<{ host: string; port: number; family?: 4 | 6; localAddress?: string }> {
  if (!network) return { host: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port };
  const e = await network.endpoint(host);
  return { host: e.address, port, family: e.family, ...(e.localAddress ? { localAddress: e.localAddress } : {}) };
}
