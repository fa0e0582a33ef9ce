/** `pilot-agent istio-iptables` / `istio-clean-iptables` (SPEC §9). Placeholder until the iptables issue lands. */
import type { Command } from '../command.js';

export const istioIptablesCommand: Command = async (_argv, ctx) => {
  ctx.stderr.write('istio-iptables: not implemented yet\n');
  return 1;
};

export const istioCleanIptablesCommand: Command = async (_argv, ctx) => {
  ctx.stderr.write('istio-clean-iptables: not implemented yet\n');
  return 1;
};
