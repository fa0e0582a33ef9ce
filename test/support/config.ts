/** Builds configs for tests from the seed pod, with overrides. */
import type { NetworkInterfaceInfo } from 'node:os';
import { buildConfig, type AgentConfig, type ConfigInputs } from '../../src/config/load.js';
import { SEED_ANNOTATIONS, SEED_ARGS, SEED_ENV, SEED_LABELS } from './seed.js';

export function seedConfig(over: Partial<ConfigInputs> & { extraEnv?: Record<string, string>; extraArgs?: string[] } = {}): AgentConfig {
  const { extraEnv, extraArgs, ...rest } = over;
  return buildConfig({
    argv: [...SEED_ARGS, ...(extraArgs ?? [])],
    env: { ...SEED_ENV, ...(extraEnv ?? {}) },
    cwd: '/work',
    meshConfigPath: '/work/etc/istio/config/mesh',
    podLabelsText: SEED_LABELS,
    podAnnotationsText: SEED_ANNOTATIONS,
    ...rest,
  }).config;
}

function iface(address: string, family: 'IPv4' | 'IPv6', internal = false): NetworkInterfaceInfo {
  return family === 'IPv4'
    ? { address, family, internal, netmask: '255.255.255.0', mac: '02:42:0a:f4:01:07', cidr: `${address}/24` }
    : { address, family, internal, netmask: 'ffff:ffff:ffff:ffff::', mac: '02:42:0a:f4:01:07', cidr: `${address}/64`, scopeid: 0 };
}

/** A pod's interfaces: lo + eth0 with the pod IP. */
export const POD_INTERFACES = {
  lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)],
  eth0: [iface('10.244.1.7', 'IPv4'), iface('fe80::42:aff:fef4:107', 'IPv6')],
};

/** An IPv6-only pod. */
export const POD_INTERFACES_V6 = {
  lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)],
  eth0: [iface('fd00:10:244::7', 'IPv6'), iface('fe80::42:aff:fef4:107', 'IPv6')],
};
