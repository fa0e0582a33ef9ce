/**
 * Reads what is already in the kernel before an apply, as current Istio does: is every rule
 * of the plan present (then a re-run changes nothing), and are there Istio chains at all
 * ("residue": a different configuration was applied before). Each rule is checked with
 * `iptables -t <table> -C <chain> <rule>`, which lets the kernel compare it in its own
 * canonical form; nothing is written and nothing is echoed.
 */
import type { CapturePlan, Rule } from './builder.js';
import type { Runner } from './executor.js';

export interface CaptureState {
  present: number;
  missing: number;
  /** Some ISTIO_* chain exists in a table this plan uses. */
  residue: boolean;
}

function checkArgs(r: Rule): string[] {
  const params = r.params[0] === '-I' ? r.params.slice(3) : r.params.slice(2);
  return ['-t', r.table, '-C', r.chain, ...params];
}

export async function captureState(plan: CapturePlan, runner: Runner): Promise<CaptureState> {
  const state: CaptureState = { present: 0, missing: 0, residue: false };
  for (const [bin, rules] of [
    ['iptables', plan.v4],
    ['ip6tables', plan.v6],
  ] as const) {
    if (rules.length === 0) continue;
    for (const r of rules) {
      const o = await runner.read(bin, checkArgs(r));
      if (o.code === 0) state.present++;
      else state.missing++;
    }
    const save = await runner.read(`${bin}-save`, []);
    if (save.code === 0 && /^:ISTIO_/m.test(save.stdout)) state.residue = true;
  }
  return state;
}
