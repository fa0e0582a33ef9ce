/**
 * Applies or removes the `--native-nftables` capture: the whole rule set goes to the kernel
 * in one `nft -f -` transaction (stdin), echoed first as `nft -f -` and the script. The
 * script adds and flushes each table before filling it, so running it again replaces the
 * rules instead of duplicating them. After the rules: `::6` on lo for IPv6 pods and the
 * TPROXY policy route (`ip … replace`, so a re-run is no error), as Istio's route setup.
 * Dry run prints the same and runs nothing.
 */
import { AgentError } from '../errors.js';
import { buildCapturePlan, buildCleanupPlan, type HostCommand } from './builder.js';
import { failureMessage, runStep, type ExecutorIO } from './executor.js';
import { buildNftRules, nftCleanupScript, toNftScript } from './nft.js';
import type { IptablesConfig } from './options.js';

async function runScript(script: string, io: ExecutorIO): Promise<void> {
  io.out.write(`nft -f -\n${script}`);
  const outcome = await io.runner.run('nft', ['-f', '-'], { input: script });
  if (outcome.code === 0) return;
  if (outcome.code === -1 && /not found/.test(outcome.error ?? '')) {
    throw new AgentError(
      'IPTABLES_FAILED',
      `--native-nftables needs the nft binary, which is missing: ${outcome.error} (install nftables, or drop --native-nftables)`,
      { exitCode: 1 },
    );
  }
  throw new AgentError('IPTABLES_FAILED', failureMessage('nft -f -', outcome), { exitCode: 1 });
}

/** The routing commands, made idempotent: `add` of the address and route becomes `replace`; the rule is deleted first. */
function idempotentHostCommands(commands: readonly HostCommand[]): HostCommand[] {
  const out: HostCommand[] = [];
  for (const c of commands) {
    const addAt = c.args.indexOf('add');
    const isRule = c.args.includes('rule');
    if (isRule && addAt >= 0) {
      const del = [...c.args];
      del[addAt] = 'del';
      out.push({ cmd: c.cmd, args: del, onFailure: 'ignore', quiet: true });
      out.push({ cmd: c.cmd, args: c.args, onFailure: 'fail' });
    } else if (addAt >= 0) {
      const replace = [...c.args];
      replace[addAt] = 'replace';
      out.push({ cmd: c.cmd, args: replace, onFailure: 'fail' });
    } else {
      out.push(c);
    }
  }
  return out;
}

/** Current Istio also routes marked IPv6 packets to lo (the 1.6 iptables path is IPv4 only). */
function tproxyV6(cfg: Readonly<IptablesConfig>, verb: 'add' | 'del'): HostCommand[] {
  if (cfg.mode !== 'TPROXY' || !cfg.enableInboundIPv6 || cfg.inboundPortsInclude === '') return [];
  const [mark, table] = [cfg.inboundTProxyMark, cfg.inboundTProxyRouteTable];
  const route = ['-f', 'inet6', 'route', verb === 'add' ? 'replace' : 'del', 'local', 'default', 'dev', 'lo', 'table', table];
  const rule = (v: string): HostCommand => ({ cmd: 'ip', args: ['-f', 'inet6', 'rule', v, 'fwmark', mark, 'lookup', table], onFailure: v === 'add' ? 'fail' : 'ignore', quiet: v === 'del' });
  return verb === 'add'
    ? [rule('del'), rule('add'), { cmd: 'ip', args: route, onFailure: 'fail' }]
    : [rule('del'), { cmd: 'ip', args: route, onFailure: 'ignore', quiet: true }];
}

export async function applyNftCapture(cfg: Readonly<IptablesConfig>, io: ExecutorIO): Promise<void> {
  const script = toNftScript(buildNftRules(cfg));
  if (script !== '') await runScript(script, io);
  for (const c of [...idempotentHostCommands(buildCapturePlan(cfg).hostCommands), ...tproxyV6(cfg, 'add')]) await runStep(c, io);
}

/** Deletes the istio-proxy-* tables (missing ones are fine) and the routing extras. */
export async function cleanupNftCapture(cfg: Readonly<IptablesConfig>, io: ExecutorIO): Promise<void> {
  await runScript(nftCleanupScript(), io);
  const v6 = { ...cfg, mode: 'TPROXY' as const, enableInboundIPv6: true, inboundPortsInclude: '*' };
  for (const c of [...buildCleanupPlan(cfg).hostCommands, ...tproxyV6(v6, 'del')]) await runStep(c, io);
}
