/**
 * Reads what is already in the kernel before an apply, the way current Istio does, per
 * family (iptables / ip6tables, the latter only when the plan has IPv6 rules):
 *  - one `<bin>-save`: no ISTIO_* chain at all → a clean pod, the plan is applied (no
 *    further processes: this is the common first run);
 *  - otherwise ("residue") the live ISTIO_* chains must be exactly the planned ones with
 *    the planned number of rules each, and every planned rule must pass
 *    `<bin> -t <table> -C <chain> <rule>` (the kernel compares in its own canonical form).
 * Nothing is written and nothing is echoed.
 */
import type { CapturePlan, Rule } from './builder.js';
import type { Runner } from './executor.js';

export interface CaptureState {
  /** Some ISTIO_* chain exists (an earlier run, with these or other flags). */
  residue: boolean;
  /** The live tables differ from the plan (something to apply). */
  delta: boolean;
}

function checkArgs(r: Rule): string[] {
  const params = r.params[0] === '-I' ? r.params.slice(3) : r.params.slice(2);
  return ['-t', r.table, '-C', r.chain, ...params];
}

/** `table/chain` → rule count, for every ISTIO_* chain declared in `iptables-save` text. */
function liveIstioChains(save: string): Map<string, number> {
  const chains = new Map<string, number>();
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    else if (line.startsWith(':ISTIO_')) chains.set(`${table}/${line.slice(1).split(' ')[0]}`, 0);
    else if (line.startsWith('-A ISTIO_')) {
      const key = `${table}/${line.split(' ')[1]}`;
      chains.set(key, (chains.get(key) ?? 0) + 1);
    }
  }
  return chains;
}

async function familyState(bin: 'iptables' | 'ip6tables', rules: readonly Rule[], runner: Runner): Promise<CaptureState> {
  const save = await runner.read(`${bin}-save`, []);
  // Unreadable tables: assume a clean pod (Istio does the same) and apply.
  if (save.code !== 0) return { residue: false, delta: true };
  const live = liveIstioChains(save.stdout);
  if (live.size === 0) return { residue: false, delta: true };
  const planned = new Map<string, number>();
  for (const r of rules) {
    if (r.chain.startsWith('ISTIO_')) planned.set(`${r.table}/${r.chain}`, (planned.get(`${r.table}/${r.chain}`) ?? 0) + 1);
  }
  const sameChains = live.size === planned.size && [...planned].every(([key, n]) => live.get(key) === n);
  if (!sameChains) return { residue: true, delta: true };
  for (const r of rules) {
    if ((await runner.read(bin, checkArgs(r))).code !== 0) return { residue: true, delta: true };
  }
  return { residue: true, delta: false };
}

export async function captureState(plan: CapturePlan, runner: Runner): Promise<CaptureState> {
  const families = [
    ['iptables', plan.v4],
    ['ip6tables', plan.v6],
  ] as const;
  const state: CaptureState = { residue: false, delta: false };
  for (const [bin, rules] of families) {
    if (rules.length === 0) continue;
    const s = await familyState(bin, rules, runner);
    state.residue ||= s.residue;
    state.delta ||= s.delta;
  }
  return state;
}
