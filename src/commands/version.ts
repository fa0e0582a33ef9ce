/**
 * `pilot-agent version` in the shape of Istio's: the long form by default, `-s` the version
 * alone, `-o json|yaml` a `clientVersion` object. The fields are Istio's BuildInfo
 * (`version`, `revision`, `status`, `tag`) with `golang_version` replaced by `node_version`,
 * plus `istio_version`: the Istio release this agent is compatible with and whose Envoy the
 * image ships (reported to istiod as ISTIO_VERSION).
 */
import { stringify as toYaml } from 'yaml';
import type { Command } from '../command.js';
import { AgentError } from '../errors.js';
import { formatFlagHelp, parseFlags, type FlagSpec } from '../config/flags.js';
import { AGENT_VERSION, ISTIO_COMPAT_VERSION } from '../version.js';
import { LOG_FLAGS } from './common.js';

export interface BuildInfo {
  version: string;
  revision: string;
  istio_version: string;
  node_version: string;
  status: string;
  tag: string;
}

export const VERSION_FLAGS: readonly FlagSpec[] = [
  { long: 'short', short: 's', type: 'bool', doc: 'Print the version only' },
  { long: 'output', short: 'o', type: 'string', doc: "One of 'yaml' or 'json'" },
  ...LOG_FLAGS,
  { long: 'help', short: 'h', type: 'bool', doc: 'Show this help' },
];

/** No build stamping: the revision and build status are not known at run time. */
export function buildInfo(): BuildInfo {
  return {
    version: AGENT_VERSION,
    revision: 'unknown',
    istio_version: ISTIO_COMPAT_VERSION,
    node_version: process.version,
    status: 'unknown',
    tag: AGENT_VERSION,
  };
}

/** Istio prints Go's `%#v` of its BuildInfo; this is the same rendering of ours. */
export function longForm(b: BuildInfo): string {
  const q = (s: string) => JSON.stringify(s);
  return (
    `version.BuildInfo{Version:${q(b.version)}, GitRevision:${q(b.revision)}, IstioVersion:${q(b.istio_version)}, ` +
    `NodeVersion:${q(b.node_version)}, BuildStatus:${q(b.status)}, GitTag:${q(b.tag)}}`
  );
}

export function versionHelp(): string {
  return ['Prints out build version information.', '', 'Usage:', '  pilot-agent version [flags]', '', 'Flags:', formatFlagHelp(VERSION_FLAGS), ''].join('\n');
}

export const versionCommand: Command = async (argv, ctx) => {
  const { values } = parseFlags(argv, VERSION_FLAGS, { allowUnknown: false });
  if (values.get('help') === 'true') {
    ctx.stdout.write(versionHelp());
    return 0;
  }
  const output = values.get('output') ?? '';
  if (output !== '' && output !== 'yaml' && output !== 'json') throw new AgentError('AGENT_USAGE', "--output must be 'yaml' or 'json'");
  const info = buildInfo();
  if (output === 'json') {
    ctx.stdout.write(`${JSON.stringify({ clientVersion: info }, null, 2)}\n`);
  } else if (output === 'yaml') {
    // Istio marshals through JSON into a map, so the keys come out sorted, then adds a newline.
    const sorted = Object.fromEntries(Object.entries(info).sort(([a], [b]) => (a < b ? -1 : 1)));
    ctx.stdout.write(`${toYaml({ clientVersion: sorted })}\n`);
  } else {
    ctx.stdout.write(`${values.get('short') === 'true' ? info.version : longForm(info)}\n`);
  }
  return 0;
};
