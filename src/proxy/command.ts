/** `pilot-agent proxy [sidecar|router]`. Placeholder until the foundation lands. */
import type { Command } from '../command.js';

export const proxyCommand: Command = async (_argv, ctx) => {
  ctx.stderr.write('proxy: not implemented yet\n');
  return 255;
};
