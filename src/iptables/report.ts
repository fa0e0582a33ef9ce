/**
 * PURE: the text istio-iptables echoes before it touches anything, byte for byte as Istio
 * 1.6.5 prints it (the seed's `istio-init` log): the raw `Environment:` values, the resolved
 * `Variables:`, and the rules-file preamble.
 */
import { ECHOED_ENV, type IptablesConfig } from './options.js';

/** `Environment:` block: each variable's raw value ("" when unset), then a blank line. */
export function environmentBlock(env: Readonly<Record<string, string | undefined>>): string {
  return ['Environment:', '------------', ...ECHOED_ENV.map((name) => `${name}=${env[name] ?? ''}`), '', ''].join('\n');
}

/**
 * `Variables:` block, then a blank line. The newer `-q` and `-c` values (which 1.6 did not
 * have) are listed only when set, so the seed's block stays exactly as it was.
 */
export function variablesBlock(cfg: Readonly<IptablesConfig>): string {
  const rows: string[] = [
    `PROXY_PORT=${cfg.proxyPort}`,
    `PROXY_INBOUND_CAPTURE_PORT=${cfg.inboundCapturePort}`,
    `PROXY_UID=${cfg.proxyUid}`,
    `PROXY_GID=${cfg.proxyGid}`,
    `INBOUND_INTERCEPTION_MODE=${cfg.inboundInterceptionMode}`,
    `INBOUND_TPROXY_MARK=${cfg.inboundTProxyMark}`,
    `INBOUND_TPROXY_ROUTE_TABLE=${cfg.inboundTProxyRouteTable}`,
    `INBOUND_PORTS_INCLUDE=${cfg.inboundPortsInclude}`,
    `INBOUND_PORTS_EXCLUDE=${cfg.inboundPortsExclude}`,
    `OUTBOUND_IP_RANGES_INCLUDE=${cfg.outboundIPRangesInclude}`,
    `OUTBOUND_IP_RANGES_EXCLUDE=${cfg.outboundIPRangesExclude}`,
    ...(cfg.outboundPortsInclude !== '' ? [`OUTBOUND_PORTS_INCLUDE=${cfg.outboundPortsInclude}`] : []),
    `OUTBOUND_PORTS_EXCLUDE=${cfg.outboundPortsExclude}`,
    `KUBEVIRT_INTERFACES=${cfg.kubevirtInterfaces}`,
    ...(cfg.excludeInterfaces !== '' ? [`EXCLUDE_INTERFACES=${cfg.excludeInterfaces}`] : []),
    `ENABLE_INBOUND_IPV6=${cfg.enableInboundIPv6}`,
  ];
  return ['Variables:', '----------', ...rows, '', ''].join('\n');
}

/** What 1.6 prints before running a restore: Go's `Println(msg, name)` then `Println(contents)`. */
export function rulesFileEcho(fileName: string, contents: string): string {
  return `Writing following contents to rules file:  ${fileName}\n${contents}\n`;
}

/** The echo line for a command: `<cmd> <args joined by space>` (so `iptables-save ` keeps its space). */
export function commandEcho(cmd: string, args: readonly string[]): string {
  return `${cmd} ${args.join(' ')}\n`;
}
