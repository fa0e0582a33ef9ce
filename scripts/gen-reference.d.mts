/** Types for scripts/gen-reference.mjs (the README reference generator). */
import type { FlagSpec } from '../src/config/flags.js';
import type { EnvSpec } from '../src/config/options.js';
import type { IptablesFlagSpec } from '../src/iptables/options.js';

export interface ReferenceTables {
  proxyFlags: readonly FlagSpec[];
  proxyEnv: readonly EnvSpec[];
  iptablesFlags: readonly IptablesFlagSpec[];
  waitFlags: readonly FlagSpec[];
  requestFlags: readonly FlagSpec[];
  versionFlags: readonly FlagSpec[];
  statusFlags: readonly FlagSpec[];
}

export type SectionName = 'proxy-flags' | 'proxy-env' | 'iptables-flags' | 'wait-flags' | 'request-flags' | 'version-flags' | 'status-flags';

export function renderFlags(flags: readonly FlagSpec[]): string;
export function renderEnv(env: readonly EnvSpec[]): string;
export function renderIptables(flags: readonly IptablesFlagSpec[]): string;
export function renderSections(tables: ReferenceTables): Record<SectionName, string>;
export function extractSections(text: string): Record<string, string>;
export function applySections(text: string, sections: Record<string, string>): string;
