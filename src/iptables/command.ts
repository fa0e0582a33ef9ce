/**
 * `pilot-agent istio-iptables` and `pilot-agent istio-clean-iptables` (SPEC §9).
 *
 * istio-iptables: resolve flags/env → print the `Environment:`/`Variables:` blocks → check
 * the live tables (unless `--force-apply` or `-n`): when every rule is already there nothing
 * is applied → apply the capture plan (or only print it with `-n`); with `--native-nftables`
 * the nftables transaction instead. `--skip-rule-apply` writes nothing to the kernel;
 * `--cleanup-only` runs the cleanup instead; `--run-validation` then proves the capture
 * (exit 126 when it does not redirect). Exit 0 on success; 1 for a usage error (message
 * names the flag or env var) or a failed command. --redirect-dns with nothing to capture warns (as Istio).
 *
 * istio-clean-iptables: the same flags; removes what istio-iptables creates (the nftables
 * tables too with `--native-nftables`). Exit 0 unless the flags are bad.
 *
 * `createIptablesCommands(deps)` lets tests swap the host: interface addresses, /etc/passwd,
 * the command runner, rules files and the clock.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Command, CommandContext } from '../command.js';
import { AgentError } from '../errors.js';
import { createLogger, type LogDestination } from '../log.js';
import { buildCapturePlan } from './builder.js';
import {
  applyCapture,
  cleanupCapture,
  dryRunFileStore,
  dryRunRunner,
  realRunner,
  tempFileStore,
  type ExecutorIO,
  type RulesFileStore,
  type Runner,
} from './executor.js';
import { lookupUidInPasswd } from './net.js';
import { applyNftCapture, cleanupNftCapture } from './nft-run.js';
import { captureState } from './state.js';
import { validateCapture, validationPlan } from './validation.js';
import { iptablesHelp, resolveIptablesConfig, type IptablesConfig } from './options.js';
import { environmentBlock, variablesBlock } from './report.js';

export interface IptablesDeps {
  /** Every interface address (IPv4 and IPv6 text), for the IPv6 decision. */
  interfaceAddresses: () => string[];
  /** /etc/passwd contents, or undefined if unreadable. */
  readPasswd: () => string | undefined;
  /** A file's contents (resolv.conf), or undefined if unreadable. */
  readFile: (path: string) => string | undefined;
  /** The runner for real (non dry-run) execution. */
  runner: (ctx: CommandContext) => Runner;
  /** Where rules files go (real runs). */
  rulesFiles: () => RulesFileStore;
  /** Directory named in dry-run rules file names. */
  tmpDir: () => string;
  now: () => bigint;
}

export const defaultIptablesDeps: IptablesDeps = {
  interfaceAddresses: () =>
    Object.values(os.networkInterfaces())
      .flatMap((list) => list ?? [])
      .map((a) => a.address),
  readPasswd: () => {
    try {
      return readFileSync('/etc/passwd', 'utf8');
    } catch {
      return undefined;
    }
  },
  readFile: (p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  },
  runner: (ctx) => realRunner(ctx.stdout, ctx.stderr, ctx.signal),
  rulesFiles: () => tempFileStore(os.tmpdir()),
  tmpDir: () => os.tmpdir(),
  now: () => BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n),
};

function executorIO(cfg: Readonly<IptablesConfig>, ctx: CommandContext, deps: IptablesDeps): ExecutorIO {
  return {
    out: ctx.stdout,
    runner: cfg.dryRun ? dryRunRunner : deps.runner(ctx),
    files: cfg.dryRun ? dryRunFileStore(deps.tmpDir()) : deps.rulesFiles(),
    now: deps.now,
    dryRun: cfg.dryRun,
  };
}

function logger(cfg: Readonly<IptablesConfig>, ctx: CommandContext) {
  const destination: LogDestination = { write: (s: string) => void ctx.stderr.write(s) };
  return createLogger({ outputLevel: cfg.logOutputLevel, asJson: cfg.logAsJson, destination }).child({ scope: 'iptables' });
}

/** `--run-validation`: exit 126 (Istio's code) unless a probe connection arrives redirected. */
async function validate(cfg: Readonly<IptablesConfig>, log: ReturnType<typeof logger>): Promise<void> {
  const plan = validationPlan({
    ipv6: cfg.hostIsIPv6,
    proxyPort: cfg.proxyPort,
    inboundCapturePort: cfg.inboundCapturePort,
    probePort: cfg.probePort,
    timeoutMs: cfg.probeTimeoutMs,
  });
  log.info(`validating traffic capture: ${plan.probeHost} port ${plan.probePort} must arrive on ${plan.listenHost} port ${plan.capturePorts.join(' or ')}`);
  const result = await validateCapture(plan);
  if (!result.ok) {
    throw new AgentError(
      'IPTABLES_FAILED',
      `traffic capture validation failed, the workload is not ready for Istio: ${result.reason}. ` +
        'With istio-cni this means the pod started before the node\'s CNI plugin set up its redirection; ' +
        'the pod has to be recreated (istio-cni\'s repair controller does that when it is enabled)',
      { exitCode: 126 },
    );
  }
  log.info(`validation passed: the probe connection arrived redirected on port ${result.port} (attempt ${result.attempts})`);
}

export function createIptablesCommands(overrides: Partial<IptablesDeps> = {}): { istioIptables: Command; istioCleanIptables: Command } {
  const deps: IptablesDeps = { ...defaultIptablesDeps, ...overrides };
  const resolve = (argv: string[], ctx: CommandContext, forCleanup: boolean) =>
    resolveIptablesConfig({
      argv,
      env: ctx.env,
      lookupUid: (user) => {
        const passwd = deps.readPasswd();
        return passwd === undefined ? undefined : lookupUidInPasswd(passwd, user);
      },
      interfaceAddresses: deps.interfaceAddresses,
      readFile: deps.readFile,
      forCleanup,
    });

  const istioIptables: Command = async (argv, ctx) => {
    const resolved = resolve(argv, ctx, false);
    if (resolved.help) {
      ctx.stdout.write(iptablesHelp('istio-iptables'));
      return 0;
    }
    const cfg = resolved.config;
    const log = logger(cfg, ctx);
    if (cfg.dnsCaptureRequested && !cfg.redirectDns && !cfg.cleanupOnly) {
      log.warn(`--redirect-dns is set, but --capture-all-dns is false and ${cfg.resolvConfPath} names no DNS servers: DNS capture disabled`);
    }
    // --skip-rule-apply (istio-cni did the work): nothing is generated, applied or cleaned.
    if (!cfg.skipRuleApply) {
      const io = executorIO(cfg, ctx, deps);
      if (cfg.cleanupOnly) {
        await (cfg.nativeNftables ? cleanupNftCapture(cfg, io) : cleanupCapture(cfg, io));
      } else {
        ctx.stdout.write(environmentBlock(ctx.env));
        ctx.stdout.write(variablesBlock(cfg));
        if (cfg.nativeNftables) {
          await applyNftCapture(cfg, io);
        } else {
          const plan = buildCapturePlan(cfg);
          let alreadyApplied = false;
          if (!cfg.dryRun && !cfg.forceApply) {
            const state = await captureState(plan, io.runner);
            alreadyApplied = !state.delta;
            if (alreadyApplied) log.info('every capture rule is already in place: nothing applied (--force-apply applies anyway)');
            else if (state.residue) log.warn('Istio chains exist without this configuration\'s rules; applying anyway (run --cleanup-only first to replace them)');
          }
          await applyCapture(cfg, plan, io, { alreadyApplied });
        }
      }
    }
    if (cfg.runValidation) await validate(cfg, log);
    return 0;
  };

  const istioCleanIptables: Command = async (argv, ctx) => {
    const resolved = resolve(argv, ctx, true);
    if (resolved.help) {
      ctx.stdout.write(iptablesHelp('istio-clean-iptables'));
      return 0;
    }
    const cfg = resolved.config;
    const io = executorIO(cfg, ctx, deps);
    await (cfg.nativeNftables ? cleanupNftCapture(cfg, io) : cleanupCapture(cfg, io));
    return 0;
  };

  return { istioIptables, istioCleanIptables };
}

const commands = createIptablesCommands();

export const istioIptablesCommand: Command = commands.istioIptables;
export const istioCleanIptablesCommand: Command = commands.istioCleanIptables;
