/**
 * The istio-iptables option table (SPEC §9) and its resolution into one frozen, validated
 * config. One row per flag: long/short name, the environment variable that can set it, the
 * default and the doc; the same rows drive parsing, `--help` and validation messages.
 *
 * Precedence is viper's, as Istio binds it: a flag given on the command line (even `-x ""`)
 * wins; otherwise a non-empty environment variable; otherwise the default. Pure: the env,
 * the passwd lookup and the interface addresses come in as arguments.
 */
import { AgentError } from '../errors.js';
import { formatFlagHelp, parseFlags, parseGoBool, type FlagSpec } from '../config/flags.js';
import { parseGoDuration } from '../go/duration.js';
import { firstAddressIsIPv6, hasGlobalIPv6, isPort, parseCidr, splitList } from './net.js';
import { dnsServersFrom } from './dns.js';

export interface IptablesFlagSpec extends FlagSpec {
  /** Environment variable that sets the flag when it is not given (viper AutomaticEnv). */
  env?: string;
  /** Default value, in the flag's own syntax. */
  default: string;
  /** Extra environment variables that also set it (current Istio's aliases). */
  envAliases?: string[];
  /** An Istio flag this istio-iptables does not implement: given (flag or env), it fails at start with this reason. */
  rejected?: string;
}

const unsupported = (long: string, short: string | undefined, type: 'string' | 'bool', reason: string): IptablesFlagSpec => ({
  ...flag(long, short, type, '', `Not supported: fails at start (${reason})`, { defaultText: '' }),
  rejected: reason,
});

const flag = (
  long: string,
  short: string | undefined,
  type: 'string' | 'bool',
  def: string,
  doc: string,
  extra: { noEnv?: boolean; envAliases?: string[]; defaultText?: string } = {},
): IptablesFlagSpec => ({
  long,
  ...(short ? { short } : {}),
  type,
  default: def,
  doc,
  ...(extra.noEnv ? {} : { env: long.toUpperCase().replace(/-/g, '_') }),
  ...(extra.envAliases ? { envAliases: extra.envAliases } : {}),
  defaultText: extra.defaultText ?? def,
});

/** Every flag `istio-iptables` and `istio-clean-iptables` accept. */
export const IPTABLES_FLAGS: readonly IptablesFlagSpec[] = [
  flag('envoy-port', 'p', 'string', '15001', 'Port Envoy listens on for captured outbound TCP (REDIRECT target)'),
  flag('inbound-capture-port', 'z', 'string', '15006', 'Port all captured inbound TCP is sent to (REDIRECT target, TPROXY --on-port)'),
  flag('proxy-uid', 'u', 'string', '', 'Comma-separated UIDs whose traffic is never captured (the proxy)', {
    defaultText: 'uid of $ENVOY_USER [istio-proxy] in /etc/passwd, else 1337; plus ",0"',
  }),
  flag('proxy-gid', 'g', 'string', '', 'Comma-separated GIDs whose traffic is never captured', { defaultText: 'the -u list' }),
  flag('istio-inbound-interception-mode', 'm', 'string', '', 'Inbound capture mode: REDIRECT or TPROXY ("" = REDIRECT). iptables rules are Istio 1.6\'s (SPEC §9), nftables rules current Istio\'s'),
  flag('istio-inbound-ports', 'b', 'string', '', 'Inbound ports to capture: "*" or a comma-separated list; "" captures no inbound traffic'),
  flag('istio-local-exclude-ports', 'd', 'string', '', 'Inbound ports never captured; only with -b "*"'),
  flag('istio-service-cidr', 'i', 'string', '', 'Outbound destinations to capture: "*" or comma-separated CIDRs; "" captures no outbound traffic'),
  flag('istio-service-exclude-cidr', 'x', 'string', '', 'Outbound destination CIDRs never captured ("*" is not allowed)'),
  flag('istio-outbound-ports', 'q', 'string', '', 'Outbound ports always captured, whatever the destination'),
  flag('istio-local-outbound-ports-exclude', 'o', 'string', '', 'Outbound ports never captured'),
  flag('istio-exclude-interfaces', 'c', 'string', '', 'Interfaces whose traffic is never captured, in or out'),
  flag('kube-virt-interfaces', 'k', 'string', '', 'Virtual interfaces whose inbound traffic (from a VM) is treated as outbound'),
  flag('istio-inbound-tproxy-mark', 't', 'string', '1337', 'Packet mark used by TPROXY mode'),
  flag('istio-inbound-tproxy-route-table', 'r', 'string', '133', 'Routing table used by TPROXY mode'),
  flag('dry-run', 'n', 'bool', 'false', 'Print the commands instead of running them (also the nft input with --native-nftables, whose Istio path ignores it)'),
  flag('restore-format', 'f', 'bool', 'true', 'Apply with iptables-restore (false: one iptables command per rule; Istio 1.6\'s flag, gone from current Istio)'),
  flag('skip-rule-apply', undefined, 'bool', 'false', 'Write nothing to the kernel (istio-cni installed the rules); --run-validation still runs'),
  flag('run-validation', undefined, 'bool', 'false', 'Prove the capture works: a connection from this uid to 127.0.0.6:<probe port> must arrive on a 127.0.0.1 listener at -p or -z, else exit 126 naming what was not redirected'),
  flag('iptables-probe-port', undefined, 'string', '15002', 'Destination port of the validation connection'),
  flag('probe-timeout', undefined, 'string', '5s', 'How long validation keeps trying (Go duration) before exit 126'),
  flag('force-apply', undefined, 'bool', 'false', 'Apply even when every rule is already in place (without it a re-run over applied rules changes nothing)'),
  flag('cleanup-only', undefined, 'bool', 'false', 'Remove the chains and jumps istio-iptables creates (with --native-nftables: the istio-proxy-* tables), then stop'),
  flag('native-nftables', undefined, 'bool', 'false', 'Program current Istio\'s nftables rules (`nft -f`, tables inet istio-proxy-nat/-mangle) instead of iptables'),
  flag('dual-stack', undefined, 'bool', 'false', 'Also program the IPv6 rules whenever the pod has a global IPv6 address (without it: only when the pod\'s first address is IPv6)', {
    envAliases: ['ISTIO_DUAL_STACK'],
  }),
  flag('drop-invalid', undefined, 'bool', 'false', 'Drop packets conntrack marks INVALID (out of window) instead of letting them reset the connection', {
    envAliases: ['INVALID_DROP'],
  }),
  flag('redirect-dns', undefined, 'bool', 'false', 'Capture the app\'s DNS to the agent on 15053: UDP and TCP port 53 to the resolv.conf nameservers (chain ISTIO_OUTPUT_DNS), with conntrack zones in the raw table', {
    envAliases: ['ISTIO_META_DNS_CAPTURE'],
  }),
  flag('capture-all-dns', undefined, 'bool', 'false', 'With --redirect-dns: capture DNS to any address on port 53, not only to the resolv.conf nameservers'),
  flag('dns-resolv-conf', undefined, 'string', '/etc/resolv.conf', 'Not in Istio: the resolv.conf whose nameservers --redirect-dns captures (Istio always reads /etc/resolv.conf)'),
  unsupported('inbound-tunnel-port', 'e', 'string', 'the 1.6 iptables rules have no HBONE tunnel port; the nftables rules always exempt 15008'),
  unsupported('network-namespace', undefined, 'string', 'run it inside the pod\'s namespace instead, e.g. with ip netns exec'),
  unsupported('cni-mode', undefined, 'bool', 'the istio-cni plugin is not part of this agent'),
  unsupported('reconcile', undefined, 'bool', 'replacing a differing rule set is not implemented; run --cleanup-only first'),
  unsupported('force-iptables-binary', undefined, 'string', 'the iptables, ip6tables and nft found on PATH are used'),
  flag('log_output_level', undefined, 'string', 'default:info', 'Log level, `level` or `default:level`', { noEnv: true }),
  flag('log_as_json', undefined, 'bool', 'false', 'Write logs as JSON', { noEnv: true }),
  flag('help', 'h', 'bool', 'false', 'Show this help', { noEnv: true, defaultText: '' }),
];

/** The environment variables 1.6 echoes under "Environment:" (names only; values are raw). */
export const ECHOED_ENV = [
  'ENVOY_PORT',
  'INBOUND_CAPTURE_PORT',
  'ISTIO_INBOUND_INTERCEPTION_MODE',
  'ISTIO_INBOUND_TPROXY_MARK',
  'ISTIO_INBOUND_TPROXY_ROUTE_TABLE',
  'ISTIO_INBOUND_PORTS',
  'ISTIO_LOCAL_EXCLUDE_PORTS',
  'ISTIO_SERVICE_CIDR',
  'ISTIO_SERVICE_EXCLUDE_CIDR',
] as const;

export type InterceptionMode = 'REDIRECT' | 'TPROXY';

/**
 * The resolved configuration, field for field the strings Istio 1.6 prints under
 * "Variables:" plus the newer flags. Lists stay as validated comma strings (the rule
 * builder splits them) so the echo shows exactly what was asked for.
 */
export interface IptablesConfig {
  proxyPort: string;
  inboundCapturePort: string;
  proxyUid: string;
  proxyGid: string;
  /** As given (may be ""), echoed verbatim. */
  inboundInterceptionMode: string;
  /** Effective mode: "" means REDIRECT. */
  mode: InterceptionMode;
  inboundTProxyMark: string;
  inboundTProxyRouteTable: string;
  inboundPortsInclude: string;
  inboundPortsExclude: string;
  outboundIPRangesInclude: string;
  outboundIPRangesExclude: string;
  outboundPortsInclude: string;
  outboundPortsExclude: string;
  excludeInterfaces: string;
  kubevirtInterfaces: string;
  enableInboundIPv6: boolean;
  dryRun: boolean;
  restoreFormat: boolean;
  skipRuleApply: boolean;
  runValidation: boolean;
  forceApply: boolean;
  cleanupOnly: boolean;
  nativeNftables: boolean;
  dualStack: boolean;
  dropInvalid: boolean;
  /** Validation: destination port and how long to keep trying (ms). */
  probePort: number;
  probeTimeoutMs: number;
  /** The pod's first address is IPv6 (validation then probes ::6 → ::1). */
  hostIsIPv6: boolean;
  /** DNS capture in effect: asked for (flag or env) with something to capture (--capture-all-dns or a nameserver). */
  redirectDns: boolean;
  /** Asked for, in effect or not (the "no nameservers" warning). */
  dnsCaptureRequested: boolean;
  captureAllDns: boolean;
  /** Nameservers of `resolvConfPath` by family (read for --redirect-dns without --capture-all-dns). */
  dnsServersV4: string[];
  dnsServersV6: string[];
  resolvConfPath: string;
  logOutputLevel: string;
  logAsJson: boolean;
}

export interface ResolveInput {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** uid of a user name from /etc/passwd, or undefined. */
  lookupUid: (user: string) => string | undefined;
  /** Interface addresses (IPv4 and IPv6 text), for the IPv6 decision. Called lazily. */
  interfaceAddresses: () => readonly string[];
  /** `istio-clean-iptables` needs no interface address (it does not decide IPv6). */
  forCleanup?: boolean;
  /** A file's text (resolv.conf for --redirect-dns), or undefined when unreadable. */
  readFile?: (path: string) => string | undefined;
}

export type ResolveResult = { help: true } | { help: false; config: Readonly<IptablesConfig> };

const usageError = (message: string): AgentError => new AgentError('IPTABLES_USAGE', message, { exitCode: 1 });

export function iptablesHelp(command = 'istio-iptables'): string {
  const envRows = IPTABLES_FLAGS.flatMap((f) => [f.env, ...(f.envAliases ?? [])].filter((e) => e !== undefined).map((e) => `  ${e.padEnd(38)}--${f.long}`));
  envRows.push(`  ${'DNS_CAPTURE'.padEnd(38)}Istio 1.6's DNS switch: any non-empty value is --redirect-dns`);
  envRows.push(`  ${'ENVOY_USER'.padEnd(38)}User whose uid is the -u default (default istio-proxy)`);
  return [
    command === 'istio-iptables'
      ? 'Set up iptables rules that capture the pod\'s TCP traffic for the Envoy sidecar.'
      : 'Remove the iptables chains and jumps istio-iptables creates.',
    '',
    'Usage:',
    `  pilot-agent ${command} [flags]`,
    '',
    'Flags:',
    formatFlagHelp(IPTABLES_FLAGS),
    '',
    'Each flag can also be set from an environment variable (used when the flag is not given):',
    ...envRows,
    '',
  ].join('\n');
}

/** Parses argv + env into a validated config; throws AgentError IPTABLES_USAGE (exit 1). */
export function resolveIptablesConfig(input: ResolveInput): ResolveResult {
  const parsed = parseFlags(input.argv, IPTABLES_FLAGS, { allowUnknown: false, errorCode: 'IPTABLES_USAGE', exitCode: 1 });
  if (parsed.values.get('help') === 'true') return { help: true };
  if (parsed.positionals.length > 0) throw usageError(`unexpected argument "${parsed.positionals[0]}" (istio-iptables takes only flags)`);

  const byLong = new Map(IPTABLES_FLAGS.map((f) => [f.long, f]));
  /** Where a value came from, for error messages that name the culprit. */
  const source = (long: string): string => {
    const spec = byLong.get(long);
    const name = `${spec?.short ? `-${spec.short}/` : ''}--${long}`;
    if (parsed.values.has(long) || !spec) return name;
    for (const env of [spec.env, ...(spec.envAliases ?? [])]) {
      if (env && (input.env[env] ?? '') !== '') return `${env} (env for ${name})`;
    }
    return name;
  };
  const raw = (long: string): string => {
    const given = parsed.values.get(long);
    if (given !== undefined) return given;
    const spec = byLong.get(long);
    if (!spec) throw new Error(`no such flag ${long}`);
    for (const env of [spec.env, ...(spec.envAliases ?? [])]) {
      const v = env ? input.env[env] : undefined;
      if (v !== undefined && v !== '') return v;
    }
    return spec.default;
  };
  const bool = (long: string): boolean => {
    const v = raw(long);
    const b = parseGoBool(v);
    if (b === undefined) throw usageError(`invalid value "${v}" for ${source(long)}: expected true or false`);
    return b;
  };
  const port = (long: string): string => {
    const v = raw(long);
    if (!isPort(v)) throw usageError(`invalid value "${v}" for ${source(long)}: expected a port number 1-65535`);
    return v;
  };
  const portList = (long: string, allowWildcard: boolean): string => {
    const v = raw(long);
    if (allowWildcard && v === '*') return v;
    for (const p of splitList(v)) {
      if (!isPort(p)) {
        throw usageError(
          `invalid value "${v}" for ${source(long)}: "${p}" is not a port number 1-65535${allowWildcard ? ' (use "*" for all ports)' : ''}`,
        );
      }
    }
    return v;
  };
  const cidrList = (long: string, allowWildcard: boolean): string => {
    const v = raw(long);
    if (v === '*') {
      if (allowWildcard) return v;
      throw usageError(`invalid value "*" for ${source(long)}: the wildcard is not allowed here (excluding everything would mean capturing nothing; use -i "" instead)`);
    }
    for (const item of splitList(v)) {
      const c = parseCidr(item);
      if (typeof c === 'string') throw usageError(`invalid value "${v}" for ${source(long)}: "${item}" is not a CIDR: ${c}`);
    }
    return v;
  };
  const idList = (long: string, what: string): string => {
    const v = raw(long);
    for (const id of splitList(v)) {
      if (!/^[0-9]{1,10}$/.test(id) || Number(id) > 0xffffffff) {
        throw usageError(`invalid value "${v}" for ${source(long)}: "${id}" is not a numeric ${what}`);
      }
    }
    return v;
  };
  const ifaceList = (long: string): string => {
    const v = raw(long);
    for (const name of splitList(v)) {
      // Linux interface names: at most 15 bytes, no whitespace or '/'; iptables allows a trailing '+'.
      if (!/^[A-Za-z0-9_.:@+-]{1,15}$/.test(name)) {
        throw usageError(`invalid value "${v}" for ${source(long)}: "${name}" is not an interface name`);
      }
    }
    return v;
  };
  const number = (long: string, what: string): string => {
    const v = raw(long);
    if (!/^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})$/.test(v) || Number(v) > 0xffffffff) {
      throw usageError(`invalid value "${v}" for ${source(long)}: expected a ${what}`);
    }
    return v;
  };

  for (const spec of IPTABLES_FLAGS) {
    if (!spec.rejected) continue;
    const given = parsed.values.has(spec.long) || [spec.env, ...(spec.envAliases ?? [])].some((e) => e !== undefined && (input.env[e] ?? '') !== '');
    if (given) throw usageError(`${source(spec.long)} is not supported: ${spec.rejected}`);
  }

  const modeText = raw('istio-inbound-interception-mode');
  if (modeText !== '' && modeText !== 'REDIRECT' && modeText !== 'TPROXY') {
    throw usageError(`invalid value "${modeText}" for ${source('istio-inbound-interception-mode')}: unknown mode, expected REDIRECT or TPROXY`);
  }
  const nativeNftables = bool('native-nftables');
  const dualStack = bool('dual-stack');

  const proxyPort = port('envoy-port');
  const inboundCapturePort = port('inbound-capture-port');
  let proxyUid = idList('proxy-uid', 'uid');
  if (proxyUid === '') {
    // 1.6: the uid of $ENVOY_USER (default istio-proxy; set but empty finds no user), else 1337;
    // root is added for the CA agent.
    const user = input.env.ENVOY_USER ?? 'istio-proxy';
    proxyUid = `${(user === '' ? undefined : input.lookupUid(user)) ?? '1337'},0`;
  }
  let proxyGid = idList('proxy-gid', 'gid');
  if (proxyGid === '') proxyGid = proxyUid;

  const inboundPortsInclude = portList('istio-inbound-ports', true);
  const inboundPortsExclude = portList('istio-local-exclude-ports', false);
  const outboundIPRangesInclude = cidrList('istio-service-cidr', true);
  const outboundIPRangesExclude = cidrList('istio-service-exclude-cidr', false);
  const outboundPortsInclude = portList('istio-outbound-ports', false);
  const outboundPortsExclude = portList('istio-local-outbound-ports-exclude', false);
  const excludeInterfaces = ifaceList('istio-exclude-interfaces');
  const kubevirtInterfaces = ifaceList('kube-virt-interfaces');
  const inboundTProxyMark = number('istio-inbound-tproxy-mark', 'packet mark (a number)');
  const inboundTProxyRouteTable = number('istio-inbound-tproxy-route-table', 'routing table number');
  const probePort = port('iptables-probe-port');
  const timeoutText = raw('probe-timeout');
  const probeTimeoutMs = parseGoDuration(timeoutText);
  if (probeTimeoutMs === undefined || probeTimeoutMs <= 0) {
    throw usageError(`invalid value "${timeoutText}" for ${source('probe-timeout')}: expected a positive Go duration such as 5s or 500ms`);
  }

  const dryRun = bool('dry-run');
  const restoreFormat = bool('restore-format');
  const skipRuleApply = bool('skip-rule-apply');
  const runValidation = bool('run-validation');
  const forceApply = bool('force-apply');
  const cleanupOnly = bool('cleanup-only');
  const captureAllDns = bool('capture-all-dns');
  // 1.6 read DNS_CAPTURE (any non-empty value); current Istio --redirect-dns / ISTIO_META_DNS_CAPTURE.
  const dnsCaptureRequested = bool('redirect-dns') || (input.env.DNS_CAPTURE ?? '') !== '';
  const resolvConfPath = raw('dns-resolv-conf');
  const readServers = dnsCaptureRequested && !captureAllDns && !input.forCleanup && !cleanupOnly;
  const { v4: dnsServersV4, v6: dnsServersV6 } = readServers ? dnsServersFrom(input.readFile, resolvConfPath, source('dns-resolv-conf')) : { v4: [], v6: [] };
  const redirectDns = dnsCaptureRequested && (captureAllDns || dnsServersV4.length > 0 || dnsServersV6.length > 0);

  let enableInboundIPv6 = false;
  let hostIsIPv6 = false;
  if (!input.forCleanup && !cleanupOnly && !skipRuleApply) {
    const addresses = input.interfaceAddresses();
    const v6 = firstAddressIsIPv6(addresses);
    if (v6 === undefined) {
      throw new AgentError('IPTABLES_FAILED', 'no valid local IP address found (needed to decide between IPv4 and IPv6 rules)', {
        exitCode: 1,
      });
    }
    hostIsIPv6 = v6;
    // Dual stack (current Istio): any IPv6 address turns the IPv6 rules on next to the IPv4 ones.
    enableInboundIPv6 = v6 || (dualStack && hasGlobalIPv6(addresses));
  } else if (runValidation) {
    hostIsIPv6 = firstAddressIsIPv6(input.interfaceAddresses()) ?? false;
  }

  const config: IptablesConfig = {
    proxyPort,
    inboundCapturePort,
    proxyUid,
    proxyGid,
    inboundInterceptionMode: modeText,
    mode: modeText === 'TPROXY' ? 'TPROXY' : 'REDIRECT',
    inboundTProxyMark,
    inboundTProxyRouteTable,
    inboundPortsInclude,
    inboundPortsExclude,
    outboundIPRangesInclude,
    outboundIPRangesExclude,
    outboundPortsInclude,
    outboundPortsExclude,
    excludeInterfaces,
    kubevirtInterfaces,
    enableInboundIPv6,
    dryRun,
    restoreFormat,
    skipRuleApply,
    runValidation,
    forceApply,
    cleanupOnly,
    nativeNftables,
    dualStack,
    dropInvalid: bool('drop-invalid'),
    probePort: Number(probePort),
    probeTimeoutMs,
    hostIsIPv6,
    redirectDns,
    dnsCaptureRequested,
    captureAllDns,
    dnsServersV4,
    dnsServersV6,
    resolvConfPath,
    logOutputLevel: raw('log_output_level'),
    logAsJson: bool('log_as_json'),
  };
  return { help: false, config: Object.freeze(config) };
}
