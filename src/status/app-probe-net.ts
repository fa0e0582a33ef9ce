/**
 * Where an app probe connects from and to (SPEC §6.3): the destination host (the pod IP, or
 * `localhost` resolved in the pod's IP family) and the source address `127.0.0.6` / `::6`,
 * used only when it can be bound (checked once per address, then cached).
 */
import net from 'node:net';

export interface ProbeNetworkOptions {
  ipv6: boolean;
  /** null = never bind a source address. */
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

  constructor(private readonly options: ProbeNetworkOptions) {}

  /** Resolves `host` (an IP literal or `localhost`) to the address to dial and the source to bind. */
  async endpoint(host: string): Promise<ProbeEndpoint> {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    let address: string;
    let family: 4 | 6;
    const literal = net.isIP(bare);
    if (literal !== 0) {
      address = bare;
      family = literal as 4 | 6;
    } else {
      const preferred = this.options.ipv6 ? 6 : 4;
      const dns = await import('node:dns/promises'); // only probes to a host name resolve (loaded on first use)
      const found = await dns.lookup(bare, { family: preferred }).catch(() => dns.lookup(bare));
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
